// Retries on the HTTP/1.1 request path, against real sockets: flaky upstreams
// recovered (5xx, gateway-error, connect-failure, reset), attempts and the
// retry budget as caps, bodies replayed intact or not at all, per-try
// timeouts, another host on retry, maxRetries overflow and the URX flag.
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { after, afterEach, before, describe, it } from 'node:test';
import type { ClusterResource, RetryPolicy } from '../../../../core/model/proxy-config.ts';
import type { RunningProxy } from '../../../../proxy/proxy.ts';
import { cluster, endpoints, freePort, fullUpdate, request, route, routeConfig, startSidecar, startUpstream, toCluster, vhost } from '../proxy-test-helpers.ts';
import type { Upstream } from '../proxy-test-helpers.ts';
import { manualClock, seededRandom, startControlledUpstream, until } from './resilience-test-helpers.ts';

const retry = (retryOn: string[], extra: Partial<RetryPolicy> = {}): RetryPolicy => ({
  attempts: 2,
  retryOn,
  retriableStatusCodes: [],
  backoffBaseMs: 1,
  backoffMaxMs: 2,
  ...extra,
});

/** Answers `failStatus` (or resets, with status 0) to its first `failures` requests, then 200 with the body it read. */
async function startFlaky(name: string, failures: number, failStatus: number): Promise<Upstream & { failures: number }> {
  const self = Object.assign(
    await startUpstream(name, (req: IncomingMessage, res: ServerResponse, seen) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        seen.body = Buffer.concat(chunks);
        if (self.failures > 0) {
          self.failures--;
          if (failStatus === 0) {
            req.socket.destroy();
            return;
          }
          res.statusCode = failStatus;
          res.end('fail');
          return;
        }
        res.setHeader('x-upstream', name);
        res.end(`${name} ok ${seen.body.length}`);
      });
    }),
    { failures },
  );
  return self;
}

