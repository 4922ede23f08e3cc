// Two sidecars and an app on loopback: the caller's outbound hop and the
// callee's inbound hop each count the request under Istio's labels, link
// their spans parent to child, and log it with the request id the app saw.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Writable } from 'node:stream';
import type { DestinationStream } from 'pino';
import type { RunningProxy } from '../../../../proxy/proxy.ts';
import { parsePrometheusText, sumSamples } from '../../../../proxy/telemetry/prometheus-text.ts';
import type { ZipkinSpan } from '../../../../proxy/telemetry/zipkin-reporter.ts';
import { freePort, fullUpdate, inboundToApp, outboundToService, request, startSidecar, startUpstream } from '../proxy-test-helpers.ts';
import type { Upstream } from '../proxy-test-helpers.ts';

const HOST = 'reviews.default.svc.cluster.local';
const IN = 'inbound|9080||';

let app: Upstream;
let caller: RunningProxy;
let callee: RunningProxy;
const spans: ZipkinSpan[] = [];
const logLines: string[] = [];
const logStream = new Writable({
  write(chunk: Buffer, _enc, done) {
    logLines.push(...chunk.toString().split('\n').filter((l) => l !== ''));
    done();
  },
}) as unknown as DestinationStream;

before(async () => {
  app = await startUpstream('reviews');
  const inboundPort = await freePort();
  callee = await startSidecar({
    node: { id: 'sidecar~reviews-v2.default', type: 'sidecar', namespace: 'default', workload: 'reviews-v2', labels: { app: 'reviews', version: 'v2' } },
    telemetry: { accessLog: 'json', accessLogDestination: logStream, tracing: { sampling: 100 }, spanSink: { report: (s) => spans.push(s) } },
  });
  await callee.apply(fullUpdate(inboundToApp(inboundPort, app.port)));
  caller = await startSidecar({
    node: { id: 'sidecar~productpage-v1.default', type: 'sidecar', namespace: 'default', workload: 'productpage-v1', labels: { app: 'productpage', version: 'v1' } },
    telemetry: { tracing: { sampling: 100 }, spanSink: { report: (s) => spans.push(s) } },
  });
  await caller.apply(
    fullUpdate(outboundToService(HOST, 9080, { port: inboundPort, workload: 'reviews-v2', namespace: 'default', identity: 'spiffe://cluster.local/ns/default/sa/reviews', labels: { app: 'reviews', version: 'v2' }, platform: 'vm' })),
  );
});

after(async () => {
  await caller.close();
  await callee.close();
  await app.close();
});

test('a request through two sidecars is counted by both reporters under Istio labels', async () => {
  const reply = await request(caller.ports.outbound!, { path: '/reviews/1?x=1', headers: { host: 'reviews:9080' } });
  assert.equal(reply.status, 200);
  const out = parsePrometheusText(await caller.telemetry.render());
  const common = { destination_workload: 'reviews-v2', destination_service: HOST, destination_service_name: 'reviews', destination_service_namespace: 'default', destination_version: 'v2', response_code: '200', request_protocol: 'http', response_flags: '-' };
  assert.equal(sumSamples(out, 'istio_requests_total', { reporter: 'source', source_workload: 'productpage-v1', source_app: 'productpage', source_version: 'v1', destination_principal: 'spiffe://cluster.local/ns/default/sa/reviews', ...common }), 1);
  assert.equal(sumSamples(out, 'istio_request_duration_milliseconds_count', { reporter: 'source' }), 1);
  const inn = parsePrometheusText(await callee.telemetry.render());
  assert.equal(sumSamples(inn, 'istio_requests_total', { reporter: 'destination', source_workload: 'productpage-v1', source_app: 'productpage', destination_app: 'reviews', connection_security_policy: 'none', ...common }), 1);
  assert.equal(sumSamples(inn, 'istio_response_bytes_sum', { reporter: 'destination' }), Buffer.byteLength('reviews GET /reviews/1?x=1'));
  // Bounded cardinality: no path ever becomes a label value.
  assert.ok(!(await callee.telemetry.render()).includes('/reviews/1'));
});

