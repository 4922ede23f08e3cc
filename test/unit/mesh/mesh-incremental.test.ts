// Incremental config builds: a change that only flipped workloads' health is
// patched into each proxy's last config instead of rebuilding it, and the
// patched config must equal what a full build of the same snapshot gives —
// for sidecars, gateways, subsets and per-caller locality priorities alike.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ConfigStore } from '../../../core/config/config-store.ts';
import { MeshService } from '../../../core/mesh/mesh-service.ts';
import { DEFAULT_MESH_SETTINGS } from '../../../core/mesh/mesh-snapshot.ts';
import { buildProxyConfig } from '../../../core/mesh/proxy-config-builder.ts';
import type { Resource } from '../../../core/model/resource.ts';
import type { ProxyNode, ProxyResource } from '../../../core/model/proxy-config.ts';
import type { Workload } from '../../../core/model/workload.ts';
import { RegistryAggregator } from '../../../core/registry/registry-aggregator.ts';
import type { RegistryChange } from '../../../core/registry/registry-aggregator.ts';
import { bookinfoParts, dr, find, INGRESS, sidecar } from './mesh-fixtures.ts';

const REVIEWS_V1 = 'outbound|9080|v1|reviews.default.svc.cluster.local';
const RATINGS = 'outbound|9080||ratings.default.svc.cluster.local';
const OD = { consecutive5xxErrors: 3, interval: '10s', baseEjectionTime: '30s' };

function staticStore(rules: Resource[]): ConfigStore {
  return {
    list: () => Promise.resolve(rules),
    apply: () => Promise.reject(new Error('read-only')),
    delete: () => Promise.reject(new Error('read-only')),
    watch: () => () => undefined,
    close: () => Promise.resolve(),
  };
}

interface Mesh {
  registry: RegistryAggregator;
  mesh: MeshService;
  workloads: Map<string, Workload>;
  /** Upserts a changed copy of a workload. */
  change(name: string, patch: Partial<Workload>): void;
}

async function startMesh(options: { incrementalBuilds?: boolean; localityRule?: boolean } = {}): Promise<Mesh> {
  const parts = bookinfoParts();
  // A second ratings instance elsewhere, so locality failover has two priority levels.
  parts.workloads = parts.workloads.map((w) => (w.name === 'ratings-v1' ? { ...w, locality: { region: 'eu-west1', zone: 'b' } } : w));
  parts.workloads.push({ ...parts.workloads.find((w) => w.name === 'ratings-v1')!, name: 'ratings-v2', address: '10.0.0.16', locality: { region: 'us-east', zone: 'a' } });
  const rules: Resource[] = [...(parts.destinationRules ?? []), ...(parts.virtualServices ?? []), ...(parts.gateways ?? [])];
  if (options.localityRule) {
    rules.push(dr('ratings', { host: 'ratings', trafficPolicy: { outlierDetection: OD, loadBalancer: { simple: 'ROUND_ROBIN', localityLbSetting: { failover: [{ from: 'eu-west1', to: 'us-east' }] } } } }));
  }
  const registry = new RegistryAggregator();
  registry.apply('vm', [{ kind: 'sync', services: parts.services, workloads: parts.workloads }]);
  const mesh = new MeshService(staticStore(rules), registry, DEFAULT_MESH_SETTINGS, { incrementalBuilds: options.incrementalBuilds });
  await mesh.start();
  const workloads = new Map(parts.workloads.map((w) => [w.name, w]));
  return {
    registry,
    mesh,
    workloads,
    change(name, patch) {
      const next = { ...workloads.get(name)!, ...patch };
      workloads.set(name, next);
      registry.apply('vm', [{ kind: 'workload', op: 'upsert', workload: next }]);
    },
  };
}

const NODES: ProxyNode[] = [sidecar('productpage-v1', { app: 'productpage', version: 'v1' }), sidecar('reviews-v1', { app: 'reviews', version: 'v1' }), INGRESS];

function byKey(resources: ProxyResource[]): Map<string, ProxyResource> {
  return new Map(resources.map((r) => [`${r.type}/${r.name}`, r]));
}

