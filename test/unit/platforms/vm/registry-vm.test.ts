import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { RegistryEvent } from '../../../../core/registry/platform-registry.ts';
import { RegistryAggregator } from '../../../../core/registry/registry-aggregator.ts';
import type { RegistryChange } from '../../../../core/registry/registry-aggregator.ts';
import { FileStateStore } from '../../../../core/state/state-store-file.ts';
import { VmRegistry } from '../../../../platforms/vm/registry-vm.ts';

const OPTIONS = { domain: 'cluster.local', trustDomain: 'cluster.local' };

describe('VmRegistry', () => {
  let dir: string;
  let state: FileStateStore;
  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jibe-vm-'));
    state = await FileStateStore.open(dir);
  });
  afterEach(async () => {
    await state.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('turns a registration into a workload with identity and a derived service', async () => {
    const registry = new VmRegistry(state, OPTIONS);
    const events: RegistryEvent[][] = [];
    await registry.watch((e) => events.push(e));
    const w = await registry.register({
      name: 'reviews-v3', address: '10.0.0.3', serviceAccount: 'bookinfo-reviews', labels: { app: 'reviews', version: 'v3' },
      services: [{ name: 'reviews', port: 9080, targetPort: 19080, portName: 'http' }], proxy: { inboundPorts: { 19080: 15006 } },
    });
    assert.equal(w.identity, 'spiffe://cluster.local/ns/default/sa/bookinfo-reviews');
    assert.deepEqual(w.services, [{ hostname: 'reviews.default.svc.cluster.local', ports: { 9080: 19080 } }]);
    const last = events.at(-1)!;
    assert.deepEqual(last.map((e) => e.kind), ['service', 'workload']);
    const [service, workload] = last;
    assert.ok(service.kind === 'service' && service.op === 'upsert');
    assert.deepEqual([service.service.hostname, service.service.ports], ['reviews.default.svc.cluster.local', [{ name: 'http', port: 9080, protocol: 'http' }]]);
    assert.ok(workload.kind === 'workload' && workload.op === 'upsert');
    assert.deepEqual(workload.workload, w);
  });

  it('keeps registrations across a restart (state store)', async () => {
    await new VmRegistry(state, OPTIONS).register({ name: 'ratings-v1', address: '10.0.0.5', services: [{ name: 'ratings', port: 9080 }] });
    const again = new VmRegistry(state, OPTIONS);
    let synced: RegistryEvent | undefined;
    await again.watch((e) => (synced = e[0]));
    assert.equal(synced?.kind, 'sync');
    if (synced?.kind === 'sync') assert.deepEqual(synced.workloads.map((w) => w.name), ['ratings-v1']);
  });

  it('rejects an invalid registration with every field named, and stores nothing', async () => {
    const registry = new VmRegistry(state, OPTIONS);
    await registry.watch(() => {});
    await assert.rejects(
      registry.register({ name: 'Bad_Name', address: '', services: [{ name: 'x', port: 70000 }] }),
      (err: Error & { code?: string; details?: { causes?: Array<{ details: { field?: string } }> } }) => {
        assert.equal(err.code, 'JIBE_ERR_WORKLOAD_INVALID');
        assert.deepEqual(err.details?.causes?.map((c) => c.details.field), ['name', 'address', 'services[0].port']);
        return true;
      },
    );
    assert.deepEqual(await registry.list(), []);
  });

  it('health changes and deregistration update the view', async () => {
    const registry = new VmRegistry(state, OPTIONS);
    await registry.watch(() => {});
    await registry.register({ name: 'a', address: '10.0.0.1', services: [{ name: 's', port: 80 }] });
    await registry.setHealth('default', 'a', 'unhealthy');
    assert.equal((await registry.list())[0].health, 'unhealthy');
    assert.equal(await registry.deregister('default', 'a'), true);
    assert.equal(await registry.deregister('default', 'a'), false);
    await assert.rejects(registry.setHealth('default', 'a', 'healthy'), /no workload default\/a/);
  });

  it('reports each change incrementally: a health flip is one workload upsert the aggregator takes as health-only', async () => {
    const registry = new VmRegistry(state, OPTIONS);
    const aggregator = new RegistryAggregator();
    const changes: RegistryChange[] = [];
    aggregator.onChange((c) => changes.push(c));
    const events: RegistryEvent[][] = [];
    await aggregator.add({ platform: 'vm', watch: (l) => registry.watch((e) => { events.push(e); l(e); }), stop: () => registry.stop() });
    await registry.register({ name: 'a', address: '10.0.0.1', services: [{ name: 's', port: 80 }] });
    aggregator.workloads();
    events.length = 0;
    changes.length = 0;

    await registry.setHealth('default', 'a', 'unhealthy');
    assert.equal(events.length, 1);
    assert.deepEqual(events[0].map((e) => [e.kind, 'op' in e ? e.op : undefined]), [['workload', 'upsert']]);
    assert.equal(changes.length, 1);
    assert.ok(changes[0].endpoints, 'the aggregator classified the VM health change as health-only');
    assert.deepEqual(changes[0].endpoints.map((p) => [p.before.health, p.after.health]), [['healthy', 'unhealthy']]);
    assert.equal(aggregator.workloads().find((w) => w.name === 'a')?.health, 'unhealthy');
    await registry.stop();
  });

  it('sends a service upsert only when a registration changes the service, and deletes it with its last workload', async () => {
    const registry = new VmRegistry(state, OPTIONS);
    const events: RegistryEvent[][] = [];
    await registry.watch((e) => events.push(e));
    const shape = (batch: RegistryEvent[]) => batch.map((e) => (e.kind === 'service' ? `service ${e.op} ${e.op === 'upsert' ? `${e.service.hostname}:${e.service.ports.map((p) => p.port).join(',')}` : e.hostname}` : e.kind === 'workload' ? `workload ${e.op} ${e.op === 'upsert' ? e.workload.name : e.name}` : 'sync'));
    const host = 's.default.svc.cluster.local';
    await registry.register({ name: 'a', address: '10.0.0.1', services: [{ name: 's', port: 80 }] });
    await registry.register({ name: 'b', address: '10.0.0.2', services: [{ name: 's', port: 80 }] });
    await registry.register({ name: 'c', address: '10.0.0.3', services: [{ name: 's', port: 81 }] });
    await registry.register({ name: 'c', address: '10.0.0.3', services: [{ name: 't', port: 90 }] });
    await registry.register({ name: 'd', address: '10.0.0.4', services: [{ name: 's', port: 82 }] });
    await registry.deregister('default', 'd');
    await registry.deregister('default', 'a');
    await registry.deregister('default', 'b');
    assert.deepEqual(events.slice(1).map(shape), [
      [`service upsert ${host}:80`, 'workload upsert a'],
      ['workload upsert b'],
      [`service upsert ${host}:80,81`, 'workload upsert c'],
      [`service upsert ${host}:80`, 'service upsert t.default.svc.cluster.local:90', 'workload upsert c'],
      [`service upsert ${host}:80,82`, 'workload upsert d'],
      ['workload delete d', `service upsert ${host}:80`],
      ['workload delete a'],
      ['workload delete b', `service delete ${host}`],
    ]);
    // A restart's sync holds what the incremental events left.
    const again = new VmRegistry(state, OPTIONS);
    let synced: RegistryEvent | undefined;
    await again.watch((e) => (synced = e[0]));
    assert.ok(synced?.kind === 'sync');
    assert.deepEqual(synced.services.map((s) => s.hostname), ['t.default.svc.cluster.local']);
    assert.deepEqual(synced.workloads.map((w) => w.name), ['c']);
    await again.stop();
    await registry.stop();
  });
});
