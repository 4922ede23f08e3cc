// A Kubernetes control plane for `jibe up --platforms …,kubernetes`: etcd and
// kube-apiserver from the peer cache (as the integration tests run them), a
// throwaway CA and admin token, and a kubeconfig the Jibe control plane reads.
// There is no kubelet or controller manager: `jibe up` plays them, creating
// the Pods, Services and EndpointSlices of the BookInfo workloads it runs
// itself. Kubernetes refuses loopback endpoint addresses, so those workloads
// are reached at this host's first external IPv4 address (their sidecars bind
// there; the apps behind them stay on 127.0.0.1).
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import forge from 'node-forge';
import { JibeError } from '../../core/errors/errors.ts';
import { KubeApiError, KubeClient } from '../../platforms/kubernetes/kube-client.ts';
import { INBOUND_PORTS_ANNOTATION, PROXY_CONTAINER, SERVICE_NAME_LABEL } from '../../platforms/kubernetes/kube-convert.ts';
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
  const files = writeCredentials(dir);

  const [etcdPort, etcdPeerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
  const etcd = supervisor.start('etcd', [
    PEER_LAUNCHER, etcdBinary,
    '--data-dir', path.join(dir, 'etcd'),
    '--listen-client-urls', `http://127.0.0.1:${etcdPort}`,
    '--advertise-client-urls', `http://127.0.0.1:${etcdPort}`,
    '--listen-peer-urls', `http://127.0.0.1:${etcdPeerPort}`,
    '--initial-advertise-peer-urls', `http://127.0.0.1:${etcdPeerPort}`,
    '--initial-cluster', `default=http://127.0.0.1:${etcdPeerPort}`,
    '--log-level', 'warn',
  ]);
  await waitReady(() => fetch(`http://127.0.0.1:${etcdPort}/health`, { signal: AbortSignal.timeout(2000) }).then((r) => r.ok, () => false), etcd, 'etcd to be healthy');

  const server = `https://127.0.0.1:${apiPort}`;
  const apiServer = supervisor.start('kube-apiserver', [
    PEER_LAUNCHER, apiServerBinary,
    '--etcd-servers', `http://127.0.0.1:${etcdPort}`,
    '--bind-address', '127.0.0.1',
    '--advertise-address', '127.0.0.1',
    '--secure-port', String(apiPort),
    '--tls-cert-file', files.cert,
    '--tls-private-key-file', files.key,
    '--client-ca-file', files.ca,
    '--token-auth-file', files.tokens,
    '--authorization-mode', 'RBAC',
    '--service-account-issuer', 'https://kubernetes.default.svc.cluster.local',
    '--service-account-key-file', files.saPub,
    '--service-account-signing-key-file', files.saKey,
    '--service-cluster-ip-range', '10.96.0.0/16',
    '--enable-priority-and-fairness=false',
    '--v', '1',
  ]);
  const client = new KubeClient({ server, ca: files.caPem, token: files.adminToken });
  await waitReady(() => client.request('GET', '/readyz').then(() => true, () => false), apiServer, 'kube-apiserver to be ready');
  fs.writeFileSync(
    files.kubeconfig,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'jibe-local', cluster: { server, 'certificate-authority-data': Buffer.from(files.caPem).toString('base64') } }],
      users: [{ name: 'admin', user: { token: files.adminToken } }],
      contexts: [{ name: 'jibe-local', context: { cluster: 'jibe-local', user: 'admin' } }],
      'current-context': 'jibe-local',
    }),
    { mode: 0o600 },
  );
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

interface Credentials {
  ca: string;
  caPem: string;
  cert: string;
  key: string;
  saPub: string;
  saKey: string;
  tokens: string;
  kubeconfig: string;
  adminToken: string;
}

/** A one-week CA, the API server's serving certificate for 127.0.0.1, service-account keys and the admin token. */
function writeCredentials(dir: string): Credentials {
  const rsa = () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = privateKey.export({ type: 'pkcs1', format: 'pem' }) as string;
    const key = forge.pki.privateKeyFromPem(pem);
    return { key, publicKey: forge.pki.setRsaPublicKey(key.n, key.e), pem };
  };
  const certificate = (serial: string, subject: string, publicKey: forge.pki.PublicKey, issuer: forge.pki.CertificateField[] | undefined, extensions: object[], signer: forge.pki.rsa.PrivateKey) => {
    const cert = forge.pki.createCertificate();
    cert.publicKey = publicKey;
    cert.serialNumber = serial;
    cert.validity.notBefore = new Date(Date.now() - 60_000);
    cert.validity.notAfter = new Date(Date.now() + 7 * 24 * 3600_000);
    cert.setSubject([{ name: 'commonName', value: subject }]);
    cert.setIssuer(issuer ?? [{ name: 'commonName', value: subject }]);
    cert.setExtensions(extensions);
    cert.sign(signer, forge.md.sha256.create());
    return cert;
  };
  const caKey = rsa();
  const ca = certificate('01', 'jibe local kubernetes ca', caKey.publicKey, undefined, [{ name: 'basicConstraints', cA: true, critical: true }, { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true }], caKey.key);
  const servingKey = rsa();
  const serving = certificate('02', 'kube-apiserver', servingKey.publicKey, ca.subject.attributes, [
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }, { type: 2, value: 'localhost' }, { type: 2, value: 'kubernetes.default.svc' }] },
  ], caKey.key);
  const sa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const adminToken = randomBytes(24).toString('hex');
  const files: Credentials = {
    ca: path.join(dir, 'ca.crt'),
    caPem: forge.pki.certificateToPem(ca),
    cert: path.join(dir, 'apiserver.crt'),
    key: path.join(dir, 'apiserver.key'),
    saPub: path.join(dir, 'sa.pub'),
    saKey: path.join(dir, 'sa.key'),
    tokens: path.join(dir, 'tokens.csv'),
    kubeconfig: path.join(dir, 'kubeconfig'),
    adminToken,
  };
  fs.writeFileSync(files.ca, files.caPem);
  fs.writeFileSync(files.cert, forge.pki.certificateToPem(serving));
  fs.writeFileSync(files.key, servingKey.pem, { mode: 0o600 });
  fs.writeFileSync(files.saPub, sa.publicKey.export({ type: 'spki', format: 'pem' }));
  fs.writeFileSync(files.saKey, sa.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  fs.writeFileSync(files.tokens, `${adminToken},admin,admin-uid,"system:masters"\n`, { mode: 0o600 });
  return files;
}
