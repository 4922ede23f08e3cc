// The four BookInfo services wired straight to each other (no mesh): the page a user
// sees, and each service's own API.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createRatings } from '../../../deploy/samples/bookinfo/ratings.ts';
import { createServer as createReviews } from '../../../deploy/samples/bookinfo/reviews.ts';
import type { ReviewsResponse } from '../../../deploy/samples/bookinfo/reviews.ts';
import { createServer as createDetails } from '../../../deploy/samples/bookinfo/details.ts';
import { createServer as createProductPage, PRODUCTS } from '../../../deploy/samples/bookinfo/productpage.ts';
import { closeAll, listen } from './bookinfo-test-helpers.ts';
import type { Running } from './bookinfo-test-helpers.ts';

describe('bookinfo wired together', () => {
  let ratings: Running;
  let reviews: Running;
  let details: Running;
  let productpage: Running;

  before(async () => {
    ratings = await listen(createRatings());
    reviews = await listen(createReviews({ version: 'v3', name: 'reviews-v3-abc12', clusterName: null, ratingsUrl: ratings.url }));
    details = await listen(createDetails());
    productpage = await listen(
      createProductPage({ detailsUrl: details.url, reviewsUrl: reviews.url, ratingsUrl: ratings.url }),
    );
  });
  after(() => closeAll(productpage, reviews, details, ratings));

  it('renders the product page with details, both reviews and red stars', async () => {
    const res = await fetch(`${productpage.url}/productpage`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
    const html = await res.text();
    assert.match(html, /<title>Simple Bookstore App<\/title>/);
    assert.match(html, /<h1>The Comedy of Errors<\/h1>/);
    assert.match(html, /<h4>Book Details<\/h4>/);
    for (const value of ['William Shakespeare', 'paperback', '200', 'PublisherA', 'English', '1234567890', '123-1234567890']) {
      assert.ok(html.includes(`<dd>${value}</dd>`), `details show ${value}`);
    }
    assert.match(html, /<h4>Book Reviews<\/h4>/);
    assert.equal(html.match(/<article class="review">/g)?.length, 2);
    assert.ok(html.includes('An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!'));
    assert.ok(html.includes('Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare.'));
    assert.match(html, /<p class="reviewer">Reviewer1<\/p>/);
    assert.match(html, /<p class="reviewer">Reviewer2<\/p>/);
    const stars = [...html.matchAll(/<div class="stars stars-(\w+)" style="color: (\w+)" title="(\d) of 5 stars">/g)];
    assert.deepEqual(stars.map((m) => [m[1], m[2], m[3]]), [['red', 'red', '5'], ['red', 'red', '4']]);
    assert.equal(html.match(/class="star full"/g)?.length, 9, '5 + 4 full stars');
    assert.match(html, /Reviews served by: reviews-v3-abc12<\/p>/);
    assert.doesNotMatch(html, /on cluster/);
    assert.doesNotMatch(html, /unavailable/i);
    assert.match(html, /<form class="login" method="post" action="\/login"/, 'signed out: shows the sign-in form');
  });

  it('serves the product API, passing the peers\' JSON through', async () => {
    const products = await (await fetch(`${productpage.url}/api/v1/products`)).json();
    assert.deepEqual(products, PRODUCTS);

    const detailsRes = await fetch(`${productpage.url}/api/v1/products/0`);
    assert.equal(detailsRes.status, 200);
    assert.deepEqual(await detailsRes.json(), {
      id: 0,
      author: 'William Shakespeare',
      year: 1595,
      type: 'paperback',
      pages: 200,
      publisher: 'PublisherA',
      language: 'English',
      'ISBN-10': '1234567890',
      'ISBN-13': '123-1234567890',
    });

    const reviewsBody = (await (await fetch(`${productpage.url}/api/v1/products/0/reviews`)).json()) as ReviewsResponse;
    assert.equal(reviewsBody.podname, 'reviews-v3-abc12');
    assert.deepEqual(reviewsBody.reviews.map((r) => r.rating), [
      { stars: 5, color: 'red' },
      { stars: 4, color: 'red' },
    ]);

    const ratingsBody = await (await fetch(`${productpage.url}/api/v1/products/0/ratings`)).json();
    assert.deepEqual(ratingsBody, { id: 0, ratings: { Reviewer1: 5, Reviewer2: 4 } });
  });

  it('passes a backend\'s refusal of a bad id on as an unavailable answer with its status', async () => {
    const res = await fetch(`${productpage.url}/api/v1/products/abc`);
    assert.equal(res.status, 400);
    assert.deepEqual(await res.json(), { error: 'Sorry, product details are currently unavailable for this book.' });
  });

  it('answers health checks, the landing page, the stylesheet, and 404 for the rest', async () => {
    const health = await fetch(`${productpage.url}/health`);
    assert.equal(await health.text(), 'Product page is healthy');
    assert.deepEqual(await (await fetch(`${details.url}/health`)).json(), { status: 'Details is healthy' });
    assert.deepEqual(await (await fetch(`${reviews.url}/health`)).json(), { status: 'Reviews is healthy' });
    assert.deepEqual(await (await fetch(`${ratings.url}/health`)).json(), { status: 'Ratings is healthy' });

    const index = await (await fetch(`${productpage.url}/`)).text();
    assert.match(index, /href="\/productpage\?u=normal"/);

    const css = await fetch(`${productpage.url}/static/bookinfo.css`);
    assert.equal(css.status, 200);
    assert.match(css.headers.get('content-type') ?? '', /^text\/css/);
    assert.match(await css.text(), /\.stars-red/);

    assert.equal((await fetch(`${productpage.url}/static/missing.css`)).status, 404);
    assert.equal((await fetch(`${productpage.url}/api/v1/products/0/nope`)).status, 404);
    assert.equal((await fetch(`${details.url}/nope`)).status, 404);
    const post = await fetch(`${productpage.url}/productpage`, { method: 'POST' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET');
    await post.arrayBuffer();
  });

  it('details, reviews and ratings refuse non-numeric ids with 400', async () => {
    for (const url of [`${details.url}/details/x`, `${reviews.url}/reviews/x`, `${ratings.url}/ratings/x`]) {
      const res = await fetch(url);
      assert.equal(res.status, 400, url);
      assert.match(((await res.json()) as { error: string }).error, /numeric product id/i);
    }
  });

  it('ratings keeps posted ratings per product, like the sample', async () => {
    const posted = await fetch(`${ratings.url}/ratings/7`, { method: 'POST', body: JSON.stringify({ Reviewer1: 1, Reviewer2: 2 }) });
    assert.equal(posted.status, 200);
    assert.deepEqual(await posted.json(), { id: 7, ratings: { Reviewer1: 1, Reviewer2: 2 } });
    assert.deepEqual(await (await fetch(`${ratings.url}/ratings/7`)).json(), { id: 7, ratings: { Reviewer1: 1, Reviewer2: 2 } });
    assert.deepEqual(await (await fetch(`${ratings.url}/ratings/0`)).json(), { id: 0, ratings: { Reviewer1: 5, Reviewer2: 4 } });

    const bad = await fetch(`${ratings.url}/ratings/7`, { method: 'POST', body: '{"Reviewer1": 9}' });
    assert.equal(bad.status, 400);
    await bad.arrayBuffer();
  });
});
