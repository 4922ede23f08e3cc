// A Kubernetes control plane for `jibe up --platforms …,kubernetes`: etcd and
// kube-apiserver from the peer cache (as the integration tests run them), a
// throwaway CA and admin token, and a kubeconfig the Jibe control plane reads.
// There is no kubelet or controller manager: `jibe up` plays them, creating
// the Pods, Services and EndpointSlices of the BookInfo workloads it runs
// itself. Kubernetes refuses loopback endpoint addresses, so those workloads
// are reached at this host's first external IPv4 address (their sidecars bind
// there; the apps behind them stay on 127.0.0.1).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { JibeError } from '../../core/errors/errors.ts';
import { KubeApiError, KubeClient } from '../../platforms/kubernetes/kube-client.ts';
import { INBOUND_PORTS_ANNOTATION, PROXY_CONTAINER, SERVICE_NAME_LABEL } from '../../platforms/kubernetes/kube-convert.ts';
import { localEtcdArgs, localKubeApiServerArgs, writeLocalClusterCredentials, writeLocalKubeconfig } from '../../platforms/kubernetes/kube-local-cluster.ts';
import type { Child, ProcessSupervisor } from './process-supervisor.ts';
import { PEER_LAUNCHER, peerBinary } from './local-peers.ts';
import { freePort } from './ports.ts';

export interface LocalKube {
  server: string;
  kubeconfig: string;
  /** The address Kubernetes workloads are registered at (non-loopback). */
  podAddress: string;
  client: KubeClient;
}

export interface LocalKubeWorkload {
  /** Pod name (the mesh workload name). */
  name: string;
  service: string;
  serviceAccount: string;
  labels: Record<string, string>;
  servicePort: number;
  appPort: number;
  /** Where the pod's sidecar accepts mesh traffic for the app port. */
  inboundPort: number;
}

type WaitReady = (check: () => Promise<boolean>, child: Child, what: string) => Promise<void>;

/** This host's first non-internal IPv4 address: what EndpointSlices may carry. */
export function externalIPv4(): string | undefined {
  for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  return undefined;
}

export async function startLocalKube(supervisor: ProcessSupervisor, dataDir: string, waitReady: WaitReady): Promise<LocalKube> {
  const podAddress = externalIPv4();
  if (!podAddress) {
    throw new JibeError('JIBE_ERR_PLUGIN_UNKNOWN', 'the kubernetes platform needs a non-loopback IPv4 address on this host (Kubernetes refuses 127.0.0.0/8 endpoints)', {
      hint: 'bring up a network interface, or run jibe up --platforms vm,consul',
    });
  }
  const [etcdBinary, apiServerBinary] = [peerBinary('etcd'), peerBinary('kube-apiserver')];
  const dir = path.join(dataDir, 'kube');
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(path.join(dir, 'etcd'), { recursive: true, mode: 0o700 });
  const files = writeLocalClusterCredentials(dir, 'jibe local kubernetes ca');

  const [etcdPort, etcdPeerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
  const etcd = supervisor.start('etcd', [PEER_LAUNCHER, etcdBinary, ...localEtcdArgs(path.join(dir, 'etcd'), etcdPort, etcdPeerPort)]);
  await waitReady(() => fetch(`http://127.0.0.1:${etcdPort}/health`, { signal: AbortSignal.timeout(2000) }).then((r) => r.ok, () => false), etcd, 'etcd to be healthy');

  const server = `https://127.0.0.1:${apiPort}`;
  const apiServer = supervisor.start('kube-apiserver', [PEER_LAUNCHER, apiServerBinary, ...localKubeApiServerArgs(files, etcdPort, apiPort)]);
  const client = new KubeClient({ server, ca: files.caPem, token: files.adminToken });
  await waitReady(() => client.request('GET', '/readyz').then(() => true, () => false), apiServer, 'kube-apiserver to be ready');
  writeLocalKubeconfig(files, server, 'jibe-local');
  // The control plane's own namespace: its leader Lease and state live there.
  await createIfMissing(client, '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'jibe-system' } });
  return { server, kubeconfig: files.kubeconfig, podAddress, client };
}

/**
 * What the kubelet and the EndpointSlice controller would publish for one
 * workload `jibe up` runs: its ServiceAccount, its Service (once), a Pod with
 * a Jibe sidecar container and the sidecar's inbound port annotation, and a
 * ready EndpointSlice entry at the pod address.
 */
export async function registerKubeWorkload(kube: LocalKube, w: LocalKubeWorkload, namespace = 'default'): Promise<void> {
  const base = `/api/v1/namespaces/${namespace}`;
  await createIfMissing(kube.client, `${base}/serviceaccounts`, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: w.serviceAccount, namespace } });
  await createIfMissing(kube.client, `${base}/services`, {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: w.service, namespace, labels: { app: w.service } },
    // No selector: jibe up publishes the EndpointSlices itself (there is no controller manager).
    spec: { ports: [{ name: 'http', port: w.servicePort, targetPort: w.appPort, protocol: 'TCP' }] },
  });
  await createIfMissing(kube.client, `${base}/pods`, {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: w.name, namespace, labels: w.labels, annotations: { [INBOUND_PORTS_ANNOTATION]: `${w.appPort}=${w.inboundPort}` } },
    spec: {
      serviceAccountName: w.serviceAccount,
      containers: [
        { name: 'app', image: 'jibe/bookinfo:local', ports: [{ name: 'http', containerPort: w.appPort }] },
        { name: PROXY_CONTAINER, image: 'jibe/jibe:local' },
      ],
    },
  });
  await createIfMissing(kube.client, `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices`, {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: w.name, namespace, labels: { [SERVICE_NAME_LABEL]: w.service } },
    addressType: 'IPv4',
    ports: [{ name: 'http', port: w.appPort, protocol: 'TCP' }],
    endpoints: [{ addresses: [kube.podAddress], conditions: { ready: true }, targetRef: { kind: 'Pod', name: w.name, namespace } }],
  });
}

async function createIfMissing(client: KubeClient, collection: string, body: Record<string, unknown>): Promise<void> {
  try {
    await client.request('POST', collection, { body });
  } catch (err) {
    if (!(err instanceof KubeApiError && err.status === 409)) throw err;
  }
}
