// Inbound caller identities are bounded: past MAX_INBOUND_PEERS distinct peer
// metadata values (many callers, or a client inventing them) requests are
// still counted, under an all-unknown source, and known callers keep theirs.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, test } from 'node:test';
import type { RunningProxy } from '../../../../proxy/proxy.ts';
import { parsePrometheusText, sumSamples } from '../../../../proxy/telemetry/prometheus-text.ts';
import { PEER_METADATA_HEADER } from '../../../../proxy/telemetry/telemetry-labels.ts';
import { freePort, fullUpdate, inboundToApp, request, startSidecar, startUpstream } from '../proxy-test-helpers.ts';
import type { Upstream } from '../proxy-test-helpers.ts';

/** proxy-telemetry.ts MAX_INBOUND_PEERS. */
const BOUND = 1000;

let app: Upstream;
let callee: RunningProxy;
let inboundPort: number;
const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });

before(async () => {
  app = await startUpstream('reviews');
  inboundPort = await freePort();
  callee = await startSidecar({ node: { id: 'sidecar~reviews-v1.default', type: 'sidecar', namespace: 'default', workload: 'reviews-v1', labels: { app: 'reviews' } } });
  await callee.apply(
    fullUpdate(inboundToApp(inboundPort, app.port)),
  );
});

after(async () => {
  agent.destroy();
  await callee.close();
  await app.close();
});

const metadata = (i: number): string => `caller-${i};default;unknown;caller-${i};v1;vm;reviews.default.svc.cluster.local`;

test('callers past the bound are counted under an unknown source, every request still counted', async () => {
  const extra = 5;
  for (let i = 0; i < BOUND + extra; i += 50) {
    const batch: Array<Promise<unknown>> = [];
    for (let j = i; j < Math.min(i + 50, BOUND + extra); j++) batch.push(request(inboundPort, { headers: { [PEER_METADATA_HEADER]: metadata(j) }, agent }));
    await Promise.all(batch);
  }
  // A caller seen before the bound keeps its own series.
  assert.equal((await request(inboundPort, { headers: { [PEER_METADATA_HEADER]: metadata(0) }, agent })).status, 200);
  const samples = parsePrometheusText(await callee.telemetry.render());
  assert.equal(sumSamples(samples, 'istio_requests_total', { reporter: 'destination' }), BOUND + extra + 1);
  assert.equal(sumSamples(samples, 'istio_requests_total', { reporter: 'destination', source_workload: 'caller-0' }), 2);
  assert.equal(sumSamples(samples, 'istio_requests_total', { reporter: 'destination', source_workload: 'unknown', destination_service: 'unknown' }), extra);
});