describe('retries through the proxy (HTTP/1.1 upstreams)', () => {
  let proxy: RunningProxy;
  const clock = manualClock();
  const upstreams: Upstream[] = [];

  before(async () => {
    proxy = await startSidecar({ random: seededRandom(7), now: clock.now });
  });
  afterEach(async () => {
    await Promise.all(upstreams.splice(0).map((u) => u.close()));
  });
  after(async () => {
    await proxy.close();
  });

  async function configure(policy: RetryPolicy | undefined, ports: number[], extra: Partial<ClusterResource> = {}, timeoutMs?: number): Promise<void> {
    await proxy.apply(
      fullUpdate([
        routeConfig('outbound', [vhost('svc', ['svc'], [route('r', [], toCluster('svc', { retry: policy, timeoutMs }))])]),
        cluster('svc', 'ROUND_ROBIN', extra),
        endpoints('svc', ports),
      ]),
    );
  }
  const get = (options: { method?: string; body?: string | Buffer } = {}) => request(proxy.ports.outbound!, { headers: { host: 'svc' }, ...options });
  const stats = () => proxy.stats.cluster('svc');
  const snapshot = () => ({ ...stats() });

  it('recovers a flaky upstream under 5xx and gateway-error, and counts retries and their success', async () => {
    const flaky = await startFlaky('flaky', 2, 500);
    upstreams.push(flaky);
    await configure(retry(['5xx']), [flaky.port]);
    const s0 = snapshot();
    const r = await get();
    assert.equal(r.status, 200);
    assert.equal(r.body, 'flaky ok 0');
    assert.equal(flaky.requests.length, 3);
    assert.equal(stats().upstream_rq_retry - s0.upstream_rq_retry, 2);
    assert.equal(stats().upstream_rq_retry_success - s0.upstream_rq_retry_success, 1);

    const flaky503 = await startFlaky('flaky503', 1, 503);
    upstreams.push(flaky503);
    await configure(retry(['gateway-error']), [flaky503.port]);
    assert.equal((await get()).status, 200, '503 is a gateway error');
    assert.equal(flaky503.requests.length, 2);
    flaky.failures = 1;
    await configure(retry(['gateway-error']), [flaky.port]);
    const before = flaky.requests.length;
    assert.equal((await get()).status, 500, '500 is not a gateway error: answered as is');
    assert.equal(flaky.requests.length, before + 1);
  });

  it('stops at attempts and answers the last failure as is', async () => {
    const failing = await startFlaky('failing', 100, 503);
    upstreams.push(failing);
    await configure(retry(['5xx'], { attempts: 3 }), [failing.port]);
    const s0 = snapshot();
    const r = await get();
    assert.equal(r.status, 503);
    assert.equal(r.body, 'fail');
    assert.equal(failing.requests.length, 4, 'one try and three retries');
    assert.equal(stats().upstream_rq_retry_limit_exceeded - s0.upstream_rq_retry_limit_exceeded, 1);
  });

  it('retries a connect failure on another host, and flags URX when retries run out', async () => {
    const good = await startControlledUpstream('good');
    upstreams.push(good);
    const closed = await freePort();
    await configure(retry(['connect-failure']), [closed, good.port]);
    for (let i = 0; i < 4; i++) {
      const r = await get();
      assert.equal(r.status, 200);
      assert.equal(r.headers['x-upstream'], 'good');
    }
    assert.equal(good.requests.length, 4, 'every request reached the good host exactly once');

    const closed2 = await freePort();
    await configure(retry(['connect-failure'], { attempts: 1 }), [closed, closed2]);
    const r = await get();
    assert.equal(r.status, 503);
    assert.equal(r.headers['x-jibe-response-flags'], 'UF,URX');
  });

  it('retries a reset connection under reset, not under connect-failure alone', async () => {
    const resetting = await startFlaky('resetting', 1, 0);
    upstreams.push(resetting);
    await configure(retry(['reset']), [resetting.port]);
    assert.equal((await get()).status, 200);
    assert.equal(resetting.requests.length, 2);

    // A fresh upstream: a reset on a reused keep-alive connection before any answer byte gets the one free stale-connection retry.
    const fresh = await startFlaky('fresh', 1, 0);
    upstreams.push(fresh);
    await configure(retry(['connect-failure']), [fresh.port]);
    const r = await get();
    assert.equal(r.status, 503);
    assert.equal(r.headers['x-jibe-response-flags'], 'UC');
  });

  it('replays a POST body intact', async () => {
    const flaky = await startFlaky('flaky', 1, 503);
    upstreams.push(flaky);
    await configure(retry(['5xx']), [flaky.port]);
    const body = Buffer.alloc(40_000, 'abcdefghij');
    const r = await get({ method: 'POST', body });
    assert.equal(r.status, 200);
    assert.equal(r.body, `flaky ok ${body.length}`);
    assert.equal(flaky.requests.length, 2);
    assert.deepEqual(flaky.requests[0].body, body);
    assert.deepEqual(flaky.requests[1].body, body);
  });

  it('does not retry a body beyond the buffer limit, and counts it', async () => {
    const flaky = await startFlaky('flaky', 1, 503);
    upstreams.push(flaky);
    await configure(retry(['5xx']), [flaky.port]);
    const s0 = snapshot();
    const r = await get({ method: 'POST', body: Buffer.alloc(200 * 1024, 'x') });
    assert.equal(r.status, 503, 'the failure goes back as is');
    assert.equal(flaky.requests.length, 1);
    assert.equal(stats().retry_or_shadow_abandoned - s0.retry_or_shadow_abandoned, 1);
    assert.equal(stats().upstream_rq_retry - s0.upstream_rq_retry, 0);
  });

  it('cuts a hanging try at perTryTimeout and succeeds on the next host', async () => {
    const hanging = await startControlledUpstream('hanging');
    const good = await startControlledUpstream('good');
    upstreams.push(hanging, good);
    hanging.mode = 'hang';
    await configure(retry(['5xx'], { perTryTimeoutMs: 50 }), [hanging.port, good.port], {}, 5000);
    const s0 = snapshot();
    const r = await get();
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-upstream'], 'good');
    assert.equal(stats().upstream_rq_per_try_timeout - s0.upstream_rq_per_try_timeout, 1);
    await until(() => hanging.open.size === 0, 'the abandoned try to be closed');

    // Without a retriable condition the per-try timeout is the answer: 504 UT.
    await configure(retry(['connect-failure'], { perTryTimeoutMs: 50 }), [hanging.port]);
    const t = await get();
    assert.equal(t.status, 504);
    assert.equal(t.headers['x-jibe-response-flags'], 'UT');
    hanging.release();
  });

  it('sends a retry to another host when there is one', async () => {
    const bad = await startControlledUpstream('bad');
    const good = await startControlledUpstream('good');
    upstreams.push(bad, good);
    bad.mode = 'fail';
    await configure(retry(['5xx'], { attempts: 1 }), [bad.port, good.port]);
    const s0 = snapshot();
    for (let i = 0; i < 6; i++) assert.equal((await get()).headers['x-upstream'], 'good');
    assert.ok(bad.requests.length > 0, 'some first tries went to the bad host');
    assert.equal(good.requests.length, 6, 'and each of those was retried on the good one, never on the bad one again');
    assert.equal(stats().upstream_rq_retry - s0.upstream_rq_retry, bad.requests.length);
  });

  it('keeps retries within the budget under a steady failing load', async () => {
    const failing = await startFlaky('failing', 1_000_000, 503);
    upstreams.push(failing);
    await configure(retry(['5xx'], { attempts: 3 }), [failing.port], { retryBudget: { retryRatio: 0.2, minRetriesPerSecond: 0, ttlMs: 10_000 } });
    const s0 = snapshot();
    for (let i = 0; i < 100; i++) assert.equal((await get()).status, 503);
    // The clock stands still: the window holds all 100 deposits, so exactly 20% of them may be spent.
    assert.equal(stats().upstream_rq_retry - s0.upstream_rq_retry, 20);
    assert.equal(failing.requests.length, 120);
    assert.ok(stats().upstream_rq_retry_budget_exhausted - s0.upstream_rq_retry_budget_exhausted > 0);
  });

  it('refuses retries beyond maxRetries in flight (overflow)', async () => {
    // The first two requests fail together; every later one hangs until released.
    const held: ServerResponse[] = [];
    const pair: ServerResponse[] = [];
    const upstream = await startUpstream('pair', (req, res) => {
      req.resume();
      if (pair.length < 2 && held.length === 0 && upstream.requests.length <= 2) {
        pair.push(res);
        if (pair.length === 2) for (const r of pair) r.writeHead(503).end('fail');
        return;
      }
      held.push(res);
    });
    upstreams.push(upstream);
    await configure(retry(['5xx'], { attempts: 2 }), [upstream.port], { circuitBreakers: { maxRetries: 1 } });
    const s0 = snapshot();
    const first = get();
    const second = get();
    await until(() => held.length === 1, 'one retry in flight');
    const overflowed = await Promise.race([first, second]);
    assert.equal(overflowed.status, 503, 'the second retry found no free slot');
    assert.equal(stats().upstream_rq_retry_overflow - s0.upstream_rq_retry_overflow, 1);
    held[0].writeHead(200).end('late');
    const results = await Promise.all([first, second]);
    assert.deepEqual(results.map((r) => r.status).sort(), [200, 503]);
    assert.equal(stats().upstream_rq_retry_active, 0, 'the slot went back');
  });
});
