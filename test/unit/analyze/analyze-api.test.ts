// jibe analyze against a live control plane reading two config stores: the
// findings come over GET /api/v1/analyze, the status names the store conflict,
// and the CLI exits non-zero on errors (with --output json).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { registerPlugins } from '../../../cli/plugins.ts';
import type { AnalyzeResponse } from '../../../core/analyze/analyze-route.ts';
import { FileConfigStore } from '../../../core/config/config-store-file.ts';
import { startControlPlane } from '../../../core/control-plane.ts';
import { DEFAULT_MESH_SETTINGS } from '../../../core/mesh/mesh-snapshot.ts';
import type { Resource } from '../../../core/model/resource.ts';
import { CONFIG_STORE } from '../../../core/plugins/plugin-tokens.ts';

const reviewsVs = (subset: string): Resource => ({
  apiVersion: 'networking.istio.io/v1',
  kind: 'VirtualService',
  metadata: { name: 'reviews', namespace: 'default' },
  spec: { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews', subset } }] }] },
});

describe('GET /api/v1/analyze on a control plane with two config stores', () => {
  it('reports the store conflict, a subset no platform provides and a stale VM; jibe analyze exits 1', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'jibe-analyze-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    // The second store already holds a different reviews rule.
    const second = await FileConfigStore.open(join(dir, 'second'));
    await second.apply([reviewsVs('v1')]);
    await second.close();

    const container = registerPlugins();
    container.register(CONFIG_STORE, { useValue: { name: 'second', create: async () => FileConfigStore.open(join(dir, 'second')) } });
    const cp = await startControlPlane({
      container,
      dataDir: dir,
      settings: DEFAULT_MESH_SETTINGS,
      host: '127.0.0.1',
      discoveryPort: 0,
      apiPort: 0,
      configStore: 'file,second',
      stateStore: 'file',
      platforms: ['vm'],
      logger: pino({ level: 'silent' }),
    });
    t.after(() => cp.close());
    const api = `http://127.0.0.1:${cp.ports.api}`;
    const call = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
      const res = await fetch(api + path, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
      const json = (await res.json()) as T;
      assert.ok(res.ok, `${method} ${path}: ${JSON.stringify(json)}`);
      return json;
    };

    const service = [{ name: 'reviews', port: 9080, portName: 'http' }];
    await call('PUT', '/api/v1/workloads', { name: 'reviews-v1', address: '10.0.0.1', labels: { version: 'v1' }, serviceAccount: 'reviews', services: service });
    // Registered by a node agent (host facts): it is expected to heartbeat.
    await call('PUT', '/api/v1/workloads', { name: 'reviews-vm', address: '10.0.0.2', labels: { version: 'v1' }, serviceAccount: 'reviews', services: service, host: { hostname: 'vm-1' } });
    const dr: Resource = { apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'reviews', namespace: 'default' }, spec: { host: 'reviews', subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v3', labels: { version: 'v3' } }] } };
    await call('POST', '/api/v1/config/apply', { documents: [{ resource: dr, source: {} }, { resource: reviewsVs('v3'), source: {} }] });

    const status = await call<{ configStores: string[]; configConflicts: Array<{ resource: string; winner: string }> }>('GET', '/api/v1/status');
    assert.deepEqual(status.configStores, ['file', 'second']);
    assert.deepEqual(status.configConflicts.map((c) => [c.resource, c.winner]), [['VirtualService/default/reviews', 'file']]);

    await delay(5); // so the agent-managed VM's last report is older than the 1ms limit below
    const { findings, summary } = await call<AnalyzeResponse>('GET', '/api/v1/analyze?staleAfter=1ms');
    const brief = findings.map((f) => `${f.code} ${f.resource} ${f.field ?? ''}`.trim());
    assert.deepEqual(brief, [
      'JIBE_ERR_STORE_CONFLICT VirtualService/default/reviews',
      'JIBE_ERR_REFERENCE VirtualService/default/reviews spec.http[0].route[0].destination.subset',
      'JIBE_ERR_WORKLOAD_STALE Workload/vm/default/reviews-vm',
    ]);
    assert.equal(summary.errors, 3);
    const fresh = await call<AnalyzeResponse>('GET', '/api/v1/analyze');
    assert.ok(!fresh.findings.some((f) => f.code === 'JIBE_ERR_WORKLOAD_STALE'), 'within the default limit the VM is not stale');

    const cli = spawn(process.execPath, [join(import.meta.dirname, '../../../cli/jibe.ts'), 'analyze', '--server', api, '--output', 'json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    cli.stdout.on('data', (c) => (out += String(c)));
    const [code] = (await once(cli, 'exit')) as [number];
    assert.equal(code, 1, 'errors make the exit code non-zero');
    assert.equal((JSON.parse(out) as AnalyzeResponse).summary.errors, 2);
  });
});
