// Starts the Jibe sidecar for a benchmark in its own process (run-sidecar.ts),
// so its CPU can be pinned and its memory read like any other proxy's; the
// node:http reference proxy (run-node-http-proxy.ts) starts the same way.
import { fileURLToPath } from 'node:url';
import { startProcess, waitForPort, type ManagedProcess } from './bench-processes.ts';

export const READY_PREFIX = 'JIBE_SIDECAR_READY ';
const JIBE_RUNNER = fileURLToPath(new URL('./run-sidecar.ts', import.meta.url));
const NODE_HTTP_RUNNER = fileURLToPath(new URL('./run-node-http-proxy.ts', import.meta.url));

export interface JibeSidecar {
  process: ManagedProcess;
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
  timeoutMs?: number;
}

/** Starts the Jibe sidecar (or, with kind 'node-http', the reference proxy) and waits until it serves. */
export async function startJibeSidecar(options: SidecarOptions): Promise<JibeSidecar> {
  const kind = options.kind ?? 'jibe';
  const label = kind === 'jibe' ? 'jibe sidecar' : 'node:http proxy';
  let stdout = '';
  let onReady: (ports: { outbound?: number; admin: number }) => void = () => {};
  const ready = new Promise<{ outbound?: number; admin: number }>((resolve) => (onReady = resolve));
  const managed = startProcess({
    name: label,
    command: process.execPath,
    cpus: options.cpus,
    args: [...(options.nodeArgs ?? []), kind === 'jibe' ? JIBE_RUNNER : NODE_HTTP_RUNNER, '--upstream-port', String(options.upstreamPort)],
    onStdout(chunk) {
      stdout += chunk;
      const line = stdout.split('\n').find((candidate) => candidate.startsWith(READY_PREFIX));
      if (line !== undefined) onReady(JSON.parse(line.slice(READY_PREFIX.length)));
    },
  });
  const timeoutMs = options.timeoutMs ?? 15_000;
  let timer: NodeJS.Timeout | undefined;
  const ports = await Promise.race([
    ready,
    managed.exited.then((code) => {
      throw new Error(`${label} exited (${code}) before it was ready:\n${managed.output()}`);
    }),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${label} not ready within ${timeoutMs} ms:\n${managed.output()}`)), timeoutMs);
    }),
  ]).finally(() => clearTimeout(timer));
  if (ports.outbound === undefined) throw new Error(`${label} started without an outbound listener`);
  await waitForPort(managed, ports.outbound);
  return { process: managed, port: ports.outbound, adminPort: ports.admin };
}
