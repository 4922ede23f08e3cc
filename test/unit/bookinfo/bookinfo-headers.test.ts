// The headers the mesh depends on: `end-user` for the jason routes, and the tracing
// headers copied hop by hop so one page view is one trace.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createReviews } from '../../../deploy/samples/bookinfo/reviews.ts';
import { createServer as createProductPage } from '../../../deploy/samples/bookinfo/productpage.ts';
import { PROPAGATED_HEADERS, propagatedHeaders } from '../../../deploy/samples/bookinfo/bookinfo-common.ts';
import { closeAll, fakePeer, json, listen } from './bookinfo-test-helpers.ts';
import type { FakePeer, Running } from './bookinfo-test-helpers.ts';

const REVIEWS_BODY = { id: 0, podname: 'reviews-fake', clustername: null, reviews: [] };

const TRACING: Record<string, string> = {
  'x-request-id': '6c8e0c6e-5d0b-4a0e-9a39-1d5c2d8a6f10',
  traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
  tracestate: 'congo=t61rcWkgMzE',
  'x-b3-traceid': '80f198ee56343ba864fe8b2a57d3eff7',
  'x-b3-spanid': 'e457b5a2e4d86bd1',
  'x-b3-parentspanid': '05e3ac9a4f6e3b90',
  'x-b3-sampled': '1',
  'x-b3-flags': '0',
  b3: '80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90',
  'x-ot-span-context': 'ot-span',
  'x-cloud-trace-context': '105445aa7843bc8bf206b12000100000/1;o=1',
  'grpc-trace-bin': 'AAARf5P3ddEmNlqnV3ZWN7xSAZ9l4+Uu4gIBAg==',
  'user-agent': 'bookinfo-test/1.0',
};

describe('productpage sign-in', () => {
  let reviews: FakePeer;
  let details: FakePeer;
  let productpage: Running;

  before(async () => {
    reviews = await fakePeer((_req, res) => json(res, 200, REVIEWS_BODY));
    details = await fakePeer((_req, res) => json(res, 200, { id: 0, type: 'paperback' }));
    productpage = await listen(createProductPage({ detailsUrl: details.url, reviewsUrl: reviews.url }));
  });
  after(() => closeAll(productpage, reviews, details));

  it('login sets the user cookie and sends the user back to the product page', async () => {
    const res = await fetch(`${productpage.url}/login`, {
      method: 'POST',
      body: new URLSearchParams({ username: 'jason', passwd: 'anything' }),
      redirect: 'manual',
    });
    assert.equal(res.status, 302);
    assert.equal(res.headers.get('location'), '/productpage');
    assert.match(res.headers.get('set-cookie') ?? '', /^user=jason; Path=\//);
  });

  it('with the cookie, reviews receives end-user and the cookie, and the page says who is signed in', async () => {
    const before = reviews.requests.length;
    const res = await fetch(`${productpage.url}/productpage`, { headers: { cookie: 'theme=dark; user=jason' } });
    const html = await res.text();
    assert.match(html, /Signed in as <strong>jason<\/strong>/);
    assert.match(html, /href="\/logout"/);
    const seen = reviews.requests.slice(before);
    assert.equal(seen.length, 1);
    assert.equal(seen[0].url, '/reviews/0');
    assert.equal(seen[0].headers['end-user'], 'jason');
    assert.equal(seen[0].headers.cookie, 'theme=dark; user=jason');
  });

  it('without the cookie, no end-user reaches reviews', async () => {
    const before = reviews.requests.length;
    const html = await (await fetch(`${productpage.url}/productpage`)).text();
    assert.doesNotMatch(html, /Signed in as/);
    const seen = reviews.requests.slice(before);
    assert.equal(seen[0].headers['end-user'], undefined);
  });

  it('a URL-encoded user name is decoded; a name unfit for a header is ignored', async () => {
    let before = reviews.requests.length;
    await (await fetch(`${productpage.url}/productpage`, { headers: { cookie: 'user=jason%20smith' } })).text();
    assert.equal(reviews.requests[before].headers['end-user'], 'jason smith');

    before = reviews.requests.length;
    const html = await (await fetch(`${productpage.url}/productpage`, { headers: { cookie: 'user=a%0D%0Ab' } })).text();
    assert.equal(reviews.requests[before].headers['end-user'], undefined);
    assert.doesNotMatch(html, /Signed in as/);
  });

  it('logout clears the cookie', async () => {
    const res = await fetch(`${productpage.url}/logout`, { headers: { cookie: 'user=jason' }, redirect: 'manual' });
    assert.equal(res.status, 302);
    assert.equal(res.headers.get('location'), '/productpage');
    assert.match(res.headers.get('set-cookie') ?? '', /^user=; .*Max-Age=0/);
  });

  it('refuses an empty user name and a GET login', async () => {
    const empty = await fetch(`${productpage.url}/login`, { method: 'POST', body: new URLSearchParams({ username: ' ' }), redirect: 'manual' });
    assert.equal(empty.status, 400);
    await empty.text();
    const get = await fetch(`${productpage.url}/login`);
    assert.equal(get.status, 405);
    assert.equal(get.headers.get('allow'), 'POST');
    await get.text();
  });
});

describe('tracing header propagation', () => {
  it('productpage copies the tracing headers to details and reviews, and reviews to ratings', async () => {
    const ratings = await fakePeer((_req, res) => json(res, 200, { id: 0, ratings: { Reviewer1: 5, Reviewer2: 4 } }));
    const details = await fakePeer((_req, res) => json(res, 200, { id: 0 }));
    const reviews = await listen(createReviews({ version: 'v2', ratingsUrl: ratings.url }));
    const productpage = await listen(createProductPage({ detailsUrl: details.url, reviewsUrl: reviews.url }));
    try {
      const res = await fetch(`${productpage.url}/productpage`, {
        headers: { ...TRACING, cookie: 'user=jason', 'x-not-propagated': 'nope' },
      });
      assert.match(await res.text(), /title="5 of 5 stars"/);

      assert.equal(details.requests.length, 1);
      assert.equal(ratings.requests.length, 1, 'the request reached ratings through reviews');
      for (const [hop, seen] of [['details', details.requests[0].headers], ['ratings (via reviews)', ratings.requests[0].headers]] as const) {
        for (const [name, value] of Object.entries(TRACING)) {
          assert.equal(seen[name], value, `${hop} got ${name}`);
        }
        assert.equal(seen['end-user'], 'jason', `${hop} got end-user`);
        assert.equal(seen.cookie, 'user=jason', `${hop} got cookie`);
        assert.equal(seen['x-not-propagated'], undefined, `${hop} got only the listed headers`);
      }
    } finally {
      await closeAll(productpage, reviews, details, ratings);
    }
  });

  it('propagatedHeaders picks exactly the listed headers', () => {
    const incoming = { 'x-request-id': 'r', b3: 'b', host: 'productpage:9080', 'content-type': 'text/plain', 'end-user': 'jason' };
    assert.deepEqual(propagatedHeaders(incoming), { 'x-request-id': 'r', b3: 'b', 'end-user': 'jason' });
    for (const name of ['x-request-id', 'traceparent', 'tracestate', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid',
      'x-b3-sampled', 'x-b3-flags', 'b3', 'x-ot-span-context', 'x-cloud-trace-context', 'grpc-trace-bin', 'end-user',
      'user-agent', 'cookie']) {
      assert.ok(PROPAGATED_HEADERS.includes(name), name);
    }
  });
});