describe('incremental config builds', () => {
  it('patches only the endpoints of the hosts whose health changed, equal to a full build', async () => {
    const m = await startMesh();
    const before = NODES.map((n) => m.mesh.build(n));
    m.change('reviews-v1', { health: 'unhealthy' });
    const after = NODES.map((n) => m.mesh.build(n));
    const snapshot = m.mesh.snapshot();
    NODES.forEach((node, i) => {
      assert.deepEqual(after[i], buildProxyConfig(snapshot, node), `config of ${node.id}`);
      const old = byKey(before[i]);
      for (const r of after[i]) {
        const key = `${r.type}/${r.name}`;
        const reviewsEndpoints = r.type === 'endpoints' && r.name.endsWith('|reviews.default.svc.cluster.local');
        // Unchanged resources are the very same objects: the discovery server's hash cache and diff skip them.
        if (reviewsEndpoints) assert.notEqual(r, old.get(key), key);
        else assert.equal(r, old.get(key), key);
      }
    });
    assert.equal(find(after[0], 'endpoints', REVIEWS_V1).endpoints[0].healthy, false);
    assert.equal(find(before[0], 'endpoints', REVIEWS_V1).endpoints[0].healthy, true, 'an earlier config is never mutated');
  });

  it('keeps up over several changes between builds, and proxies that skipped a version', async () => {
    const m = await startMesh();
    const [early, late] = NODES;
    m.mesh.build(early);
    m.mesh.build(late);
    m.change('reviews-v2', { health: 'unhealthy' });
    m.change('ratings-v1', { health: 'unhealthy' });
    m.mesh.build(early);
    m.change('reviews-v2', { health: 'healthy' });
    m.change('details-v1', { health: 'unhealthy' });
    const snapshot = m.mesh.snapshot();
    assert.deepEqual(m.mesh.build(early), buildProxyConfig(snapshot, early));
    assert.deepEqual(m.mesh.build(late), buildProxyConfig(snapshot, late));
    assert.equal(find(m.mesh.build(late), 'endpoints', RATINGS).endpoints.find((e) => e.workload === 'ratings-v1')?.healthy, false);
  });

  it('recomputes per-caller locality priorities of patched endpoints', async () => {
    const m = await startMesh({ localityRule: true });
    const node = NODES[1];
    m.mesh.build(node);
    m.change('ratings-v2', { health: 'unhealthy' });
    const built = m.mesh.build(node);
    assert.deepEqual(built, buildProxyConfig(m.mesh.snapshot(), node));
    const endpoints = find(built, 'endpoints', RATINGS).endpoints;
    assert.deepEqual(endpoints.map((e) => [e.workload, e.healthy, e.priority ?? 0]), [['ratings-v2', false, 1], ['ratings-v1', true, 0]]);
  });

  it('rebuilds whole configs when more than health changed', async () => {
    const m = await startMesh();
    const before = m.mesh.build(NODES[0]);
    m.change('reviews-v1', { address: '10.0.0.99' });
    const after = m.mesh.build(NODES[0]);
    assert.deepEqual(after, buildProxyConfig(m.mesh.snapshot(), NODES[0]));
    assert.ok(find(after, 'endpoints', REVIEWS_V1).endpoints.some((e) => e.address === '10.0.0.99'));
    assert.notEqual(find(after, 'listener', 'outbound|9080|reviews.default.svc.cluster.local'), find(before, 'listener', 'outbound|9080|reviews.default.svc.cluster.local'));
  });

  it('gives the same configs with incremental builds switched off', async () => {
    const on = await startMesh();
    const off = await startMesh({ incrementalBuilds: false });
    for (const m of [on, off]) {
      for (const n of NODES) m.mesh.build(n);
      m.change('reviews-v3', { health: 'healthy' });
    }
    for (const n of NODES) assert.deepEqual(on.mesh.build(n), off.mesh.build(n));
  });
});

describe('registry change detail', () => {
  it('reports health-only workload changes with the workloads before and after, anything else as unknown', () => {
    const parts = bookinfoParts();
    const registry = new RegistryAggregator();
    registry.apply('vm', [{ kind: 'sync', services: parts.services, workloads: parts.workloads }]);
    const seen: RegistryChange[] = [];
    registry.onChange((change) => seen.push(change));
    const v1 = parts.workloads.find((w) => w.name === 'reviews-v1')!;
    registry.workloads();
    const down = { ...v1, health: 'unhealthy' as const };
    registry.apply('vm', [{ kind: 'workload', op: 'upsert', workload: down }]);
    assert.equal(seen[0].endpoints?.length, 1);
    assert.equal(seen[0].endpoints?.[0].before, v1);
    assert.equal(seen[0].endpoints?.[0].after, down);
    assert.ok(registry.workloads().includes(down) && !registry.workloads().includes(v1));
    registry.apply('vm', [{ kind: 'workload', op: 'upsert', workload: { ...down, labels: { ...down.labels, extra: 'x' } } }]);
    assert.equal(seen[1].endpoints, undefined, 'a label change is not health-only');
    registry.workloads();
    registry.apply('vm', [{ kind: 'workload', op: 'upsert', workload: { ...v1, name: 'reviews-new' } }]);
    assert.equal(seen[2].endpoints, undefined, 'a new workload is not health-only');
  });
});
