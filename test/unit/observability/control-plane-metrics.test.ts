// The control plane's metrics: the discovery stream's pushes, ACKs (with the
// change→ACK convergence histogram), NACKs and failed pushes counted over real
// gRPC; the CA's certificates; registry sizes; all served as Prometheus text
// on the API port's GET /metrics by a real control plane.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import { readAdminToken } from '../../../core/api/admin-token.ts';
import { DiscoveryServer } from '../../../core/discovery/discovery-server.ts';
import { ControlPlaneMetrics } from '../../../core/telemetry/control-plane-metrics.ts';
import { generateKeyAndCsr } from '../../../proxy/identity/workload-key.ts';
import { parsePrometheusText, sumSamples } from '../../../proxy/telemetry/prometheus-text.ts';
import type { Sample } from '../../../proxy/telemetry/prometheus-text.ts';
import { MapConfigSource, RecordingProxy, SilentProxy, cluster, sidecar, waitFor } from '../discovery/discovery-fixtures.ts';
import { startTestControlPlane } from '../../helpers/control-plane.ts';

async function scrape(metrics: ControlPlaneMetrics): Promise<Sample[]> {
  return parsePrometheusText(await metrics.render());
}

async function serve(t: TestContext, source: MapConfigSource, options: { ackTimeoutMs?: number } = {}) {
  const metrics = new ControlPlaneMetrics({ proxies: () => server.status(), registrySizes: () => ({ vm: { services: 2, workloads: 3 } }) }, { processMetrics: false });
  const server: DiscoveryServer = new DiscoveryServer({ source, observer: metrics, debounceMs: 5, maxDebounceMs: 20, ...options });
  const port = await server.listen('127.0.0.1', 0);
  t.after(() => server.close());
  return { server, metrics, address: `127.0.0.1:${port}` };
}

describe('control-plane metrics from the discovery stream', () => {
  it('counts connected proxies, full and incremental pushes, and observes change→ACK convergence', async (t) => {
    const source = new MapConfigSource([cluster('a')]);
    const { server, metrics, address } = await serve(t, source);
    const proxy = new RecordingProxy(address, sidecar('reviews-v1'));
    t.after(() => proxy.stop());
    await waitFor('snapshot ACKed', () => server.status()[0]?.lastAckedVersion === '1');

    let samples = await scrape(metrics);
    assert.equal(sumSamples(samples, 'pilot_xds', { type: 'sidecar' }), 1);
    assert.equal(sumSamples(samples, 'pilot_xds', { type: 'gateway' }), 0);
    assert.equal(sumSamples(samples, 'pilot_xds_pushes', { type: 'full' }), 1);
    assert.equal(sumSamples(samples, 'pilot_xds_pushes', { type: 'incremental' }), 0);
    // The opening snapshot answers no change: nothing to converge.
    assert.equal(sumSamples(samples, 'pilot_proxy_convergence_time_count'), 0);

    source.set(cluster('b'));
    await waitFor('change ACKed', () => server.status()[0]?.lastAckedVersion === source.version());
    samples = await scrape(metrics);
    assert.equal(sumSamples(samples, 'pilot_xds_pushes', { type: 'incremental' }), 1);
    assert.equal(sumSamples(samples, 'pilot_proxy_convergence_time_count'), 1);
    const sum = sumSamples(samples, 'pilot_proxy_convergence_time_sum');
    assert.ok(sum > 0 && sum < 10, `convergence ${sum}s`);
    // Cumulative buckets end at +Inf with the count.
    assert.equal(sumSamples(samples, 'pilot_proxy_convergence_time_bucket', { le: '+Inf' }), 1);
    assert.equal(sumSamples(samples, 'jibe_registry_workloads', { platform: 'vm' }), 3);
    assert.equal(sumSamples(samples, 'jibe_registry_services', { platform: 'vm' }), 2);

    await proxy.stop();
    await waitFor('proxy gone', () => server.status().length === 0);
    assert.equal(sumSamples(await scrape(metrics), 'pilot_xds', { type: 'sidecar' }), 0);
  });

  it('counts NACKs, and pushes that fail to build or go unanswered', async (t) => {
    const source = new MapConfigSource([cluster('a')]);
    source.unknownNodes.add('ghost');
    const { server, metrics, address } = await serve(t, source, { ackTimeoutMs: 200 });
    const proxy = new RecordingProxy(address, sidecar('picky'));
    t.after(() => proxy.stop());
    await waitFor('snapshot ACKed', () => server.status()[0]?.lastAckedVersion === '1');
    proxy.refuse = () => 'cluster b is not for me';
    source.set(cluster('b'));
    await waitFor('NACK recorded', () => server.status()[0]?.nacks === 1);
    assert.equal(sumSamples(await scrape(metrics), 'pilot_total_xds_rejects'), 1);
    assert.equal(sumSamples(await scrape(metrics), 'pilot_proxy_convergence_time_count'), 0);

    const ghost = new SilentProxy(address, sidecar('ghost'));
    t.after(() => ghost.close());
    const stuck = new SilentProxy(address, sidecar('stuck'));
    t.after(() => stuck.close());
    const [ghostEnd, stuckEnd] = await Promise.all([ghost.drainToStatus(), stuck.drainToStatus()]);
    assert.match(ghostEnd.status.details, /unknown node ghost/);
    assert.match(stuckEnd.status.details, /no ACK or NACK/);
    const samples = await scrape(metrics);
    assert.equal(sumSamples(samples, 'pilot_xds_push_errors', { reason: 'build' }), 1);
    assert.equal(sumSamples(samples, 'pilot_xds_push_errors', { reason: 'ack_timeout' }), 1);
    assert.equal(sumSamples(samples, 'pilot_xds_push_errors', { reason: 'queue_overflow' }), 0);
  });
});

