// Three registries at scale (issue 9): one control plane running the vm,
// consul and kubernetes platforms at once, 1,000 services on each — Consul
// (a real dev agent, catalog written in bulk through /v1/txn), Kubernetes (a
// real etcd + kube-apiserver, Services and EndpointSlices) and VM
// registrations through the control plane's API — and a few sidecars that are
// clients of every service, so every config carries all three platforms'
// endpoints. Measures the control plane's memory, the time to its first full
// sync (a restart on the same data dir, so the VM view is loaded as well as
// listed from the other two), and, per platform, the time from a health
// change to every sidecar having ACKed the config carrying it.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { registerPlugins } from '../../cli/plugins.ts';
import type { RunningControlPlane } from '../../core/control-plane.ts';
import { startTestControlPlane } from '../helpers/control-plane.ts';
import type { TestControlPlaneOptions } from '../helpers/control-plane.ts';
import type { RegistryAggregator, RegistryChange } from '../../core/registry/registry-aggregator.ts';
import type { ConsulClient } from '../../platforms/consul/consul-client.ts';
import { kubePath } from '../../platforms/kubernetes/kube-client.ts';
import type { KubeClient } from '../../platforms/kubernetes/kube-client.ts';
import { startProxy } from '../../proxy/proxy.ts';
import type { RunningProxy } from '../../proxy/proxy.ts';
import { startConsulAgent } from '../integration/consul/consul-agent.ts';
import type { ConsulAgent } from '../integration/consul/consul-agent.ts';
import { startTestCluster } from '../integration/kubernetes/kube-test-cluster.ts';
import type { TestCluster } from '../integration/kubernetes/kube-test-cluster.ts';
import { ensureNamespace } from '../integration/kubernetes/kube-setup.ts';
import { BENCHMARKS_FILE, machineDescription, writeSection } from './benchmarks-md.ts';
import { formatLatencies, percentile } from './latency-percentiles.ts';

export const name = 'three-registries';
export const description = 'vm + consul + kubernetes, 1,000 services each: control-plane memory, first sync, health change → every proxy per platform (issue 9)';
export const SECTION_TITLE = 'Three registries at scale (issue 9)';

const CONSUL_NODES = 100;
const NAMESPACES = 10;
const GOAL_MS = 1000;
const PLATFORMS = ['consul', 'kubernetes', 'vm'] as const;
type Platform = (typeof PLATFORMS)[number];

function log(message: string): void {
  process.stdout.write(`[three-registries] ${message}\n`);
}


// Each platform's services have their own names, so the three views stay 3 × 1,000 hosts (a shared name would merge them into one).
const consulNode = (s: number, i: number) => `node-${(s * 10 + i) % CONSUL_NODES}`;
const kubeNs = (s: number) => `bench-${s % NAMESPACES}`;
/** Distinct private ranges per platform: 10.64+ Kubernetes, 10.128+ VMs. */
const addressOf = (base: number, n: number) => `10.${base + Math.floor(n / 65_536)}.${Math.floor(n / 256) % 256}.${n % 256}`;

async function txn(client: ConsulClient, ops: object[]): Promise<void> {
  const res = await client.put<{ Errors?: unknown }>('/v1/txn', ops, { accept: [409], timeoutMs: 60_000 });
  if (res.status !== 200) throw new Error(`catalog txn failed: ${JSON.stringify(res.body).slice(0, 500)}`);
}

function consulCheck(s: number, i: number, status: 'passing' | 'critical'): object {
  return { Check: { Verb: 'set', Check: { Node: consulNode(s, i), CheckID: `c-svc-${s}-${i}-check`, Name: 'app', Status: status, ServiceID: `c-svc-${s}-${i}`, ServiceName: `c-svc-${s}` } } };
}

async function inParallel(count: number, workers: number, fn: (k: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: workers }, async () => {
    while (next < count) await fn(next++);
  }));
}

/** Consul: nodes, then 32 instances (service + check = 2 of Consul's 64 ops) per transaction. */
async function populateConsul(client: ConsulClient, services: number, perService: number): Promise<void> {
  for (let n = 0; n < CONSUL_NODES; n += 64) {
    await txn(client, Array.from({ length: Math.min(64, CONSUL_NODES - n) }, (_, k) => ({ Node: { Verb: 'set', Node: { Node: `node-${n + k}`, Address: `10.0.${Math.floor((n + k) / 250)}.${((n + k) % 250) + 1}` } } })));
  }
  const instances: Array<[number, number]> = [];
  for (let s = 0; s < services; s++) for (let i = 0; i < perService; i++) instances.push([s, i]);
  const batches: object[][] = [];
  for (let k = 0; k < instances.length; k += 32) {
    batches.push(instances.slice(k, k + 32).flatMap(([s, i]) => [
      { Service: { Verb: 'set', Node: consulNode(s, i), Service: { ID: `c-svc-${s}-${i}`, Service: `c-svc-${s}`, Port: 8000 + i, Meta: { protocol: 'http' } } } },
      consulCheck(s, i, 'passing'),
    ]));
  }
  await inParallel(batches.length, 4, (k) => txn(client, batches[k]));
}

