// Starts the Jibe sidecar for a benchmark in its own process (run-sidecar.ts),
// so its CPU can be pinned and its memory read like any other proxy's.
import { fileURLToPath } from 'node:url';
import { startProcess, waitForPort, type ManagedProcess } from './bench-processes.ts';

export const READY_PREFIX = 'JIBE_SIDECAR_READY ';
const RUNNER = fileURLToPath(new URL('./run-sidecar.ts', import.meta.url));

export interface JibeSidecar {
  process: ManagedProcess;
  /** The outbound listener port clients send to (with `Host: upstream:8080`). */
  port: number;
  adminPort: number;
}

export interface SidecarOptions {
  upstreamPort: number;
  cpus: string;
  /** Extra Node flags, e.g. `--cpu-prof`. */
  nodeArgs?: string[];
  timeoutMs?: number;
}

export async function startJibeSidecar(options: SidecarOptions): Promise<JibeSidecar> {
  let stdout = '';
  let onReady: (ports: { outbound?: number; admin: number }) => void = () => {};
  const ready = new Promise<{ outbound?: number; admin: number }>((resolve) => (onReady = resolve));
  const managed = startProcess({
    name: 'jibe sidecar',
    command: process.execPath,
    cpus: options.cpus,
    args: [...(options.nodeArgs ?? []), RUNNER, '--upstream-port', String(options.upstreamPort)],
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
      throw new Error(`jibe sidecar exited (${code}) before it was ready:\n${managed.output()}`);
    }),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`jibe sidecar not ready within ${timeoutMs} ms:\n${managed.output()}`)), timeoutMs);
    }),
  ]).finally(() => clearTimeout(timer));
  if (ports.outbound === undefined) throw new Error('jibe sidecar started without an outbound listener');
  await waitForPort(managed, ports.outbound);
  return { process: managed, port: ports.outbound, adminPort: ports.admin };
}
