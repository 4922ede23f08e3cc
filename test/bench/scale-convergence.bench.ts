// Convergence at scale (issues 6, 7, 9): 1,000 services × 10 endpoints in an
// in-process registry, the real MeshService and DiscoveryServer, and N proxies
// subscribed over real gRPC streams, each a client of every service (so every
// health change concerns every proxy). Each change flips one endpoint's health;
// the figure is the time from the registry event until every proxy has applied
// (and so ACKed) the config carrying it.
//
// The proxies are real discovery clients that apply each push with the proxy's
// own proxy-state.ts (validation, cluster objects, load balancers), plus
// `--real-proxies` full `startProxy` sidecars (listeners, security compile).
//
// The control plane runs each measurement twice, interleaved per change (each
// mode with its own registry and proxies, so a change costs only its mode): with
// incremental builds (a health change rebuilds only the endpoints of the
// services it touched) and with `incrementalBuilds: false` (every change
// rebuilds each proxy's whole config, as before), so the two are compared
// under the same machine load.
import { performance } from 'node:perf_hooks';
import { loadavg } from 'node:os';
import { setTimeout as delay } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import pino from 'pino';
import type { ConfigStore } from '../../core/config/config-store.ts';
import { DiscoveryServer } from '../../core/discovery/discovery-server.ts';
import { MeshService } from '../../core/mesh/mesh-service.ts';
import { DEFAULT_MESH_SETTINGS } from '../../core/mesh/mesh-snapshot.ts';
import type { ConfigUpdate, ProxyNode } from '../../core/model/proxy-config.ts';
import type { Service } from '../../core/model/service.ts';
import type { Workload } from '../../core/model/workload.ts';
import { RegistryAggregator } from '../../core/registry/registry-aggregator.ts';
import { defaultLoadBalancers } from '../../proxy/cluster/load-balancers.ts';
import { applyUpdate, ProxyState } from '../../proxy/config/proxy-state.ts';
import type { ResourceMap } from '../../proxy/config/proxy-state.ts';
import { DiscoveryClient } from '../../proxy/discovery/discovery-client.ts';
import { startProxy } from '../../proxy/proxy.ts';
import type { RunningProxy } from '../../proxy/proxy.ts';
import { ProxyStats } from '../../proxy/stats/proxy-stats.ts';
import { machineDescription, writeSection, BENCHMARKS_FILE } from './benchmarks-md.ts';
import { formatLatencies, percentile } from './latency-percentiles.ts';

export const name = 'scale-convergence';
export const description = '1,000 services / 10,000 endpoints in process, N proxies: health change → every proxy ACKed, incremental vs full rebuild (issues 6, 7, 9)';
export const SECTION_TITLE = 'Convergence at scale: 1,000 services / 10,000 endpoints (issues 6, 7, 9)';

const GOAL_MS = 1000;
const NAMESPACES = 10;

function log(message: string): void {
  process.stdout.write(`[scale-convergence] ${message}\n`);
}

/** No rules: the figure is about registry changes. */
const emptyStore: ConfigStore = {
  list: () => Promise.resolve([]),
  apply: () => Promise.reject(new Error('read-only bench store')),
  delete: () => Promise.reject(new Error('read-only bench store')),
  watch: () => () => undefined,
  close: () => Promise.resolve(),
};

const hostOf = (s: number) => `svc-${s}.ns-${s % NAMESPACES}.svc.cluster.local`;
const ip = (k: number) => `10.${(k >> 16) & 255}.${(k >> 8) & 255}.${k & 255}`;

function population(services: number, perService: number): { services: Service[]; workloads: Workload[] } {
  const out: { services: Service[]; workloads: Workload[] } = { services: [], workloads: [] };
  for (let s = 0; s < services; s++) {
    const namespace = `ns-${s % NAMESPACES}`;
    out.services.push({
      hostname: hostOf(s), name: `svc-${s}`, namespace, ports: [{ name: 'http', port: 80, protocol: 'http' }],
      platforms: ['kubernetes'], location: 'MESH_INTERNAL', resolution: 'STATIC', addresses: [`172.16.${s >> 8}.${s & 255}`],
    });
    for (let i = 0; i < perService; i++) {
      out.workloads.push({
        name: `svc-${s}-${i}`, namespace, platform: 'kubernetes', address: ip(s * perService + i + 1),
        labels: { app: `svc-${s}`, version: `v${i % 3}` }, serviceAccount: `svc-${s}`, identity: `spiffe://cluster.local/ns/${namespace}/sa/svc-${s}`,
        health: 'healthy', services: [{ hostname: hostOf(s), ports: { 80: 8080 } }],
      });
    }
  }
  return out;
}