function kubeSlice(s: number, perService: number, notReady = -1): object {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: `k-svc-${s}-abcde`, namespace: kubeNs(s), labels: { 'kubernetes.io/service-name': `k-svc-${s}` } },
    addressType: 'IPv4',
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints: Array.from({ length: perService }, (_, i) => ({ addresses: [addressOf(64, s * perService + i)], conditions: { ready: i !== notReady } })),
  };
}

async function populateKubernetes(client: KubeClient, services: number, perService: number): Promise<void> {
  for (let n = 0; n < NAMESPACES; n++) await ensureNamespace(client, `bench-${n}`);
  await inParallel(services, 16, async (s) => {
    await client.request('POST', kubePath('v1', 'services', kubeNs(s)), {
      body: { apiVersion: 'v1', kind: 'Service', metadata: { name: `k-svc-${s}`, namespace: kubeNs(s) }, spec: { ports: [{ name: 'http', port: 80, targetPort: 8080 }] } },
    });
    await client.request('POST', kubePath('discovery.k8s.io/v1', 'endpointslices', kubeNs(s)), { body: kubeSlice(s, perService) });
  });
}

async function api(cp: RunningControlPlane, method: string, path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`http://127.0.0.1:${cp.ports.api}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 300)}`);
  return text ? JSON.parse(text) : undefined;
}

