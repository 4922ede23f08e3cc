// Local rate limits on an inbound listener: a burst gets exactly maxTokens
// through, the rest 429 with x-ratelimit-* headers and flag RL; tokens come
// back with the (manual) clock; buckets per header value are independent;
// gRPC requests get RESOURCE_EXHAUSTED; keyed buckets stay bounded.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import type { ListenerResource, LocalRateLimit } from '../../../../core/model/proxy-config.ts';
import { RateLimitBuckets } from '../../../../proxy/resilience/rate-limit-bucket.ts';
import type { RunningProxy } from '../../../../proxy/proxy.ts';
import { cluster, endpoints, freePort, fullUpdate, listener, request, route, routeConfig, startSidecar, startUpstream, toCluster, vhost } from '../proxy-test-helpers.ts';
import type { Reply, Upstream } from '../proxy-test-helpers.ts';
import { manualClock } from './resilience-test-helpers.ts';

describe('RateLimitBuckets', () => {
  it('refills lazily by whole intervals, never above maxTokens', () => {
    const b = new RateLimitBuckets({ maxTokens: 3, tokensPerFill: 2, fillIntervalMs: 100 });
    const bucket = b.bucket(undefined, 0);
    for (let i = 0; i < 3; i++) assert.equal(b.take(bucket), true);
    assert.equal(b.take(bucket), false);
    assert.equal(b.msToNextFill(bucket, 40), 60);
    b.bucket(undefined, 99);
    assert.equal(b.take(bucket), false, 'no token before the interval ends');
    b.bucket(undefined, 100);
    assert.equal(bucket.tokens, 2);
    b.bucket(undefined, 1000);
    assert.equal(bucket.tokens, 3, 'capped at maxTokens');
  });

  it('keeps at most maxKeys keyed buckets, evicting the least recently used', () => {
    const b = new RateLimitBuckets({ maxTokens: 1, tokensPerFill: 1, fillIntervalMs: 1000 }, 3);
    for (const k of ['a', 'b', 'c']) b.take(b.bucket(k, 0));
    b.bucket('a', 0); // a is now the most recent
    b.take(b.bucket('d', 0)); // evicts b
    assert.equal(b.keyCount, 3);
    assert.equal(b.take(b.bucket('a', 0)), false, 'a kept its empty bucket');
    assert.equal(b.take(b.bucket('b', 0)), true, 'b was evicted and starts full');
    for (let i = 0; i < 10_000; i++) b.bucket(`flood-${i}`, 0);
    assert.equal(b.keyCount, 3);
  });
});

describe('local rate limit on an inbound listener', () => {
  let up: Upstream;
  let proxy: RunningProxy;
  let port: number;
  const clock = manualClock();
  const agent = new http.Agent({ keepAlive: true, maxSockets: 50 });

  const limits: LocalRateLimit[] = [
    { name: 'RateLimit/default/per-user#0', match: [{ uri: { prefix: '/user' } }], maxTokens: 2, tokensPerFill: 2, fillIntervalMs: 1000, key: { header: 'x-user' } },
    { name: 'RateLimit/default/all#0', maxTokens: 10, tokensPerFill: 5, fillIntervalMs: 1000 },
  ];

  before(async () => {
    up = await startUpstream('app');
    port = await freePort();
    proxy = await startSidecar({ now: clock.now });
    const inbound: ListenerResource = { ...listener('inbound-http', 'inbound', port, 'inbound'), rateLimits: limits };
    await proxy.apply(
      fullUpdate([
        inbound,
        routeConfig('inbound', [vhost('app', ['*'], [route('r', [], toCluster('inbound|80||'))])]),
        cluster('inbound|80||'),
        endpoints('inbound|80||', [up.port]),
      ]),
    );
  });

  after(async () => {
    agent.destroy();
    await proxy.close();
    await up.close();
  });

  const get = (path = '/', headers: Record<string, string> = {}): Promise<Reply> => request(port, { path, headers, agent });

  it('lets exactly maxTokens of a burst through and answers the rest 429 with headers', async () => {
    const before = up.requests.length;
    const replies = await Promise.all(Array.from({ length: 25 }, () => get()));
    const ok = replies.filter((r) => r.status === 200);
    const limited = replies.filter((r) => r.status === 429);
    assert.equal(ok.length, 10);
    assert.equal(limited.length, 15);
    assert.equal(up.requests.length - before, 10, 'limited requests never reach the app');
    const r = limited[0];
    assert.equal(r.headers['x-ratelimit-limit'], '10');
    assert.equal(r.headers['x-ratelimit-remaining'], '0');
    assert.equal(r.headers['x-ratelimit-reset'], '1');
    assert.equal(r.headers['x-jibe-response-flags'], 'RL');
    assert.equal(r.body, 'local_rate_limited');
    assert.equal(proxy.stats.local_rate_limit_rate_limited, 15);
  });

  it('refills tokensPerFill per interval of the clock', async () => {
    clock.advance(999);
    assert.equal((await get()).status, 429);
    clock.advance(1);
    const replies = await Promise.all(Array.from({ length: 8 }, () => get()));
    assert.equal(replies.filter((r) => r.status === 200).length, 5);
  });

  it('keeps one bucket per header value, for matching requests only', async () => {
    clock.advance(10_000);
    const alice = await Promise.all(Array.from({ length: 4 }, () => get('/user', { 'x-user': 'alice' })));
    assert.equal(alice.filter((r) => r.status === 200).length, 2);
    assert.equal(alice.find((r) => r.status === 429)!.headers['x-ratelimit-limit'], '2');
    const bob = await Promise.all(Array.from({ length: 2 }, () => get('/user', { 'x-user': 'bob' })));
    assert.deepEqual(
      bob.map((r) => r.status),
      [200, 200],
      "bob's bucket is his own",
    );
  });

  it('answers gRPC requests with RESOURCE_EXHAUSTED', async () => {
    clock.advance(10_000);
    await Promise.all(Array.from({ length: 10 }, () => get()));
    const r = await request(port, { method: 'POST', path: '/pkg.Svc/Call', headers: { 'content-type': 'application/grpc' }, body: '', agent });
    assert.equal(r.status, 200);
    assert.equal(r.headers['grpc-status'], '8');
  });
});
