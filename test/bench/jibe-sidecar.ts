// Starts the Jibe sidecar for a benchmark in its own process (run-sidecar.mjs),
// so its CPU can be pinned and its memory read like any other proxy's; the
// node:http reference proxy (run-node-http-proxy.mjs) starts the same way.
// The sidecar is the compiled JS in dist/ with the Node flags `jibe up` gives
// its proxies: what users run, not the TypeScript sources.
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PROXY_NODE_FLAGS } from '../../proxy/proxy-node-flags.ts';
import { REPO_ROOT } from '../peers/paths.ts';
import { startProcess, waitForPort, type ManagedProcess } from './bench-processes.ts';

export const READY_PREFIX = 'JIBE_SIDECAR_READY ';
const JIBE_RUNNER = fileURLToPath(new URL('./run-sidecar.mjs', import.meta.url));
const NODE_HTTP_RUNNER = fileURLToPath(new URL('./run-node-http-proxy.mjs', import.meta.url));
const BUILT_PROXY = join(REPO_ROOT, 'dist', 'proxy', 'proxy.js');

/**
 * @throws Error when dist/ lacks the compiled sidecar. (Whether it is current is
 *   `npm run bench`'s job: it builds first, and tsc's incremental build leaves
 *   unchanged outputs alone, so file dates cannot tell.)
 */
export function assertSidecarBuilt(): void {
  if (!existsSync(BUILT_PROXY)) {
    throw new Error(`the sidecar is not built: ${relative(REPO_ROOT, BUILT_PROXY)} is missing; run \`npm run build\` (\`npm run bench\` builds first)`);
  }
}

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
  /** The proxy's memory flags; default PROXY_NODE_FLAGS, as `jibe up` starts its proxies. */
  proxyFlags?: readonly string[];
  timeoutMs?: number;
}

/** Starts the Jibe sidecar (or, with kind 'node-http', the reference proxy) and waits until it serves. */
export async function startJibeSidecar(options: SidecarOptions): Promise<JibeSidecar> {
  const kind = options.kind ?? 'jibe';
  if (kind === 'jibe') assertSidecarBuilt();
  const label = kind === 'jibe' ? 'jibe sidecar' : 'node:http proxy';
  let stdout = '';
  let onReady: (ports: { outbound?: number; admin: number }) => void = () => {};
  const ready = new Promise<{ outbound?: number; admin: number }>((resolve) => (onReady = resolve));
  const managed = startProcess({
    name: label,
    command: process.execPath,
    cpus: options.cpus,
    // The reference proxy gets the same flags, so the two rows differ only in the proxy's own code.
    args: [...(options.proxyFlags ?? PROXY_NODE_FLAGS), ...(options.nodeArgs ?? []), kind === 'jibe' ? JIBE_RUNNER : NODE_HTTP_RUNNER, '--upstream-port', String(options.upstreamPort)],
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