test('the app sees this hop as its parent span and no peer metadata; the two spans are parent and child', async () => {
  spans.length = 0;
  app.requests.length = 0;
  await request(caller.ports.outbound!, { path: '/reviews/2', headers: { host: 'reviews:9080' } });
  const seen = app.requests[0].headers;
  assert.equal(seen['x-jibe-peer-metadata'], undefined);
  assert.equal(spans.length, 2);
  const client = spans.find((s) => s.kind === 'CLIENT')!;
  const server = spans.find((s) => s.kind === 'SERVER')!;
  assert.equal(client.traceId, server.traceId);
  assert.equal(server.parentId, client.id);
  assert.equal(client.parentId, undefined);
  assert.equal(seen['x-b3-traceid'], client.traceId);
  assert.equal(seen['x-b3-spanid'], server.id);
  assert.equal(seen['x-b3-parentspanid'], client.id);
  assert.equal(seen['x-b3-sampled'], '1');
  assert.equal(seen.traceparent, `00-${client.traceId}-${server.id}-01`);
  assert.equal(seen.b3, `${client.traceId}-${server.id}-1-${client.id}`);
  assert.equal(client.localEndpoint.serviceName, 'productpage.default');
  assert.equal(server.tags['http.status_code'], '200');
});

test('an incoming trace is continued, not restarted', async () => {
  spans.length = 0;
  app.requests.length = 0;
  const traceId = '463ac35c9f6413ad48485a3953bb6124';
  await request(caller.ports.outbound!, { path: '/', headers: { host: 'reviews:9080', traceparent: `00-${traceId}-a2fb4a1d1a96d312-01` } });
  const client = spans.find((s) => s.kind === 'CLIENT')!;
  assert.equal(client.traceId, traceId);
  assert.equal(client.parentId, 'a2fb4a1d1a96d312');
  assert.equal(app.requests[0].headers['x-b3-traceid'], traceId);
});

test('the access log is one JSON line per request carrying the request id the app saw', async () => {
  logLines.length = 0;
  app.requests.length = 0;
  await request(caller.ports.outbound!, { method: 'POST', path: '/reviews/3', headers: { host: 'reviews:9080', 'user-agent': 't/1' }, body: 'hello' });
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(logLines.length, 1);
  const entry = JSON.parse(logLines[0]);
  assert.equal(entry.x_request_id, app.requests[0].headers['x-request-id']);
  assert.equal(entry.method, 'POST');
  assert.equal(entry.path, '/reviews/3');
  assert.equal(entry.response_code, 200);
  assert.equal(entry.bytes_received, 5);
  assert.equal(entry.source_workload, 'productpage-v1');
  assert.equal(entry.destination_workload, 'reviews-v2');
  assert.equal(entry.reporter, 'destination');
  assert.equal(entry.trace_id, app.requests[0].headers['x-b3-traceid']);
  assert.equal(entry.upstream_cluster, IN);
  assert.equal(typeof entry.time, 'string');
});

test('a local reply is counted with its code and flags', async () => {
  const reply = await request(caller.ports.outbound!, { path: '/', headers: { host: 'nowhere:80' } });
  assert.equal(reply.status, 404);
  const out = parsePrometheusText(await caller.telemetry.render());
  assert.equal(sumSamples(out, 'istio_requests_total', { reporter: 'source', response_code: '404', response_flags: 'NR', destination_service: 'unknown' }), 1);
});

test('the metrics endpoint serves Istio metrics at /stats/prometheus', async () => {
  const proxy = await startSidecar({ metricsPort: 0, metricsAddress: '127.0.0.1' });
  try {
    const reply = await request(proxy.ports.metrics!, { path: '/stats/prometheus' });
    assert.equal(reply.status, 200);
    assert.match(reply.headers['content-type'] ?? '', /text\/plain; version=0\.0\.4/);
    assert.match(reply.body, /# TYPE istio_requests_total counter/);
    assert.match(reply.body, /# TYPE istio_request_duration_milliseconds histogram/);
    const admin = await request(proxy.ports.admin, { path: '/stats/prometheus' });
    assert.match(admin.body, /# TYPE istio_tcp_connections_opened_total counter/);
  } finally {
    await proxy.close();
  }
});
