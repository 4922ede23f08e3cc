// Starts the proxies under test in their own processes, so their CPU can be
// pinned and their memory read like any other proxy's. The Jibe sidecar is the
// one `jibe up` runs: `node <PROXY_NODE_FLAGS> dist/cli/jibe.js proxy …`, fed by
// a real control plane (`dist/cli/jibe.js control-plane`) over the discovery
// stream, with its route to the upstream made the way the local mesh makes it:
// the upstream registered as a workload serving `upstream:8080`, the sidecar's
// own workload registered beside it. The node:http reference proxy
// (run-node-http-proxy.mjs) starts with the same Node flags.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PROXY_NODE_FLAGS } from '../../proxy/proxy-node-flags.ts';
import { REPO_ROOT } from '../peers/paths.ts';
import { freePort, startProcess, waitForPort, type ManagedProcess } from './bench-processes.ts';

export const READY_PREFIX = 'JIBE_SIDECAR_READY ';
const NODE_HTTP_RUNNER = fileURLToPath(new URL('./run-node-http-proxy.mjs', import.meta.url));
const BUILT_PROXY = join(REPO_ROOT, 'dist', 'proxy', 'proxy.js');
const JIBE_JS = join(REPO_ROOT, 'dist', 'cli', 'jibe.js');
/** The workload the benchmarked sidecar fronts, and the service behind the upstream. */
const CLIENT_WORKLOAD = 'bench-client';
const UPSTREAM_SERVICE = { name: 'upstream', port: 8080 };

/**
 * @throws Error when dist/ lacks the compiled sidecar. (Whether it is current is
 *   `npm run bench`'s job: it builds first, and tsc's incremental build leaves
 *   unchanged outputs alone, so file dates cannot tell.)
 */
export function assertSidecarBuilt(): void {
  if (!existsSync(BUILT_PROXY) || !existsSync(JIBE_JS)) {
    throw new Error(`the sidecar is not built: ${relative(REPO_ROOT, BUILT_PROXY)} is missing; run \`npm run build\` (\`npm run bench\` builds first)`);
  }
}

export interface JibeSidecar {
  /** The proxy itself (whose memory and CPU are measured). */
  process: ManagedProcess;
  /** The control plane feeding it (Jibe only; pinned with the load, not measured). */
  controlPlane?: ManagedProcess;
  /** The outbound listener port clients send to (with `Host: upstream:8080`). */
  port: number;
  adminPort: number;
}

export interface SidecarOptions {
  /** Which proxy: the Jibe sidecar, or the plain node:http reference proxy. */
  kind?: 'jibe' | 'node-http';
  upstreamPort: number;
  cpus: string;
  /** Extra Node flags, e.g. `--cpu-prof`. */
  nodeArgs?: string[];
  /** CPUs of the control plane (Jibe only); idle once the sidecar has its config. */
  controlPlaneCpus?: string;
  /** The proxy's memory flags; default PROXY_NODE_FLAGS, as `jibe up` starts its proxies. */
  proxyFlags?: readonly string[];
  timeoutMs?: number;
  /** Istio port name of the upstream service (`http` by default; `grpc`/`http2` make the cluster speak HTTP/2). */
  portName?: string;
  /** Extra `jibe proxy` flags (Jibe only), e.g. `--access-log json`. */
  proxyArgs?: string[];
}

