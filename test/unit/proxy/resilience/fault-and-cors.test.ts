// Fault injection (abort and delay at the configured percentage, HTTP and
// gRPC aborts) and CORS (preflight answered locally, actual requests get the
// allow headers, other origins pass untouched), through a running proxy.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sampled } from '../../../../proxy/resilience/fault-injection.ts';
import type { RunningProxy } from '../../../../proxy/proxy.ts';
import { cluster, endpoints, fullUpdate, request, route, routeConfig, startSidecar, startUpstream, toCluster, vhost } from '../proxy-test-helpers.ts';
import type { Upstream } from '../proxy-test-helpers.ts';
import { seededRandom } from './resilience-test-helpers.ts';

describe('sampling', () => {
  it('hits the percentage within statistical tolerance', () => {
    const random = seededRandom(42);
    for (const pct of [0, 0.5, 10, 33.3, 50, 99, 100]) {
      let hits = 0;
      const n = 100_000;
      for (let i = 0; i < n; i++) if (sampled(pct, random)) hits++;
      // 4 standard deviations of a binomial, plus exactness at 0 and 100.
      const sd = Math.sqrt((n * pct * (100 - pct)) / 10_000);
      assert.ok(Math.abs(hits - (n * pct) / 100) <= 4 * sd, `${pct}%: ${hits} of ${n}`);
    }
  });
});

describe('fault injection and CORS through the proxy', () => {
  let up: Upstream;
  let proxy: RunningProxy;
  const cors = {
    allowOrigins: [{ exact: 'https://app.example' }, { prefix: 'https://dev.' }],
    allowMethods: ['GET', 'POST'],
    allowHeaders: ['x-token'],
    exposeHeaders: ['x-trace'],
    maxAgeSeconds: 600,
    allowCredentials: true,
  };

  before(async () => {
    up = await startUpstream('up');
    proxy = await startSidecar({ random: seededRandom(11) });
    await proxy.apply(
      fullUpdate([
        routeConfig('outbound', [
          vhost('svc', ['svc'], [
            route('abort', [{ uri: { prefix: '/abort' } }], toCluster('svc', { fault: { abort: { httpStatus: 418, percentage: 30 } } })),
            route('grpc', [{ uri: { prefix: '/grpc' } }], toCluster('svc', { fault: { abort: { grpcStatus: 14, percentage: 100 } } })),
            route('delay', [{ uri: { prefix: '/delay' } }], toCluster('svc', { fault: { delay: { fixedDelayMs: 1, percentage: 50 } } })),
            route('cors', [{ uri: { prefix: '/cors' } }], toCluster('svc', { cors })),
          ]),
        ]),
        cluster('svc'),
        endpoints('svc', [up.port]),
      ]),
    );
  });

  after(async () => {
    await proxy.close();
    await up.close();
  });

  const port = () => proxy.ports.outbound!;

  it('aborts about 30% of requests with the configured status and flag FI', async () => {
    const n = 300;
    let aborted = 0;
    const before = up.requests.length;
    for (let i = 0; i < n; i++) {
      const r = await request(port(), { path: '/abort', headers: { host: 'svc' } });
      if (r.status === 418) {
        aborted++;
        assert.equal(r.headers['x-jibe-response-flags'], 'FI');
      } else {
        assert.equal(r.status, 200);
      }
    }
    // Binomial(300, 0.3): sd ≈ 7.9; 4 sd either side.
    assert.ok(aborted >= 58 && aborted <= 122, `aborted ${aborted} of ${n}`);
    assert.equal(up.requests.length - before, n - aborted, 'aborted requests never reach the upstream');
    assert.equal(proxy.stats.fault_aborts_injected, aborted);
  });

  it('aborts gRPC-shaped: HTTP 200 with grpc-status', async () => {
    const r = await request(port(), { method: 'POST', path: '/grpc', headers: { host: 'svc', 'content-type': 'application/grpc' }, body: '' });
    assert.equal(r.status, 200);
    assert.equal(r.headers['grpc-status'], '14');
    assert.equal(r.headers['content-type'], 'application/grpc');
  });

  it('delays about half of the requests, then forwards them', async () => {
    const n = 200;
    for (let i = 0; i < n; i++) assert.equal((await request(port(), { path: '/delay', headers: { host: 'svc' } })).status, 200);
    const delayed = proxy.stats.fault_delays_injected;
    assert.ok(delayed >= 72 && delayed <= 128, `delayed ${delayed} of ${n}`);
  });

  it('answers a preflight from an allowed origin itself', async () => {
    const before = up.requests.length;
    const r = await request(port(), {
      method: 'OPTIONS',
      path: '/cors',
      headers: { host: 'svc', origin: 'https://app.example', 'access-control-request-method': 'POST' },
    });
    assert.equal(r.status, 200);
    assert.equal(r.headers['access-control-allow-origin'], 'https://app.example');
    assert.equal(r.headers['access-control-allow-methods'], 'GET,POST');
    assert.equal(r.headers['access-control-allow-headers'], 'x-token');
    assert.equal(r.headers['access-control-max-age'], '600');
    assert.equal(r.headers['access-control-allow-credentials'], 'true');
    assert.equal(up.requests.length, before, 'the preflight never reached the upstream');
  });

  it('adds the allow headers to an actual request from an allowed origin', async () => {
    const r = await request(port(), { path: '/cors', headers: { host: 'svc', origin: 'https://dev.example' } });
    assert.equal(r.status, 200);
    assert.equal(r.headers['access-control-allow-origin'], 'https://dev.example');
    assert.equal(r.headers['access-control-expose-headers'], 'x-trace');
    assert.equal(r.headers['access-control-allow-credentials'], 'true');
  });

  it('leaves requests from other origins alone (the preflight goes upstream)', async () => {
    const before = up.requests.length;
    const pre = await request(port(), {
      method: 'OPTIONS',
      path: '/cors',
      headers: { host: 'svc', origin: 'https://evil.example', 'access-control-request-method': 'POST' },
    });
    assert.equal(up.requests.length, before + 1);
    assert.equal(pre.headers['access-control-allow-origin'], undefined);
    const r = await request(port(), { path: '/cors', headers: { host: 'svc', origin: 'https://evil.example' } });
    assert.equal(r.headers['access-control-allow-origin'], undefined);
  });
});
