// Kubernetes platform at scale (issue 7): 1,000 Services and 10,000 endpoints
// (one EndpointSlice of 10 per Service) created in bulk in a real
// kube-apiserver, then a control plane with the kubernetes platform.
// Measures the control plane's memory, the time to its first full sync, and
// the time from an EndpointSlice change (an endpoint turning not ready) until
// the mesh view has it and until a connected sidecar (a client of every
// service) has ACKed the config carrying it.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import pino from 'pino';
import type { RunningControlPlane } from '../../core/control-plane.ts';
import { kubePath } from '../../platforms/kubernetes/kube-client.ts';
import type { KubeClient } from '../../platforms/kubernetes/kube-client.ts';
import type { RunningProxy } from '../../proxy/proxy.ts';
import { startTestCluster } from '../integration/kubernetes/kube-test-cluster.ts';
import type { TestCluster } from '../integration/kubernetes/kube-test-cluster.ts';
import { ensureNamespace } from '../integration/kubernetes/kube-setup.ts';
import { BENCHMARKS_FILE, machineDescription, writeSection } from './benchmarks-md.ts';
import { startTestControlPlane } from '../helpers/control-plane.ts';
import { countChangePaths, startSyncSidecar } from './sync-sidecar.ts';
import { formatLatencies, percentile } from './latency-percentiles.ts';

export const name = 'kubernetes-sync';
export const description = 'Kubernetes, 1,000 Services / 10,000 endpoints: control-plane memory, first sync, EndpointSlice change → mesh and proxy (issue 7)';
export const SECTION_TITLE = 'Kubernetes platform at scale (issue 7)';

const PER_SERVICE = 10;
const NAMESPACES = 10;
const GOAL_MS = 1000;

function log(message: string): void {
  process.stdout.write(`[kubernetes-sync] ${message}\n`);
}

const nsOf = (s: number) => `bench-${s % NAMESPACES}`;
const addressOf = (s: number, i: number) => {
  const n = s * PER_SERVICE + i;
  return `10.${64 + Math.floor(n / 65_536)}.${Math.floor(n / 256) % 256}.${n % 256}`;
};

function slice(s: number, notReady = -1): object {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: `svc-${s}-abcde`, namespace: nsOf(s), labels: { 'kubernetes.io/service-name': `svc-${s}` } },
    addressType: 'IPv4',
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints: Array.from({ length: PER_SERVICE }, (_, i) => ({ addresses: [addressOf(s, i)], conditions: { ready: i !== notReady }, zone: `zone-${i % 3}` })),
  };
}