async function populateVm(cp: RunningControlPlane, services: number, perService: number): Promise<void> {
  await inParallel(services * perService, 8, async (n) => {
    const s = Math.floor(n / perService);
    await api(cp, 'PUT', '/api/v1/workloads', { name: `v-svc-${s}-${n % perService}`, address: addressOf(128, n), services: [{ name: `v-svc-${s}`, port: 8080 }] });
  });
}

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      smoke: { type: 'boolean', default: false },
      changes: { type: 'string' },
      services: { type: 'string' },
      proxies: { type: 'string' },
      'vm-per-service': { type: 'string' },
      'no-write': { type: 'boolean', default: false },
    },
  });
  const services = Number(values.services ?? (values.smoke ? 50 : 1000));
  const perService = 10;
  const vmPerService = Number(values['vm-per-service'] ?? perService);
  const changes = Number(values.changes ?? (values.smoke ? 5 : 30));
  const proxyCount = Number(values.proxies ?? 3);
  const record = !values.smoke && !values['no-write'];
  const expected: Record<Platform, number> = { consul: services * perService, kubernetes: services * perService, vm: services * vmPerService };
  const total = expected.consul + expected.kubernetes + expected.vm;
  const uptimeStart = execFileSync('uptime', { encoding: 'utf8' }).trim();
  let agent: ConsulAgent | undefined;
  let cluster: TestCluster | undefined;
  let cp: RunningControlPlane | undefined;
  const proxies: RunningProxy[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'jibe-three-bench-'));
  try {
    [agent, cluster] = await Promise.all([startConsulAgent(), startTestCluster()]);
    const consul = agent.client();
    const kube = cluster.client();
    // One plugin container for both starts, so the measured restart does not include registering plugins.
    const options: TestControlPlaneOptions = {
      container: registerPlugins(),
      dataDir: dir,
      platforms: ['vm', 'consul', 'kubernetes'],
      pluginOptions: { consul: { address: agent.address }, kubernetes: { kubeconfig: cluster.kubeconfigPath, namespace: 'bench-0' } },
      logger: pino({ level: 'warn' }),
    };

    let started = performance.now();
    await Promise.all([populateConsul(consul, services, perService), populateKubernetes(kube, services, perService)]);
    log(`Consul ${expected.consul} instances and Kubernetes ${expected.kubernetes} endpoints written in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    // VM registrations go through the control plane's API; the measured start below is a restart that loads them back.
    cp = await startTestControlPlane(options);
    started = performance.now();
    await populateVm(cp, services, vmPerService);
    const vmRegisterMs = performance.now() - started;
    log(`registered ${expected.vm} VM workloads through the API in ${(vmRegisterMs / 1000).toFixed(1)} s`);
    await cp.close();
    cp = undefined;

    globalThis.gc?.();
    const before = process.memoryUsage();
    started = performance.now();
    cp = await startTestControlPlane(options);
    const mesh = cp.mesh;
    const count = (): Record<Platform, number> => {
      const out: Record<Platform, number> = { consul: 0, kubernetes: 0, vm: 0 };
      for (const w of mesh.snapshot().workloads) if (w.platform in out) out[w.platform as Platform]++;
      return out;
    };
    while (PLATFORMS.some((p) => count()[p] < expected[p])) await delay(10);
    const firstSyncMs = performance.now() - started;
    globalThis.gc?.();
    const after = process.memoryUsage();
    log(`first full sync of ${total} workloads in ${firstSyncMs.toFixed(0)} ms; heap ${(after.heapUsed / 2 ** 20).toFixed(0)} MiB (+${((after.heapUsed - before.heapUsed) / 2 ** 20).toFixed(0)}), rss ${(after.rss / 2 ** 20).toFixed(0)} MiB`);

    // Whether each registry change reached the mesh as health-only (the incremental path) or as "anything changed".
    const registry = (mesh as unknown as { registry: RegistryAggregator }).registry;
    const paths = { incremental: 0, full: 0 };
    registry.onChange((change: RegistryChange) => void (change.endpoints ? paths.incremental++ : paths.full++));

    const ids: string[] = [];
    for (let p = 0; p < proxyCount; p++) {
      const workload = `client-${p}`;
      await api(cp, 'PUT', '/api/v1/workloads', { name: workload, address: `127.0.0.${p + 2}`, services: [{ name: workload, port: 9999 }] });
      const id = `sidecar~${workload}.default`;
      ids.push(id);
      proxies.push(await startProxy({
        node: { id, type: 'sidecar', namespace: 'default', workload, platform: 'vm', labels: {} },
        discoveryAddress: `127.0.0.1:${cp.ports.discovery}`,
        outboundPort: 0,
        adminPort: 0,
        logger: pino({ level: 'silent' }),
      }));
    }
    const slowest = async (): Promise<number> => {
      const body = (await api(cp!, 'GET', '/api/v1/proxies')) as { proxies: Array<{ id: string; syncedVersion?: string }> };
      const synced = new Map(body.proxies.map((p) => [p.id, Number(p.syncedVersion ?? 0)]));
      return Math.min(...ids.map((id) => synced.get(id) ?? 0));
    };
    const allAcked = async (): Promise<void> => {
      while ((await slowest()) < mesh.snapshot().version) await delay(5);
    };
    started = performance.now();
    await allAcked();
    const proxySyncMs = performance.now() - started;
    log(`${proxyCount} sidecars with every service (${total} endpoints each) synced in ${proxySyncMs.toFixed(0)} ms`);
    globalThis.gc?.();
    const withProxies = process.memoryUsage();
    log(`memory: rss before the start ${(before.rss / 2 ** 20).toFixed(0)} MiB; with the sidecars synced heap ${(withProxies.heapUsed / 2 ** 20).toFixed(0)} MiB, rss ${(withProxies.rss / 2 ** 20).toFixed(0)} MiB`);

    const healthy = (platform: Platform, s: number, i: number): boolean => {
      const snapshot = mesh.snapshot();
      const match = platform === 'consul'
        ? (w: { name: string }) => w.name.startsWith(`c-svc-${s}-${i}.`)
        : platform === 'kubernetes'
          ? (w: { address: string }) => w.address === addressOf(64, s * perService + i)
          : (w: { name: string }) => w.name === `v-svc-${s}-${i}`;
      return snapshot.workloads.some((w) => w.platform === platform && w.health === 'healthy' && match(w as never));
    };
    const setHealth = async (platform: Platform, s: number, i: number, up: boolean): Promise<void> => {
      if (platform === 'consul') await txn(consul, [consulCheck(s, i, up ? 'passing' : 'critical')]);
      else if (platform === 'kubernetes') await kube.request('PUT', kubePath('discovery.k8s.io/v1', 'endpointslices', kubeNs(s), `k-svc-${s}-abcde`), { body: kubeSlice(s, perService, up ? -1 : i) });
      else await api(cp!, 'POST', `/api/v1/workloads/default/v-svc-${s}-${i}/health`, { health: up ? 'healthy' : 'unhealthy' });
    };

    const results = new Map<Platform, { toMesh: number[]; toProxies: number[]; incremental: number; full: number }>(PLATFORMS.map((p) => [p, { toMesh: [], toProxies: [], incremental: 0, full: 0 }]));
    for (let c = 0; c < changes; c++) {
      // Interleaved platform by platform, so the machine's load drifts over all three alike.
      for (const platform of PLATFORMS) {
        const s = (c * 37) % services;
        const i = c % (platform === 'vm' ? vmPerService : perService);
        const result = results.get(platform)!;
        const before = { ...paths };
        const t0 = performance.now();
        await setHealth(platform, s, i, false);
        while (healthy(platform, s, i)) await delay(2);
        result.toMesh.push(performance.now() - t0);
        const version = mesh.snapshot().version;
        while ((await slowest()) < version) await delay(5);
        result.toProxies.push(performance.now() - t0);
        result.incremental += paths.incremental - before.incremental;
        result.full += paths.full - before.full;
        // Back to healthy outside the measurement, so every change starts from the same state.
        await setHealth(platform, s, i, true);
        while (!healthy(platform, s, i)) await delay(2);
        await allAcked();
      }
      if ((c + 1) % 5 === 0) log(`${c + 1}/${changes} rounds; last: ${PLATFORMS.map((p) => `${p} ${results.get(p)!.toProxies[c].toFixed(0)} ms`).join(', ')}`);
    }
    for (const platform of PLATFORMS) {
      const r = results.get(platform)!;
      r.toMesh.sort((a, b) => a - b);
      r.toProxies.sort((a, b) => a - b);
      log(`${platform}: health change → mesh ${formatLatencies(r.toMesh)}; → all ${proxyCount} sidecars ACKed ${formatLatencies(r.toProxies)}; registry changes incremental ${r.incremental}, full ${r.full}`);
    }
    const uptimeEnd = execFileSync('uptime', { encoding: 'utf8' }).trim();
    log(`uptime: ${uptimeEnd}`);
    if (record) {
      const mib = (n: number) => `${(n / 2 ** 20).toFixed(0)} MiB`;
      const body = [
        `Command: \`node_modules/.bin/node --expose-gc test/bench/run.ts three-registries\` (${new Date().toISOString().slice(0, 10)}; ${machineDescription()}). \`uptime\` before: \`${uptimeStart}\`; after: \`${uptimeEnd}\`. Shared machine (~6 engineers' runs beside it): read the figures with that load in mind.`,
        '',
        `One control plane with \`--platforms vm,consul,kubernetes\`: a real Consul dev agent (${services} services × ${perService} instances with checks on ${CONSUL_NODES} nodes, written through /v1/txn), a real etcd + kube-apiserver (${services} Services in ${NAMESPACES} namespaces, one EndpointSlice of ${perService} each), and ${services} VM services × ${vmPerService} workloads registered with PUT /api/v1/workloads — ${total} endpoints on ${services * 3} hosts. First sync is a restart on the same data dir. ${proxyCount} sidecars (in the same process) are clients of every service, so each config carries all ${total} endpoints and every change concerns every sidecar. RSS is the whole bench process, which also ran the populating clients and the first control plane that took the VM registrations (freed heap is rarely returned), so the heap growth is the figure for the control plane's view. ${changes} health changes per platform, interleaved: a Consul check going critical, an EndpointSlice endpoint turning not ready, a VM's POST …/health unhealthy.`,
        '',
        '| Figure | Value | Target |',
        '| --- | --- | --- |',
        `| Control-plane memory after first sync (heap used / growth over the process before the start; RSS, before the start → after) | ${mib(after.heapUsed)} / +${mib(after.heapUsed - before.heapUsed)}; RSS ${mib(before.rss)} → ${mib(after.rss)} | — |`,
        `| … with ${proxyCount} sidecars connected and synced (same process) | heap ${mib(withProxies.heapUsed)}; RSS ${mib(withProxies.rss)} | — |`,
        `| Time to first full sync (start → all ${total} workloads in the mesh view) | ${(firstSyncMs / 1000).toFixed(2)} s | — |`,
        `| Registering the ${expected.vm} VM workloads, one PUT /api/v1/workloads each (8 in flight), before the restart | ${(vmRegisterMs / 1000).toFixed(1)} s | — |`,
        `| First config of ${proxyCount} sidecars that call every service | ${(proxySyncMs / 1000).toFixed(2)} s | — |`,
        ...PLATFORMS.map((p) => {
          const r = results.get(p)!;
          return `| ${p} health change → all ${proxyCount} sidecars ACKed (→ mesh view: p50 ${percentile(r.toMesh, 50).toFixed(0)} ms, p99 ${percentile(r.toMesh, 99).toFixed(0)} ms; registry changes incremental/full ${r.incremental}/${r.full}) | ${formatLatencies(r.toProxies)} | p99 < ${GOAL_MS} ms (${percentile(r.toProxies, 99) < GOAL_MS ? 'met' : 'NOT met'}) |`;
        }),
      ].join('\n');
      writeSection(SECTION_TITLE, body);
      log(`written to ${BENCHMARKS_FILE}`);
    }
  } finally {
    for (const proxy of proxies) await proxy.close();
    await cp?.close();
    await Promise.all([agent?.stop(), cluster?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  }
}