interface Subscriber {
  id: string;
  close(): Promise<void>;
}

/** A discovery client that applies pushes with the proxy's own state code, as a sidecar does, without binding listeners. */
function stateClient(address: string, node: ProxyNode): Subscriber {
  const ctx = { loadBalancers: defaultLoadBalancers, stats: new ProxyStats(), random: Math.random };
  let resources: ResourceMap = new Map();
  let state = ProxyState.empty();
  const client = new DiscoveryClient({
    address,
    node,
    apply: (update: ConfigUpdate) => {
      ({ resources, state } = applyUpdate(resources, update, ctx, state));
    },
  });
  client.start();
  return { id: node.id, close: () => client.stop() };
}

interface ModeRun {
  mesh: MeshService;
  server: DiscoveryServer;
  subscribers: Subscriber[];
  proxies: RunningProxy[];
  toAll: number[];
  perProxy: number[];
}

async function startMode(registry: RegistryAggregator, incremental: boolean, proxies: number, realProxies: number): Promise<ModeRun> {
  const mesh = new MeshService(emptyStore, registry, DEFAULT_MESH_SETTINGS, { incrementalBuilds: incremental });
  await mesh.start();
  const server = new DiscoveryServer({ source: mesh, logger: pino({ level: 'warn' }) });
  const port = await server.listen('127.0.0.1', 0);
  const run: ModeRun = { mesh, server, subscribers: [], proxies: [], toAll: [], perProxy: [] };
  const tag = incremental ? 'inc' : 'full';
  for (let k = 0; k < proxies; k++) {
    const node: ProxyNode = { id: `sidecar~client-${k}.default`, type: 'sidecar', namespace: 'default', workload: `client-${k}`, platform: 'vm', labels: {} };
    if (k < realProxies) {
      const proxy = await startProxy({ node: { ...node, id: `${node.id}-${tag}` }, discoveryAddress: `127.0.0.1:${port}`, outboundPort: 0, adminPort: 0, logger: pino({ level: 'silent' }) });
      run.proxies.push(proxy);
      run.subscribers.push({ id: `${node.id}-${tag}`, close: () => Promise.resolve() });
    } else {
      run.subscribers.push(stateClient(`127.0.0.1:${port}`, { ...node, id: `${node.id}-${tag}` }));
    }
  }
  return run;
}

/**
 * Resolves with each proxy's time to ACK `version` (the server's syncedVersion:
 * ACKed, or told nothing because nothing changed for it) once all have.
 */
async function waitAll(run: ModeRun, version: number, t0: number, timeoutMs: number): Promise<number[]> {
  const times = new Map<string, number>();
  for (;;) {
    const now = performance.now();
    for (const p of run.server.status()) if (Number(p.syncedVersion ?? 0) >= version && !times.has(p.id)) times.set(p.id, now - t0);
    if (times.size >= run.subscribers.length) return [...times.values()];
    if (now - t0 > timeoutMs) throw new Error(`${run.subscribers.length - times.size} proxies did not ACK version ${version} within ${timeoutMs} ms`);
    await delay(2);
  }
}