async function populate(client: KubeClient, services: number): Promise<void> {
  for (let n = 0; n < NAMESPACES; n++) await ensureNamespace(client, `bench-${n}`);
  let next = 0;
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < services) {
      const s = next++;
      await client.request('POST', kubePath('v1', 'services', nsOf(s)), {
        body: { apiVersion: 'v1', kind: 'Service', metadata: { name: `svc-${s}`, namespace: nsOf(s) }, spec: { ports: [{ name: 'http', port: 80, targetPort: 8080 }] } },
      });
      await client.request('POST', kubePath('discovery.k8s.io/v1', 'endpointslices', nsOf(s)), { body: slice(s) });
    }
  }));
}

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { smoke: { type: 'boolean', default: false }, changes: { type: 'string' }, services: { type: 'string' }, 'no-write': { type: 'boolean', default: false } },
  });
  const services = Number(values.services ?? (values.smoke ? 100 : 1000));
  const changes = Number(values.changes ?? (values.smoke ? 10 : 100));
  const record = !values.smoke && !values['no-write'];
  let cluster: TestCluster | undefined;
  let cp: RunningControlPlane | undefined;
  let proxy: RunningProxy | undefined;
  const dir = mkdtempSync(join(tmpdir(), 'jibe-kube-bench-'));
  try {
    cluster = await startTestCluster();
    const client = cluster.client();
    let started = performance.now();
    await populate(client, services);
    log(`created ${services} Services and EndpointSlices with ${services * PER_SERVICE} endpoints in ${((performance.now() - started) / 1000).toFixed(1)} s`);

    globalThis.gc?.();
    const before = process.memoryUsage();
    started = performance.now();
    cp = await startTestControlPlane({
      dataDir: dir,
      platforms: ['vm', 'kubernetes'],
      pluginOptions: { kubernetes: { kubeconfig: cluster.kubeconfigPath, namespace: 'bench-0' } },
      logger: pino({ level: 'warn' }),
    });
    const mesh = cp.mesh;
    const kubeCount = () => mesh.snapshot().workloads.reduce((n, w) => n + (w.platform === 'kubernetes' ? 1 : 0), 0);
    while (kubeCount() < services * PER_SERVICE) await delay(5);
    const firstSyncMs = performance.now() - started;
    globalThis.gc?.();
    const after = process.memoryUsage();
    log(`first full sync ${firstSyncMs.toFixed(0)} ms; heap +${((after.heapUsed - before.heapUsed) / 2 ** 20).toFixed(0)} MiB, rss ${(after.rss / 2 ** 20).toFixed(0)} MiB`);

    const sidecar = await startSyncSidecar(cp);
    proxy = sidecar.proxy;
    const syncedVersion = sidecar.syncedVersion;
    const proxySyncMs = sidecar.firstSyncMs;
    log(`sidecar with every service synced in ${proxySyncMs.toFixed(0)} ms`);

    const toMesh: number[] = [];
    const toProxy: number[] = [];
    // Whether each measured change reached the mesh as health-only (the incremental path) or as "anything changed".
    const { paths, measuring } = countChangePaths(cp);
    for (let c = 0; c < changes; c++) {
      const s = (c * 37) % services;
      const i = c % PER_SERVICE;
      const address = addressOf(s, i);
      const healthy = () => mesh.snapshot().workloads.some((w) => w.platform === 'kubernetes' && w.address === address && w.health === 'healthy');
      const path = kubePath('discovery.k8s.io/v1', 'endpointslices', nsOf(s), `svc-${s}-abcde`);
      measuring.on = true;
      const t0 = performance.now();
      await client.request('PUT', path, { body: slice(s, i) });
      while (healthy()) await delay(2);
      toMesh.push(performance.now() - t0);
      const version = mesh.snapshot().version;
      while ((await syncedVersion()) < version) await delay(5);
      toProxy.push(performance.now() - t0);
      measuring.on = false;
      if ((c + 1) % 10 === 0) log(`${c + 1}/${changes} changes; last: mesh ${toMesh[c].toFixed(0)} ms, sidecar ${toProxy[c].toFixed(0)} ms`);
      // Back to all-ready outside the measurement, so every change starts from the same state.
      await client.request('PUT', path, { body: slice(s) });
      while (!healthy()) await delay(2);
      while ((await syncedVersion()) < mesh.snapshot().version) await delay(5);
    }
    toMesh.sort((a, b) => a - b);
    toProxy.sort((a, b) => a - b);
    log(`slice change → mesh view: ${formatLatencies(toMesh)}`);
    log(`slice change → sidecar ACKed: ${formatLatencies(toProxy)}`);
    log(`registry changes during the measured changes: ${paths.incremental} health-only (incremental), ${paths.full} full`);
    const uptime = execFileSync('uptime', { encoding: 'utf8' }).trim();
    log(`uptime: ${uptime}`);
    if (record) {
      const body = [
        `Command: \`node_modules/.bin/node --expose-gc test/bench/run.ts kubernetes-sync\` (${new Date().toISOString().slice(0, 10)}; ${machineDescription()}). \`uptime\` after the run: \`${uptime}\`.`,
        '',
        `A real kube-apiserver (v1.34, etcd 3.5, watch cache on) with ${services} Services in ${NAMESPACES} namespaces, each with one EndpointSlice of ${PER_SERVICE} ready endpoints (${services * PER_SERVICE} in all); the control plane runs the vm and kubernetes platforms in one process, plus one sidecar that is a client of every service (its config carries every endpoint). ${changes} changes, each an EndpointSlice update turning one endpoint not ready, measured from the API write to the change being visible.`,
        '',
        '| Figure | Value | Target |',
        '| --- | --- | --- |',
        `| Control-plane memory for the Kubernetes view (heap growth after GC; process RSS) | +${((after.heapUsed - before.heapUsed) / 2 ** 20).toFixed(0)} MiB; ${(after.rss / 2 ** 20).toFixed(0)} MiB | — |`,
        `| Time to first full sync (start → all ${services * PER_SERVICE} endpoints in the mesh view) | ${(firstSyncMs / 1000).toFixed(2)} s | — |`,
        `| First config of a sidecar that calls every service | ${proxySyncMs.toFixed(0)} ms | — |`,
        `| EndpointSlice change → mesh view | ${formatLatencies(toMesh)} | — |`,
        `| EndpointSlice change → affected sidecar ACKed its new config | ${formatLatencies(toProxy)} | p99 < ${GOAL_MS} ms (${percentile(toProxy, 99) < GOAL_MS ? 'met' : 'NOT met'}) |`,
        `| Registry changes during the measured changes: health-only (incremental path) / full | ${paths.incremental} / ${paths.full} | all health-only |`,
      ].join('\n');
      writeSection(SECTION_TITLE, body);
      log(`written to ${BENCHMARKS_FILE}`);
    }
  } finally {
    await proxy?.close();
    await cp?.close();
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
