// The measuring side the registry-sync benchmarks share: a vm workload whose
// sidecar is a client of every service (so its config carries every
// endpoint), the wait for it to ACK a mesh version, and a count of which
// registry changes took the control plane's incremental (health-only) path.
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import pino from 'pino';
import type { RunningControlPlane } from '../../core/control-plane.ts';
import type { RegistryAggregator } from '../../core/registry/registry-aggregator.ts';
import { startProxy } from '../../proxy/proxy.ts';
import type { RunningProxy } from '../../proxy/proxy.ts';

const CLIENT_ID = 'sidecar~client.default';

export interface SyncSidecar {
  proxy: RunningProxy;
  /** Start → the sidecar ACKed the mesh version current when it connected. */
  firstSyncMs: number;
  /** The mesh version the sidecar last ACKed (from the control plane's proxy status). */
  syncedVersion(): Promise<number>;
}

export async function startSyncSidecar(cp: RunningControlPlane): Promise<SyncSidecar> {
  await fetch(`http://127.0.0.1:${cp.ports.api}/api/v1/workloads`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'client', address: '127.0.0.1', services: [{ name: 'client', port: 9999 }] }),
  });
  const proxy = await startProxy({
    node: { id: CLIENT_ID, type: 'sidecar', namespace: 'default', workload: 'client', platform: 'vm', labels: {} },
    discoveryAddress: `127.0.0.1:${cp.ports.discovery}`,
    outboundPort: 0,
    adminPort: 0,
    logger: pino({ level: 'silent' }),
  });
  const syncedVersion = async (): Promise<number> => {
    const res = await fetch(`http://127.0.0.1:${cp.ports.api}/api/v1/proxies`);
    const body = (await res.json()) as { proxies: Array<{ id: string; syncedVersion?: string }> };
    return Number(body.proxies.find((p) => p.id === CLIENT_ID)?.syncedVersion ?? 0);
  };
  const started = performance.now();
  while ((await syncedVersion()) < cp.mesh.snapshot().version) await delay(20);
  return { proxy, firstSyncMs: performance.now() - started, syncedVersion };
}

/** Counts, while `measuring.on`, registry changes that reached the mesh as health-only (incremental) or as anything. */
export function countChangePaths(cp: RunningControlPlane): { paths: { incremental: number; full: number }; measuring: { on: boolean } } {
  const paths = { incremental: 0, full: 0 };
  const measuring = { on: false };
  // Bench-only: reads the aggregator the mesh service holds.
  (cp.mesh as unknown as { registry: RegistryAggregator }).registry.onChange((change) => {
    if (measuring.on) void (change.endpoints ? paths.incremental++ : paths.full++);
  });
  return { paths, measuring };
}
