// A real Kubernetes control plane for tests: etcd and kube-apiserver from the
// peer cache, on ephemeral loopback ports, with certificates, a service-account
// signing key and a static admin token made here. RBAC is on; the admin token
// is in system:masters. No kubelet runs: tests play it, creating Pods and
// EndpointSlices themselves. One cluster per test file (start-up is seconds).
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync, existsSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import forge from 'node-forge';
import { KubeClient } from '../../../platforms/kubernetes/kube-client.ts';
import { peerBinary } from '../../peers/paths.ts';

export const INSTALL_HINT = 'install them with: node_modules/.bin/node test/peers/install.ts etcd kube-apiserver';

/** Why the cluster cannot start here, or undefined when it can. */
export function clusterUnavailable(): string | undefined {
  const missing = ['etcd', 'kube-apiserver'].filter((b) => !peerBinary(b));
  return missing.length ? `${missing.join(' and ')} not found; ${INSTALL_HINT}` : undefined;
}

export interface TestCluster {
  server: string;
  /** PEM of the CA that signed the API server's serving certificate. */
  caPem: string;
  adminToken: string;
  kubeconfigPath: string;
  dir: string;
  client(): KubeClient;
  /** A client authenticating with another token (RBAC checks). */
  clientWithToken(token: string): KubeClient;
  /** Stops and starts the API server on the same port; etcd (and its history) stays. */
  restartApiServer(): Promise<void>;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function selfSignedCa(): { certPem: string; key: forge.pki.rsa.PrivateKey; cert: forge.pki.Certificate } {
  const keys = forge.pki.rsa.generateKeyPair(2048);
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = '01';
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 7 * 24 * 3600_000);
  const name = [{ name: 'commonName', value: 'jibe test cluster ca' }];
  cert.setSubject(name);
  cert.setIssuer(name);
  cert.setExtensions([{ name: 'basicConstraints', cA: true, critical: true }, { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true }]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), key: keys.privateKey, cert };
}

function servingCert(ca: ReturnType<typeof selfSignedCa>): { certPem: string; keyPem: string } {
  const keys = forge.pki.rsa.generateKeyPair(2048);
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = '02';
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 7 * 24 * 3600_000);
  cert.setSubject([{ name: 'commonName', value: 'kube-apiserver' }]);
  cert.setIssuer(ca.cert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }, { type: 2, value: 'localhost' }, { type: 2, value: 'kubernetes.default.svc' }] },
  ]);
  cert.sign(ca.key, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: forge.pki.privateKeyToPem(keys.privateKey) };
}

async function waitFor(check: () => Promise<boolean>, what: string, timeoutMs: number, proc?: ChildProcess, log?: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc && proc.exitCode !== null) throw new Error(`${what}: the process exited (${proc.exitCode}):\n${log?.().slice(-3000)}`);
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${what} not ready after ${timeoutMs} ms:\n${log?.().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function startProcess(binary: string, args: string[]): { proc: ChildProcess; log: () => string } {
  let output = '';
  const proc = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const collect = (c: Buffer) => {
    output += c.toString();
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  proc.stdout!.on('data', collect);
  proc.stderr!.on('data', collect);
  return { proc, log: () => output };
}

async function kill(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

export async function startTestCluster(): Promise<TestCluster> {
  const problem = clusterUnavailable();
  if (problem) throw new Error(problem);
  const dir = mkdtempSync(join(tmpdir(), 'jibe-kube-'));
  const ca = selfSignedCa();
  const serving = servingCert(ca);
  const sa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const adminToken = randomBytes(24).toString('hex');
  const files = {
    ca: join(dir, 'ca.crt'),
    cert: join(dir, 'apiserver.crt'),
    key: join(dir, 'apiserver.key'),
    saPub: join(dir, 'sa.pub'),
    saKey: join(dir, 'sa.key'),
    tokens: join(dir, 'tokens.csv'),
    kubeconfig: join(dir, 'kubeconfig'),
  };
  writeFileSync(files.ca, ca.certPem);
  writeFileSync(files.cert, serving.certPem);
  writeFileSync(files.key, serving.keyPem, { mode: 0o600 });
  writeFileSync(files.saPub, sa.publicKey.export({ type: 'spki', format: 'pem' }));
  writeFileSync(files.saKey, sa.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  writeFileSync(files.tokens, `${adminToken},admin,admin-uid,"system:masters"\n`, { mode: 0o600 });

  const [etcdPort, etcdPeerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
  const etcdDir = join(dir, 'etcd');
  mkdirSync(etcdDir);
  const etcd = startProcess(peerBinary('etcd')!, [
    '--data-dir', etcdDir,
    '--listen-client-urls', `http://127.0.0.1:${etcdPort}`,
    '--advertise-client-urls', `http://127.0.0.1:${etcdPort}`,
    '--listen-peer-urls', `http://127.0.0.1:${etcdPeerPort}`,
    '--initial-advertise-peer-urls', `http://127.0.0.1:${etcdPeerPort}`,
    '--initial-cluster', `default=http://127.0.0.1:${etcdPeerPort}`,
    '--log-level', 'warn',
    '--quota-backend-bytes', String(2 * 1024 ** 3),
  ]);
  const server = `https://127.0.0.1:${apiPort}`;
  const kasArgs = [
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
    '--watch-cache=true',
    '--v', '1',
  ];
  let kas = startProcess(peerBinary('kube-apiserver')!, kasArgs);
  const stopAll = async () => {
    await kill(kas.proc);
    await kill(etcd.proc);
  };
  const makeClient = (token: string) => new KubeClient({ server, ca: ca.certPem, token });
  const ready = async () => {
    const probe = makeClient(adminToken);
    try {
      await waitFor(async () => (await probe.request<string>('GET', '/readyz').then(() => true)), 'kube-apiserver', 90_000, kas.proc, kas.log);
    } finally {
      probe.close();
    }
  };
  try {
    await waitFor(async () => (await fetch(`http://127.0.0.1:${etcdPort}/health`)).ok, 'etcd', 30_000, etcd.proc, etcd.log);
    await ready();
  } catch (err) {
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  writeFileSync(
    files.kubeconfig,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'test', cluster: { server, 'certificate-authority-data': Buffer.from(ca.certPem).toString('base64') } }],
      users: [{ name: 'admin', user: { token: adminToken } }],
      contexts: [{ name: 'test', context: { cluster: 'test', user: 'admin' } }],
      'current-context': 'test',
    }),
    { mode: 0o600 },
  );
  const clients: KubeClient[] = [];
  return {
    server,
    caPem: ca.certPem,
    adminToken,
    kubeconfigPath: files.kubeconfig,
    dir,
    client() {
      const c = makeClient(adminToken);
      clients.push(c);
      return c;
    },
    clientWithToken(token: string) {
      const c = makeClient(token);
      clients.push(c);
      return c;
    },
    async restartApiServer() {
      await kill(kas.proc);
      kas = startProcess(peerBinary('kube-apiserver')!, kasArgs);
      await ready();
    },
    async stop() {
      for (const c of clients) c.close();
      await stopAll();
      if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
    },
  };
}