async function stopMode(run: ModeRun): Promise<void> {
  for (const s of run.subscribers) await s.close();
  for (const p of run.proxies) await p.close();
  await run.server.close();
  run.mesh.stop();
}

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      smoke: { type: 'boolean', default: false },
      changes: { type: 'string' },
      services: { type: 'string' },
      proxies: { type: 'string' },
      'real-proxies': { type: 'string' },
      modes: { type: 'string' },
      'no-write': { type: 'boolean', default: false },
    },
  });
  const services = Number(values.services ?? (values.smoke ? 200 : 1000));
  const perService = 10;
  const proxies = Number(values.proxies ?? (values.smoke ? 4 : 20));
  const realProxies = Math.min(proxies, Number(values['real-proxies'] ?? 1));
  const changes = Number(values.changes ?? (values.smoke ? 10 : 100));
  const modes = (values.modes ?? 'incremental,full').split(',').map((m) => m.trim());
  for (const m of modes) if (m !== 'incremental' && m !== 'full') throw new Error(`--modes: unknown mode '${m}' (incremental, full)`);
  const record = !values.smoke && !values['no-write'] && modes.length === 2;

  const pop = population(services, perService);
  const clients: Workload[] = Array.from({ length: proxies }, (_, k) => ({
    name: `client-${k}`, namespace: 'default', platform: 'vm', address: '127.0.0.1', labels: { app: 'client' }, serviceAccount: 'client',
    identity: 'spiffe://cluster.local/ns/default/sa/client', health: 'healthy', services: [],
  }));
  // One registry per mode: a change measured in one mode must not make the other rebuild meanwhile.
  const registries = new Map<string, RegistryAggregator>();
  for (const mode of modes) {
    const registry = new RegistryAggregator();
    registry.apply('kubernetes', [{ kind: 'sync', services: pop.services, workloads: pop.workloads }]);
    registry.apply('vm', [{ kind: 'sync', services: [], workloads: clients }]);
    registries.set(mode, registry);
  }
  log(`${services} services, ${services * perService} endpoints, ${proxies} proxies per mode (${realProxies} full sidecars), modes ${modes.join(' + ')}; load ${loadavg()[0].toFixed(1)}`);

  const runs = new Map<string, ModeRun>();
  try {
    for (const mode of modes) {
      const started = performance.now();
      const r = await startMode(registries.get(mode)!, mode === 'incremental', proxies, realProxies);
      runs.set(mode, r);
      await waitAll(r, Number(r.mesh.version()), started, 300_000);
      log(`${mode}: ${proxies} proxies hold the full config after ${((performance.now() - started) / 1000).toFixed(1)} s`);
    }
    const byKey = new Map(pop.workloads.map((w) => [w.name, w]));
    for (let c = 0; c < changes; c++) {
      for (const [mode, r] of runs) {
        // A different endpoint per change and mode, spread over the services.
        const s = (c * 37) % services;
        const key = `${mode}/svc-${s}-${c % perService}`;
        const w = byKey.get(key) ?? byKey.get(`svc-${s}-${c % perService}`)!;
        const flipped: Workload = { ...w, health: w.health === 'healthy' ? 'unhealthy' : 'healthy' };
        byKey.set(key, flipped);
        const t0 = performance.now();
        registries.get(mode)!.apply('kubernetes', [{ kind: 'workload', op: 'upsert', workload: flipped }]);
        const times = await waitAll(r, Number(r.mesh.version()), t0, 120_000);
        r.toAll.push(Math.max(...times));
        r.perProxy.push(...times);
        await delay(20);
      }
      if ((c + 1) % 10 === 0) log(`${c + 1}/${changes}: ${[...runs].map(([m, r]) => `${m} ${r.toAll[c].toFixed(0)} ms`).join(', ')}`);
    }
    const rows: string[] = [];
    for (const [mode, r] of runs) {
      log(`${mode}: change → every proxy applied: ${formatLatencies(r.toAll)}`);
      log(`${mode}: change → each proxy applied: ${formatLatencies(r.perProxy)}`);
      rows.push(`| ${mode === 'incremental' ? 'Incremental (a health change rebuilds only the endpoints of the services it touched)' : 'Full rebuild per change (`incrementalBuilds: false`, the previous behaviour)'} | ${formatLatencies(r.toAll)} | ${formatLatencies(r.perProxy)} |`);
    }
    if (record) {
      const inc = runs.get('incremental')!;
      const body = [
        `Command: \`node_modules/.bin/node --expose-gc test/bench/run.ts scale-convergence\` (${new Date().toISOString().slice(0, 10)}; ${machineDescription()}; load average ${loadavg().map((l) => l.toFixed(2)).join(', ')} at the end).`,
        '',
        `In-process registry with ${services} services × ${perService} endpoints (${services * perService}), the real MeshService and DiscoveryServer (debounce 50 ms), and ${proxies} sidecars per mode on real gRPC discovery streams, each a client of every service, so each config holds ${services} clusters and ${services * perService} endpoints and every change concerns every proxy. ${proxies - realProxies} of them apply pushes with the proxy's own proxy-state.ts; ${realProxies} ${realProxies === 1 ? 'is a full sidecar' : 'are full sidecars'} (startProxy). ${changes} changes per mode, each one endpoint's health flipped, the two modes interleaved change by change in one process (each mode with its own registry, so only the measured mode works on a change).`,
        '',
        '| Control plane | Change → every proxy applied + ACKed | Change → each proxy |',
        '| --- | --- | --- |',
        ...rows,
        '',
        `Target: p99 < ${GOAL_MS} ms to every affected proxy — ${percentile([...inc.toAll].sort((a, b) => a - b), 99) < GOAL_MS ? 'met' : 'NOT met'} with incremental builds.`,
      ].join('\n');
      writeSection(SECTION_TITLE, body);
      log(`written to ${BENCHMARKS_FILE}`);
    }
  } finally {
    for (const r of runs.values()) await stopMode(r);
  }
}
