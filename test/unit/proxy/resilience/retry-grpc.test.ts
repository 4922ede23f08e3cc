// Retries on the HTTP/2 request path: a gRPC upstream answering UNAVAILABLE
// (trailers-only) is retried under `unavailable` with the request message
// replayed, a reset stream under `reset`, and outlier detection hears about
// HTTP/2 connect failures.
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { RetryPolicy } from '../../../../core/model/proxy-config.ts';
import type { RunningProxy } from '../../../../proxy/proxy.ts';
import { cluster, endpoints, freePort, fullUpdate, route, routeConfig, startSidecar, toCluster, vhost } from '../proxy-test-helpers.ts';
import { manualClock, seededRandom } from './resilience-test-helpers.ts';

const retry = (retryOn: string[]): RetryPolicy => ({ attempts: 2, retryOn, retriableStatusCodes: [], backoffBaseMs: 1, backoffMaxMs: 2 });

interface GrpcUpstream {
  port: number;
  /** What the next calls do: 'unavailable' (trailers-only 14), 'reset' (RST_STREAM INTERNAL_ERROR), then 'ok'. */
  script: Array<'unavailable' | 'reset'>;
  bodies: Buffer[];
  close(): Promise<void>;
}

async function startGrpcUpstream(): Promise<GrpcUpstream> {
  const server = http2.createServer();
  const self: GrpcUpstream = {
    port: 0,
    script: [],
    bodies: [],
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    sessions.add(s);
    s.once('close', () => sessions.delete(s));
  });
  self.close = () =>
    new Promise<void>((resolve) => {
      for (const s of sessions) s.destroy();
      server.close(() => resolve());
    });
  server.on('stream', (stream) => {
    // Its own reset makes node emit an error on the stream.
    stream.on('error', () => {});
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      self.bodies.push(Buffer.concat(chunks));
      const next = self.script.shift();
      if (next === 'reset') {
        stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
        return;
      }
      if (next === 'unavailable') {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '14', 'grpc-message': 'try again' }, { endStream: true });
        return;
      }
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(Buffer.concat(chunks));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  self.port = (server.address() as AddressInfo).port;
  return self;
}

interface CallResult {
  grpcStatus: string | undefined;
  body: Buffer;
}

function call(port: number, message: Buffer): Promise<CallResult> {
  return new Promise((resolve, reject) => {
    const client = http2.connect(`http://127.0.0.1:${port}`);
    client.on('error', reject);
    const req = client.request({ ':method': 'POST', ':path': '/pkg.Svc/Call', ':authority': 'svc', 'content-type': 'application/grpc', te: 'trailers' });
    let grpcStatus: string | undefined;
    const chunks: Buffer[] = [];
    req.on('response', (h) => {
      if (h['grpc-status'] !== undefined) grpcStatus = String(h['grpc-status']);
    });
    req.on('trailers', (t) => (grpcStatus = String(t['grpc-status'])));
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      client.close();
      resolve({ grpcStatus, body: Buffer.concat(chunks) });
    });
    req.on('error', reject);
    const frame = Buffer.alloc(5);
    frame.writeUInt32BE(message.length, 1);
    req.end(Buffer.concat([frame, message]));
  });
}

describe('retries through the proxy (HTTP/2 upstreams)', () => {
  let proxy: RunningProxy;
  let upstream: GrpcUpstream;
  const message = Buffer.from('hello, retried world');

  before(async () => {
    upstream = await startGrpcUpstream();
    proxy = await startSidecar({ random: seededRandom(11), now: manualClock().now });
  });
  after(async () => {
    await proxy.close();
    await upstream.close();
  });

  async function configure(policy: RetryPolicy, ports: number[], extra = {}): Promise<void> {
    await proxy.apply(
      fullUpdate([
        routeConfig('outbound', [vhost('svc', ['svc'], [route('r', [], toCluster('svc', { retry: policy }))])]),
        cluster('svc', 'ROUND_ROBIN', { protocol: 'http2', ...extra }),
        endpoints('svc', ports),
      ]),
    );
  }

  it('retries gRPC UNAVAILABLE under `unavailable`, replaying the request message', async () => {
    await configure(retry(['unavailable']), [upstream.port]);
    upstream.script = ['unavailable', 'unavailable'];
    upstream.bodies = [];
    const r = await call(proxy.ports.outbound!, message);
    assert.equal(r.grpcStatus, '0');
    assert.equal(r.body.subarray(5).toString(), message.toString());
    assert.equal(upstream.bodies.length, 3);
    for (const b of upstream.bodies) assert.equal(b.subarray(5).toString(), message.toString());
    assert.equal(proxy.stats.cluster('svc').upstream_rq_retry, 2);

    // Not in retryOn: UNAVAILABLE goes back to the client as the upstream said it.
    await configure(retry(['cancelled']), [upstream.port]);
    upstream.script = ['unavailable'];
    assert.equal((await call(proxy.ports.outbound!, message)).grpcStatus, '14');
  });

  it('retries a reset stream under `reset`', async () => {
    await configure(retry(['reset']), [upstream.port]);
    upstream.script = ['reset'];
    upstream.bodies = [];
    const r = await call(proxy.ports.outbound!, message);
    assert.equal(r.grpcStatus, '0');
    assert.equal(upstream.bodies.length, 2);
  });

  it('retries an HTTP/2 connect failure and feeds outlier detection', async () => {
    const closed = await freePort();
    await configure(retry(['connect-failure']), [closed, upstream.port], {
      outlierDetection: { consecutiveGatewayErrors: 1, intervalMs: 1000, baseEjectionTimeMs: 30_000, maxEjectionPercent: 100, minHealthPercent: 0 },
    });
    upstream.script = [];
    for (let i = 0; i < 3; i++) assert.equal((await call(proxy.ports.outbound!, message)).grpcStatus, '0');
    assert.equal(proxy.stats.cluster('svc').outlier_detection_ejections_active, 1, 'the closed endpoint was ejected');
  });
});
