// maxPendingRequests for HTTP/2 clusters: a request waits for a stream slot
// (the upstream's SETTINGS_MAX_CONCURRENT_STREAMS on maxConnections sessions),
// and beyond maxPendingRequests waiting ones it is shed at once with 503 UO.
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { RunningProxy } from '../../../../proxy/proxy.ts';
import { cluster, endpoints, fullUpdate, request, route, routeConfig, startSidecar, toCluster, vhost } from '../proxy-test-helpers.ts';
import { until } from '../resilience/resilience-test-helpers.ts';

describe('circuit breakers on an HTTP/2 cluster', () => {
  let server: http2.Http2Server;
  let port = 0;
  const held: http2.ServerHttp2Stream[] = [];
  const sessions = new Set<http2.ServerHttp2Session>();
  let proxy: RunningProxy;

  before(async () => {
    // One stream at a time per session: the second request must wait for a slot.
    server = http2.createServer({ settings: { maxConcurrentStreams: 1 } });
    server.on('session', (s) => {
      sessions.add(s);
      s.once('close', () => sessions.delete(s));
    });
    server.on('stream', (stream) => {
      stream.on('error', () => {});
      held.push(stream);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
    proxy = await startSidecar();
    await proxy.apply(
      fullUpdate([
        routeConfig('outbound', [vhost('svc', ['svc'], [route('r', [], toCluster('svc'))])]),
        cluster('svc', 'ROUND_ROBIN', { protocol: 'http2', circuitBreakers: { maxConnections: 1, maxPendingRequests: 1 } }),
        endpoints('svc', [port]),
      ]),
    );
  });

  after(async () => {
    await proxy.close();
    for (const s of sessions) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const get = () => request(proxy.ports.outbound!, { headers: { host: 'svc' } });
  const release = () => {
    for (const stream of held.splice(0)) if (!stream.closed) stream.respond({ ':status': 200 }, { endStream: true });
  };

  it('queues one request for a stream slot and sheds the next with 503 UO', { timeout: 10_000 }, async () => {
    const stats = proxy.stats.cluster('svc');
    const first = get();
    await until(() => held.length === 1, 'the first stream at the upstream');
    const second = get();
    await until(() => stats.upstream_rq_pending_active === 1, 'the second request waiting for a slot');
    const shed = await get();
    assert.equal(shed.status, 503);
    assert.equal(shed.headers['x-jibe-response-flags'], 'UO');
    assert.equal(stats.upstream_rq_pending_overflow, 1);
    release();
    assert.equal((await first).status, 200);
    await until(() => held.length === 1, 'the queued request got the slot');
    release();
    assert.equal((await second).status, 200);
    assert.equal(stats.upstream_rq_pending_active, 0);
  });
});
