// A real Kubernetes control plane for tests: etcd and kube-apiserver from the
// peer cache, on ephemeral loopback ports, with the credentials and flags
// `jibe up` uses (platforms/kubernetes/kube-local-cluster.ts). RBAC is on; the
// admin token is in system:masters. No kubelet runs: tests play it, creating Pods and
// EndpointSlices themselves. One cluster per test file (start-up is seconds).
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../../cli/up/ports.ts';
import { KubeClient } from '../../../platforms/kubernetes/kube-client.ts';
import { localEtcdArgs, localKubeApiServerArgs, writeLocalClusterCredentials, writeLocalKubeconfig } from '../../../platforms/kubernetes/kube-local-cluster.ts';
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
  const files = writeLocalClusterCredentials(dir, 'jibe test cluster ca');
  const { adminToken } = files;

  const [etcdPort, etcdPeerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
  const etcdDir = join(dir, 'etcd');
  mkdirSync(etcdDir);
  const etcd = startProcess(peerBinary('etcd')!, [...localEtcdArgs(etcdDir, etcdPort, etcdPeerPort), '--quota-backend-bytes', String(2 * 1024 ** 3)]);
  const server = `https://127.0.0.1:${apiPort}`;
  const kasArgs = [...localKubeApiServerArgs(files, etcdPort, apiPort), '--watch-cache=true'];
  let kas = startProcess(peerBinary('kube-apiserver')!, kasArgs);
  const stopAll = async () => {
    await kill(kas.proc);
    await kill(etcd.proc);
  };
  const makeClient = (token: string) => new KubeClient({ server, ca: files.caPem, token });
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
  writeLocalKubeconfig(files, server, 'test');
  const clients: KubeClient[] = [];
  return {
    server,
    caPem: files.caPem,
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