/** Starts the Jibe sidecar with its control plane (or, with kind 'node-http', the reference proxy) and waits until it serves. */
export async function startJibeSidecar(options: SidecarOptions): Promise<JibeSidecar> {
  if ((options.kind ?? 'jibe') === 'node-http') return startNodeHttpProxy(options);
  assertSidecarBuilt();
  const timeoutMs = options.timeoutMs ?? 30_000;
  const dataDir = mkdtempSync(join(tmpdir(), 'jibe-bench-cp-'));
  const discoveryPort = await freePort();
  const apiPort = await freePort();
  const api = `http://127.0.0.1:${apiPort}`;
  const controlPlane = startProcess({
    name: 'jibe control plane',
    command: process.execPath,
    cpus: options.controlPlaneCpus,
    // The TLS listeners are off: their fixed default ports may be held by another control plane on a shared machine.
    args: [
      JIBE_JS, 'control-plane', '--data-dir', dataDir, '--discovery-port', String(discoveryPort), '--api-port', String(apiPort),
      '--discovery-tls-port', 'off', '--api-tls-port', 'off', '--log-level', 'warn',
    ],
  });
  void controlPlane.exited.then(() => rmSync(dataDir, { recursive: true, force: true }));
  await until(timeoutMs, controlPlane, 'the control plane to answer /healthz', async () => (await fetch(`${api}/healthz`).catch(() => undefined))?.ok === true);
  // What `jibe up` does for each workload (PUT /api/v1/workloads): the upstream
  // (fortio, no sidecar) serves upstream:8080, so every sidecar gets the outbound
  // route `upstream:8080` → `outbound|8080||upstream.default.svc.cluster.local`.
  await putWorkload(api, {
    name: 'upstream', namespace: 'default', address: '127.0.0.1', labels: { app: 'upstream' },
    services: [{ name: UPSTREAM_SERVICE.name, port: UPSTREAM_SERVICE.port, targetPort: options.upstreamPort, portName: options.portName ?? 'http' }],
  });
  await putWorkload(api, { name: CLIENT_WORKLOAD, namespace: 'default', address: '127.0.0.1', labels: { app: CLIENT_WORKLOAD }, services: [] });

  let stdout = '';
  let onStarted: (ports: { outbound?: number; admin: number }) => void = () => {};
  const started = new Promise<{ outbound?: number; admin: number }>((resolve) => (onStarted = resolve));
  const managed = startProcess({
    name: 'jibe sidecar',
    command: process.execPath,
    cpus: options.cpus,
    // Exactly how `jibe up` starts a sidecar (cli/up/local-mesh.ts), on ephemeral ports.
    args: [
      ...(options.proxyFlags ?? PROXY_NODE_FLAGS), ...(options.nodeArgs ?? []), JIBE_JS, 'proxy',
      '--workload', CLIENT_WORKLOAD, '--namespace', 'default', '--discovery', `127.0.0.1:${discoveryPort}`,
      '--outbound-port', '0', '--admin-port', '0', '--log-level', 'info', ...(options.proxyArgs ?? []),
    ],
    onStdout(chunk) {
      stdout += chunk;
      // pino's JSON line `{"ports":{"outbound":…,"admin":…},"msg":"proxy started"}` (cli/commands/proxy.ts).
      for (const line of stdout.split('\n')) {
        if (!line.includes('"ports"')) continue;
        try {
          const parsed = JSON.parse(line) as { ports?: { outbound?: number; admin: number } };
          if (parsed.ports) onStarted(parsed.ports);
        } catch {
          // A line still being written.
        }
      }
      stdout = stdout.slice(stdout.lastIndexOf('\n') + 1);
    },
  });
  const ports = await race(started, managed, timeoutMs, 'jibe sidecar');
  // Only the start line was wanted: what follows (the access log, when on) is drained and dropped.
  managed.muteStdout();
  if (ports.outbound === undefined) throw new Error('jibe sidecar started without an outbound listener');
  await waitForPort(managed, ports.outbound);
  // /ready answers 200 once the first push from the control plane is applied.
  await until(timeoutMs, managed, 'the sidecar to apply its first config (/ready)', async () => (await fetch(`http://127.0.0.1:${ports.admin}/ready`).catch(() => undefined))?.ok === true);
  return { process: managed, controlPlane, port: ports.outbound, adminPort: ports.admin };
}

async function putWorkload(api: string, workload: object): Promise<void> {
  const response = await fetch(`${api}/api/v1/workloads`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(workload) });
  if (!response.ok) throw new Error(`registering a workload failed: ${response.status} ${await response.text()}`);
}

async function until(timeoutMs: number, managed: ManagedProcess, what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let dead: number | string | undefined;
  void managed.exited.then((code) => (dead = code));
  while (Date.now() < deadline) {
    if (dead !== undefined) throw new Error(`${managed.name} exited (${dead}) while waiting for ${what}:\n${managed.output()}`);
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}:\n${managed.output()}`);
}

async function race<T>(ready: Promise<T>, managed: ManagedProcess, timeoutMs: number, label: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    ready,
    managed.exited.then((code): never => {
      throw new Error(`${label} exited (${code}) before it was ready:\n${managed.output()}`);
    }),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${label} not ready within ${timeoutMs} ms:\n${managed.output()}`)), timeoutMs);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** The bare node:http reference proxy (run-node-http-proxy.mjs), with the sidecar's Node flags. */
async function startNodeHttpProxy(options: SidecarOptions): Promise<JibeSidecar> {
  const label = 'node:http proxy';
  let stdout = '';
  let onReady: (ports: { outbound?: number; admin: number }) => void = () => {};
  const ready = new Promise<{ outbound?: number; admin: number }>((resolve) => (onReady = resolve));
  const managed = startProcess({
    name: label,
    command: process.execPath,
    cpus: options.cpus,
    // The reference proxy gets the same flags, so the two rows differ only in the proxy's own code.
    args: [...(options.proxyFlags ?? PROXY_NODE_FLAGS), ...(options.nodeArgs ?? []), NODE_HTTP_RUNNER, '--upstream-port', String(options.upstreamPort)],
    onStdout(chunk) {
      stdout += chunk;
      const line = stdout.split('\n').find((candidate) => candidate.startsWith(READY_PREFIX));
      if (line !== undefined) onReady(JSON.parse(line.slice(READY_PREFIX.length)));
    },
  });
  const ports = await race(ready, managed, options.timeoutMs ?? 15_000, label);
  if (ports.outbound === undefined) throw new Error(`${label} started without an outbound listener`);
  await waitForPort(managed, ports.outbound);
  return { process: managed, port: ports.outbound, adminPort: ports.admin };
}