describe('a control plane serves its metrics on GET /metrics', () => {
  it('with certificates issued and refused, registry sizes and process metrics', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'jibe-cp-metrics-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const cp = await startTestControlPlane({
      dataDir: dir,
    });
    t.after(() => cp.close());
    const api = `http://127.0.0.1:${cp.ports.api}`;
    const admin = await readAdminToken(dir);
    const post = async (path: string, body: unknown, token?: string): Promise<Response> =>
      fetch(api + path, { method: 'POST', headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(body) });
    const token = ((await (await post('/api/v1/bootstrap-tokens', { namespace: 'default', serviceAccount: 'reviews' }, admin)).json()) as { token: string }).token;
    const good = await generateKeyAndCsr('spiffe://cluster.local/ns/default/sa/reviews');
    assert.equal((await post('/api/v1/certificates', { credential: { type: 'bootstrap-token', token }, csr: good.csrPem })).status, 200);
    const foreign = await generateKeyAndCsr('spiffe://cluster.local/ns/default/sa/ratings');
    assert.equal((await post('/api/v1/certificates', { credential: { type: 'bootstrap-token', token }, csr: foreign.csrPem })).status, 403);
    const register = await fetch(`${api}/api/v1/workloads`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'reviews-v1', namespace: 'default', address: '127.0.0.1', services: [{ name: 'reviews', port: 9080 }] }),
    });
    assert.equal(register.status, 200, await register.text());

    const res = await fetch(`${api}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const samples = parsePrometheusText(await res.text());
    assert.equal(sumSamples(samples, 'citadel_server_csr_count'), 2);
    assert.equal(sumSamples(samples, 'citadel_server_csr_sign_err_count'), 1);
    assert.equal(sumSamples(samples, 'citadel_server_success_cert_issuance_count', { kind: 'workload' }), 1);
    assert.equal(sumSamples(samples, 'jibe_registry_workloads', { platform: 'vm' }), 1);
    assert.equal(sumSamples(samples, 'jibe_registry_services', { platform: 'vm' }), 1);
    assert.equal(sumSamples(samples, 'pilot_xds'), 0);
    assert.ok(samples.some((s) => s.name === 'process_cpu_user_seconds_total'), 'process metrics');
    // Everything else on the port still answers JSON.
    assert.equal((await fetch(`${api}/healthz`)).headers.get('content-type'), 'application/json');
  });
});
