import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { RegistryEvent } from '../../../../core/registry/platform-registry.ts';
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
    const last = events.at(-1)![0];
    assert.equal(last.kind, 'sync');
    if (last.kind !== 'sync') return;
    assert.deepEqual(last.services.map((s) => [s.hostname, s.ports]), [['reviews.default.svc.cluster.local', [{ name: 'http', port: 9080, protocol: 'http' }]]]);
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
});
