// Starts and stops a real Consul dev agent (in-memory server) for a test file.
// Every port is chosen free, so test files running in parallel never collide,
// and the agent is ready only once /v1/catalog/services answers with a leader.
// Without the binary a test skips locally and fails under CI=true.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import { freePort } from '../../../cli/up/ports.ts';
import { ConsulClient } from '../../../platforms/consul/consul-client.ts';
import { peerBinary } from '../../peers/paths.ts';
import { waitFor } from '../../helpers/wait-for.ts';

export interface ConsulAgentOptions {
  /** Enables ACLs with default deny; the management token is `managementToken`. */
  acl?: boolean;
  datacenter?: string;
  nodeName?: string;
}

export interface ConsulAgent {
  address: string;
  httpPort: number;
  /** WAN gossip port: another datacenter's agent joins here (`/v1/agent/join/127.0.0.1:<port>?wan=1`). */
  serfWanPort: number;
  datacenter: string;
  nodeName: string;
  /** Management token when ACLs are on. */
  managementToken: string | undefined;
  /** A client with the management token (when ACLs are on). */
  client(token?: string): ConsulClient;
  /** Stops the agent (its in-memory state is lost); `start()` brings it back on the same ports. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Output, for failure messages. */
  output(): string;
}

/** Why Consul tests cannot run here, or undefined when they can (under CI a missing binary is a failure, not a skip). */
export function consulSkipReason(): string | undefined {
  if (peerBinary('consul') || process.env.CI === 'true') return undefined;
  return 'consul is not installed (node_modules/.bin/node test/peers/install.ts consul)';
}

export async function startConsulAgent(options: ConsulAgentOptions = {}): Promise<ConsulAgent> {
  const binary = peerBinary('consul');
  if (!binary) throw new Error('consul binary not found; install it with: node_modules/.bin/node test/peers/install.ts consul');
  const datacenter = options.datacenter ?? 'dc1';
  const nodeName = options.nodeName ?? `jibe-test-${process.pid}`;
  const managementToken = options.acl ? randomUUID() : undefined;
  const [http, serfLan, serfWan, server] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const args = [
    'agent', '-dev', '-client', '127.0.0.1', '-bind', '127.0.0.1',
    '-datacenter', datacenter, '-node', nodeName,
    '-http-port', String(http), '-dns-port', '-1', '-grpc-port', '-1', '-grpc-tls-port', '-1',
    '-serf-lan-port', String(serfLan), '-serf-wan-port', String(serfWan), '-server-port', String(server),
    '-log-level', 'warn',
  ];
  if (managementToken) args.push('-hcl', `acl { enabled = true default_policy = "deny" tokens { initial_management = "${managementToken}" } }`);
  const address = `http://127.0.0.1:${http}`;
  let child: ChildProcess | undefined;
  let log = '';

  const start = async () => {
    const proc = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    const collect = (chunk: Buffer) => {
      log = (log + chunk.toString()).slice(-20_000);
    };
    proc.stdout?.on('data', collect);
    proc.stderr?.on('data', collect);
    const client = new ConsulClient({ address, token: managementToken });
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`consul exited with ${proc.exitCode}:\n${log}`);
      try {
        const leader = await client.get<string>('/v1/status/leader', { timeoutMs: 2_000 });
        if (leader.body) {
          await client.get('/v1/catalog/services', { timeoutMs: 2_000 });
          return;
        }
      } catch {
        // not up yet
      }
      if (Date.now() > deadline) throw new Error(`consul did not become ready within 60 s:\n${log}`);
      await delay(100);
    }
  };

  const stop = async () => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null) return;
    const exited = once(proc, 'exit');
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };

  await start();
  return {
    address,
    httpPort: http,
    serfWanPort: serfWan,
    datacenter,
    nodeName,
    managementToken,
    client: (token?: string) => new ConsulClient({ address, token: token ?? managementToken }),
    stop,
    start,
    output: () => log,
  };
}

/** test/helpers waitFor with the argument order these tests read best in (what, then how); nothing asserts on speed. */
export function waitUntil<T>(what: string, check: () => Promise<T | undefined> | T | undefined, guardMs = 20_000): Promise<T> {
  return waitFor(check, what, guardMs, 50);
}

/** The path of the `jibe` command's TypeScript source, as the integration tests run it. */
export const JIBE_SOURCE = fileURLToPath(new URL('../../../cli/jibe.ts', import.meta.url));

/** Runs `jibe` from source to completion; never throws on a non-zero exit (the result says how it ended). */
export function runJibeSource(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [JIBE_SOURCE, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}
