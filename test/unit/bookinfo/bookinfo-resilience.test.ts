// What the versions do differently, and how the page degrades when a backend fails:
// the behaviour the routing and fault-injection tasks make visible.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createRatings } from '../../../deploy/samples/bookinfo/ratings.ts';
import { createServer as createReviews, RATINGS_UNAVAILABLE } from '../../../deploy/samples/bookinfo/reviews.ts';
import type { ReviewsResponse } from '../../../deploy/samples/bookinfo/reviews.ts';
import { createServer as createDetails } from '../../../deploy/samples/bookinfo/details.ts';
import {
  createServer as createProductPage,
  DETAILS_UNAVAILABLE,
  REVIEWS_UNAVAILABLE,
} from '../../../deploy/samples/bookinfo/productpage.ts';
import { closeAll, fakePeer, json, listen } from './bookinfo-test-helpers.ts';
import type { FakePeer, Running } from './bookinfo-test-helpers.ts';

/** A peer that drops every connection: what a crashed or aborted backend looks like. */
function deadPeer(): Promise<FakePeer> {
  return fakePeer((req) => req.socket.destroy());
}

describe('reviews versions', () => {
  it('v1 calls nothing and reports no ratings', async () => {
    const ratings = await fakePeer((_req, res) => json(res, 200, { id: 0, ratings: { Reviewer1: 1, Reviewer2: 1 } }));
    const reviews = await listen(createReviews({ version: 'v1', ratingsUrl: ratings.url }));
    try {
      const body = (await (await fetch(`${reviews.url}/reviews/0`)).json()) as ReviewsResponse;
      assert.equal(body.id, 0);
      assert.equal(body.podname, 'reviews-v1');
      assert.equal(body.reviews.length, 2);
      for (const review of body.reviews) {
        assert.deepEqual(Object.keys(review).sort(), ['reviewer', 'text']);
      }
      assert.equal(ratings.requests.length, 0, 'v1 never calls ratings');
    } finally {
      await closeAll(reviews, ratings);
    }
  });

  it('v2 shows black stars from ratings', async () => {
    const ratings = await listen(createRatings());
    const reviews = await listen(createReviews({ version: 'v2', ratingsUrl: ratings.url }));
    try {
      const body = (await (await fetch(`${reviews.url}/reviews/0`)).json()) as ReviewsResponse;
      assert.deepEqual(body.reviews.map((r) => r.rating), [
        { stars: 5, color: 'black' },
        { stars: 4, color: 'black' },
      ]);
    } finally {
      await closeAll(reviews, ratings);
    }
  });

  it('v2 reports the ratings error when ratings is down, and productpage still renders', async () => {
    const ratings = await deadPeer();
    const reviews = await listen(createReviews({ version: 'v2', name: 'reviews-v2', ratingsUrl: ratings.url }));
    const details = await listen(createDetails());
    const productpage = await listen(createProductPage({ detailsUrl: details.url, reviewsUrl: reviews.url, ratingsUrl: ratings.url }));
    try {
      const body = (await (await fetch(`${reviews.url}/reviews/0`)).json()) as ReviewsResponse;
      assert.deepEqual(body.reviews.map((r) => r.rating), [
        { error: 'Ratings service is currently unavailable' },
        { error: 'Ratings service is currently unavailable' },
      ]);
      assert.ok(ratings.requests.length >= 1, 'v2 did call ratings');

      const res = await fetch(`${productpage.url}/productpage`);
      assert.equal(res.status, 200);
      const html = await res.text();
      assert.equal(html.match(new RegExp(`<p class="rating-error">${RATINGS_UNAVAILABLE}</p>`, 'g'))?.length, 2);
      assert.doesNotMatch(html, /class="stars/);
      assert.match(html, /<h4>Book Details<\/h4>/);
      assert.match(html, /Reviews served by: reviews-v2<\/p>/);
    } finally {
      await closeAll(productpage, details, reviews, ratings);
    }
  });

  it('v3 treats a ratings error status (as from an abort fault) as ratings unavailable', async () => {
    const ratings = await fakePeer((_req, res) => json(res, 500, { error: 'fault filter abort' }));
    const reviews = await listen(createReviews({ version: 'v3', ratingsUrl: ratings.url }));
    try {
      const body = (await (await fetch(`${reviews.url}/reviews/0`)).json()) as ReviewsResponse;
      assert.deepEqual(body.reviews[0].rating, { error: RATINGS_UNAVAILABLE });
    } finally {
      await closeAll(reviews, ratings);
    }
  });

  it('refuses an unknown version', () => {
    assert.throws(() => createReviews({ version: 'v4' as 'v1' }), /v1, v2, v3/);
  });
});

describe('productpage when backends fail', () => {
  async function withPage(
    peers: { details: Running; reviews: Running },
    check: (html: string) => void,
    timeoutMs?: number,
  ): Promise<void> {
    const productpage = await listen(createProductPage({ detailsUrl: peers.details.url, reviewsUrl: peers.reviews.url, timeoutMs }));
    try {
      const res = await fetch(`${productpage.url}/productpage`);
      assert.equal(res.status, 200);
      check(await res.text());
    } finally {
      await productpage.close();
    }
  }

  it('says details are unavailable when details is down', async () => {
    const details = await deadPeer();
    const reviews = await listen(createReviews({ version: 'v1' }));
    try {
      await withPage({ details, reviews }, (html) => {
        assert.match(html, /<h4>Error fetching product details<\/h4>/);
        assert.ok(html.includes(`<p class="error">${DETAILS_UNAVAILABLE}</p>`));
        assert.match(html, /<h4>Book Reviews<\/h4>/, 'reviews still shown');
      });
    } finally {
      await closeAll(details, reviews);
    }
  });

  it('says reviews are unavailable after two failed attempts', async () => {
    const details = await listen(createDetails());
    const reviews = await fakePeer((_req, res) => json(res, 503, { error: 'no healthy upstream' }));
    try {
      await withPage({ details, reviews }, (html) => {
        assert.match(html, /<h4>Error fetching product reviews<\/h4>/);
        assert.ok(html.includes(`<p class="error">${REVIEWS_UNAVAILABLE}</p>`));
        assert.match(html, /<h4>Book Details<\/h4>/, 'details still shown');
      });
      assert.equal(reviews.requests.length, 2, 'the sample retries reviews once');
    } finally {
      await closeAll(details, reviews);
    }
  });

  it('gives up on a backend that does not answer within the timeout', async () => {
    const details = await listen(createDetails());
    const reviews = await fakePeer(() => {
      // Never answers: the page must not wait for it forever.
    });
    try {
      await withPage(
        { details, reviews },
        (html) => {
          assert.ok(html.includes(REVIEWS_UNAVAILABLE));
          assert.match(html, /<h4>Book Details<\/h4>/);
        },
        50,
      );
    } finally {
      await closeAll(details, reviews);
    }
  });

  it('treats a 200 answer that is not JSON as unavailable', async () => {
    const details = await fakePeer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<html>upstream connect error</html>');
    });
    const reviews = await listen(createReviews({ version: 'v1' }));
    try {
      await withPage({ details, reviews }, (html) => {
        assert.ok(html.includes(DETAILS_UNAVAILABLE));
        assert.doesNotMatch(html, /upstream connect error/);
      });
    } finally {
      await closeAll(details, reviews);
    }
  });

  it('escapes what a misbehaving backend sends', async () => {
    const details = await listen(createDetails());
    const reviews = await fakePeer((_req, res) =>
      json(res, 200, {
        id: 0,
        podname: '<script>x</script>',
        clustername: 'east',
        reviews: [{ reviewer: '<b>r</b>', text: 'a "quote" & <i>tag</i>', rating: { stars: 3, color: 'red;background:url(x)' } }],
      }),
    );
    try {
      await withPage({ details, reviews }, (html) => {
        assert.doesNotMatch(html, /<script>x<\/script>|<b>r<\/b>|<i>tag<\/i>/);
        assert.ok(html.includes('&lt;script&gt;x&lt;/script&gt; on cluster east'));
        assert.ok(html.includes('a &quot;quote&quot; &amp; &lt;i&gt;tag&lt;/i&gt;'));
        assert.match(html, /class="stars stars-black" style="color: black" title="3 of 5 stars"/, 'unknown colour falls back to black');
      });
    } finally {
      await closeAll(details, reviews);
    }
  });
});
