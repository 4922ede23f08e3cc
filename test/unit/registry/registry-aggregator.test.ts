import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Service } from '../../../core/model/service.ts';
import type { Workload } from '../../../core/model/workload.ts';
import { RegistryAggregator } from '../../../core/registry/registry-aggregator.ts';

const HOST = 'reviews.default.svc.cluster.local';

function service(platform: Service['platforms'][number], ports: Service['ports']): Service {
  return { hostname: HOST, name: 'reviews', namespace: 'default', ports, platforms: [platform], location: 'MESH_INTERNAL', resolution: 'STATIC' };
}

function workload(platform: Workload['platform'], name: string, address: string): Workload {
  return {
    name, namespace: 'default', platform, address, labels: { app: 'reviews' }, serviceAccount: 'reviews',
    identity: 'spiffe://cluster.local/ns/default/sa/reviews', health: 'healthy', services: [{ hostname: HOST, ports: { 9080: 9080 } }],
  };
}

describe('RegistryAggregator', () => {
  it('merges one host from several platforms into one service with the union of workloads', () => {
    const agg = new RegistryAggregator();
    agg.apply('vm', [{ kind: 'sync', services: [service('vm', [{ name: 'http', port: 9080, protocol: 'http' }])], workloads: [workload('vm', 'reviews-v3', '10.0.0.3')] }]);
    agg.apply('consul', [{ kind: 'sync', services: [service('consul', [{ name: 'http', port: 9080, protocol: 'http' }, { name: 'grpc', port: 9090, protocol: 'grpc' }])], workloads: [workload('consul', 'reviews-v1', '10.0.0.1')] }]);
    const merged = agg.services().get(HOST)!;
    assert.deepEqual(merged.platforms.sort(), ['consul', 'vm']);
    assert.deepEqual(merged.ports.map((p) => p.port), [9080, 9090]);
    assert.deepEqual(agg.workloads().map((w) => w.name).sort(), ['reviews-v1', 'reviews-v3']);
    assert.deepEqual(agg.conflicts(), []);
  });

  it('reports a port whose protocol differs between platforms instead of resolving it silently', () => {
    const agg = new RegistryAggregator();
    agg.apply('vm', [{ kind: 'sync', services: [service('vm', [{ name: 'http', port: 9080, protocol: 'http' }])], workloads: [] }]);
    agg.apply('consul', [{ kind: 'sync', services: [service('consul', [{ name: 'tcp', port: 9080, protocol: 'tcp' }])], workloads: [] }]);
    assert.equal(agg.conflicts().length, 1);
    assert.match(agg.conflicts()[0].message, /port 9080 is tcp on consul but http on vm/);
  });

  it('applies incremental events and notifies listeners', () => {
    const agg = new RegistryAggregator();
    let changes = 0;
    agg.onChange(() => changes++);
    agg.apply('vm', [{ kind: 'workload', op: 'upsert', workload: workload('vm', 'a', '10.0.0.1') }]);
    agg.apply('vm', [{ kind: 'workload', op: 'upsert', workload: workload('vm', 'b', '10.0.0.2') }]);
    agg.apply('vm', [{ kind: 'workload', op: 'delete', namespace: 'default', name: 'a' }]);
    assert.deepEqual(agg.workloads().map((w) => w.name), ['b']);
    assert.equal(changes, 3);
    assert.deepEqual(agg.sizes(), { vm: { services: 0, workloads: 1 } });
  });

  it('a sync replaces a platform view whole, leaving other platforms alone', () => {
    const agg = new RegistryAggregator();
    agg.apply('vm', [{ kind: 'sync', services: [], workloads: [workload('vm', 'a', '10.0.0.1')] }]);
    agg.apply('consul', [{ kind: 'sync', services: [], workloads: [workload('consul', 'c', '10.0.0.9')] }]);
    agg.apply('vm', [{ kind: 'sync', services: [], workloads: [] }]);
    assert.deepEqual(agg.workloads().map((w) => w.name), ['c']);
  });
});
