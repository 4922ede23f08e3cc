// Kubernetes platform at scale (issue 7): 1,000 Services and 10,000 endpoints
// (one EndpointSlice of 10 per Service) created in bulk in a real
// kube-apiserver, then a control plane with the kubernetes platform.
// Measures the control plane's memory, the time to its first full sync, and
// the time from an EndpointSlice change (an endpoint turning not ready) until
// the mesh view has it and until a connected sidecar (a client of every
// service) has ACKed the config carrying it.
import { execFileSync } from 'node:child_process';
import { kubePath } from '../../platforms/kubernetes/kube-client.ts';
import type { KubeClient } from '../../platforms/kubernetes/kube-client.ts';
import { startTestCluster } from '../integration/kubernetes/kube-test-cluster.ts';
import type { TestCluster } from '../integration/kubernetes/kube-test-cluster.ts';
import { ensureNamespace } from '../integration/kubernetes/kube-setup.ts';
import { machineDescription } from './benchmarks-md.ts';
import { formatLatencies } from './latency-percentiles.ts';
import { goalCell, memoryCell, runRegistrySyncBench } from './registry-sync-harness.ts';
import type { RegistrySyncBench } from './registry-sync-harness.ts';

export const name = 'kubernetes-sync';
export const description = 'Kubernetes, 1,000 Services / 10,000 endpoints: control-plane memory, first sync, EndpointSlice change → mesh and proxy (issue 7)';
export const SECTION_TITLE = 'Kubernetes platform at scale (issue 7)';

const PER_SERVICE = 10;
const NAMESPACES = 10;

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

interface Kubernetes {
  cluster: TestCluster;
  client: KubeClient;
  stop(): Promise<void>;
}

const slicePath = (s: number) => kubePath('discovery.k8s.io/v1', 'endpointslices', nsOf(s), `svc-${s}-abcde`);

const bench: RegistrySyncBench<Kubernetes> = {
  name,
  platform: 'kubernetes',
  perService: PER_SERVICE,
  sectionTitle: SECTION_TITLE,
  async start() {
    const cluster = await startTestCluster();
    return { cluster, client: cluster.client(), stop: () => cluster.stop() };
  },
  pluginOptions: ({ cluster }) => ({ kubeconfig: cluster.kubeconfigPath, namespace: 'bench-0' }),
  populate: ({ client }, services) => populate(client, services),
  populated: (services) => `created ${services} Services and EndpointSlices with ${services * PER_SERVICE} endpoints`,
  changeLabel: 'slice change',
  change({ client }, mesh, s, i) {
    const address = addressOf(s, i);
    const healthy = () => mesh.snapshot().workloads.some((w) => w.platform === 'kubernetes' && w.address === address && w.health === 'healthy');
    return {
      make: async () => void (await client.request('PUT', slicePath(s), { body: slice(s, i) })),
      made: () => !healthy(),
      undo: async () => void (await client.request('PUT', slicePath(s), { body: slice(s) })),
      undone: healthy,
    };
  },
  report(_, r) {
    const uptime = execFileSync('uptime', { encoding: 'utf8' }).trim();
    log(`uptime: ${uptime}`);
    return [
      `Command: \`node_modules/.bin/node --expose-gc test/bench/run.ts kubernetes-sync\` (${new Date().toISOString().slice(0, 10)}; ${machineDescription()}). \`uptime\` after the run: \`${uptime}\`.`,
      '',
      `A real kube-apiserver (v1.34, etcd 3.5, watch cache on) with ${r.services} Services in ${NAMESPACES} namespaces, each with one EndpointSlice of ${PER_SERVICE} ready endpoints (${r.services * PER_SERVICE} in all); the control plane runs the vm and kubernetes platforms in one process, plus one sidecar that is a client of every service (its config carries every endpoint). ${r.changes} changes, each an EndpointSlice update turning one endpoint not ready, measured from the API write to the change being visible.`,
      '',
      '| Figure | Value | Target |',
      '| --- | --- | --- |',
      `| Control-plane memory for the Kubernetes view (heap growth after GC; process RSS) | ${memoryCell(r)} | — |`,
      `| Time to first full sync (start → all ${r.services * PER_SERVICE} endpoints in the mesh view) | ${(r.firstSyncMs / 1000).toFixed(2)} s | — |`,
      `| First config of a sidecar that calls every service | ${r.proxySyncMs.toFixed(0)} ms | — |`,
      `| EndpointSlice change → mesh view | ${formatLatencies(r.toMesh)} | — |`,
      `| EndpointSlice change → affected sidecar ACKed its new config | ${formatLatencies(r.toProxy)} | ${goalCell(r.toProxy)} |`,
      `| Registry changes during the measured changes: health-only (incremental path) / full | ${r.paths.incremental} / ${r.paths.full} | all health-only |`,
    ].join('\n');
  },
};

export function run(argv: string[]): Promise<void> {
  return runRegistrySyncBench(bench, argv);
}
