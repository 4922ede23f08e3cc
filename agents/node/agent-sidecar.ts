// Starts the sidecar (`jibe proxy`) and keeps it running: a proxy that exits
// is restarted with exponential backoff (250 ms doubling to 30 s, reset after
// a minute of uptime), for as long as the agent runs — on a VM there is no
// kubelet to do it.
//
// Identity: the agent keeps the workload certificate in `<state-dir>/certs/`
// (cert-chain.pem, key.pem, root-cert.pem; rewritten atomically on rotation);
// the proxy reads that directory (`--cert-dir`, which watches and re-reads it),
// presents the certificate on discovery over TLS (15012, where it checks the
// control plane's SPIFFE ID, `--control-plane-id`) and on every mTLS hop.
// With capture, the proxy serves what iptables redirects: the outbound port by
// SO_ORIGINAL_DST (`--capture`) and the inbound capture port (15006) where the
// app's ports arrive and mesh mTLS is terminated.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PROXY_NODE_FLAGS } from '../../proxy/proxy-node-flags.ts';
import type { LaunchMessage } from './agent-sidecar-launcher.ts';

export interface SidecarSpec {
  namespace: string;
  workload: string;
  /** The platform the workload is registered on: `vm` (default) or `consul` (`--registry consul`). */
  platform?: string;
  /** `host:port` of the discovery stream (TLS, 15012). */
  discovery: string;
  certDir: string;
  controlPlane: string;
  outboundPort: number;
  /** Set when iptables capture is installed: inbound connections arrive here (Istio: 15006). */
  inboundCapturePort?: number;
  adminPort: number;
}

/** How the sidecar is run: `node <nodeArgs> <entry> <args>`; `args` starts with `proxy`. */
export interface SidecarCommand {
  nodeArgs: string[];
  entry: string;
  args: string[];
}

export function sidecarCommand(jibeEntry: string, spec: SidecarSpec): SidecarCommand {
  return {
    nodeArgs: [...PROXY_NODE_FLAGS],
    entry: jibeEntry,
    args: [
      'proxy',
      '--type', 'sidecar',
      '--namespace', spec.namespace,
      '--workload', spec.workload,
      '--platform', spec.platform ?? 'vm',
      '--discovery', spec.discovery,
      // Always TLS, whatever the port: the VM reaches discovery only on the control plane's TLS port.
      '--discovery-tls',
      '--outbound-port', String(spec.outboundPort),
      ...(spec.inboundCapturePort === undefined ? [] : ['--capture', '--inbound-capture-port', String(spec.inboundCapturePort)]),
      '--admin-port', String(spec.adminPort),
      '--cert-dir', spec.certDir,
      '--control-plane-id', spec.controlPlane,
    ],
  };
}

const LAUNCHER = fileURLToPath(new URL(`./agent-sidecar-launcher${path.extname(fileURLToPath(import.meta.url))}`, import.meta.url));

export interface SidecarProcessOptions {
  /** The `jibe` entry point. */
  entry: string;
  nodeArgs: string[];
  /** The proxy's user and group: capture exempts its traffic. Set when the agent runs as root. */
  uid?: number;
  gid?: number;
}

/**
 * A sidecar process started ahead of its arguments (agent-sidecar-launcher.ts): Node and the proxy's modules
 * load while the join goes on. Its output is held in the pipe until `SidecarSupervisor.start` gives it a log.
 */
export class WarmSidecar {
  readonly child: ChildProcess;

  constructor(options: SidecarProcessOptions) {
    this.child = spawn(process.execPath, [...options.nodeArgs, LAUNCHER, options.entry], {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      ...(options.uid === undefined ? {} : { uid: options.uid, gid: options.gid ?? options.uid }),
    });
    this.child.once('error', () => {});
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null && this.child.connected;
  }

  /** Not needed after all (the join failed): the launcher exits when its channel closes. */
  discard(): void {
    if (this.child.connected) this.child.disconnect();
    if (this.alive) this.child.kill('SIGTERM');
  }
}

export type SidecarState = 'starting' | 'running' | 'restarting' | 'stopped';

export interface SidecarStatus {
  state: SidecarState;
  pid?: number;
  restarts: number;
  lastExit?: { code: number | null; signal: string | null; at: string };
}

const MAX_BACKOFF_MS = 30_000;
const STABLE_MS = 60_000;

export class SidecarSupervisor {
  private readonly command: SidecarCommand;
  private readonly process: SidecarProcessOptions;
  private readonly logFile: string;
  private readonly onChange: (status: SidecarStatus) => void;
  private child: ChildProcess | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private startedAt = 0;
  private backoffMs = 250;
  private stopping = false;
  private readonly status$: SidecarStatus = { state: 'stopped', restarts: 0 };

  constructor(command: SidecarCommand, ids: { uid?: number; gid?: number }, logFile: string, onChange: (status: SidecarStatus) => void = () => {}) {
    this.command = command;
    this.process = { entry: command.entry, nodeArgs: command.nodeArgs, ...ids };
    this.logFile = logFile;
    this.onChange = onChange;
  }

  get status(): SidecarStatus {
    return { ...this.status$ };
  }

  /** Starts the sidecar: in `warm` when it is still waiting for its arguments, else in a new process. */
  start(warm?: WarmSidecar): void {
    this.stopping = false;
    if (warm?.alive) {
      const log = fs.createWriteStream(this.logFile, { flags: 'a', mode: 0o600 });
      // Only the first process goes through the agent's pipes; restarts write to the log directly.
      warm.child.stdout!.pipe(log, { end: false });
      warm.child.stderr!.pipe(log, { end: false });
      warm.child.once('close', () => log.end());
      warm.child.send({ args: this.command.args } satisfies LaunchMessage);
      this.watch(warm.child);
    } else {
      warm?.discard();
      this.spawn();
    }
  }

  /** SIGTERM, then SIGKILL after `graceMs`; no restart afterwards. */
  async stop(graceMs = 5000): Promise<void> {
    this.stopping = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const kill = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(kill);
    }
    this.update({ state: 'stopped', pid: undefined });
  }

  private spawn(): void {
    const out = fs.openSync(this.logFile, 'a', 0o600);
    const { uid, gid } = this.process;
    const child = spawn(process.execPath, [...this.command.nodeArgs, this.command.entry, ...this.command.args], {
      stdio: ['ignore', out, out],
      ...(uid === undefined ? {} : { uid, gid: gid ?? uid }),
    });
    fs.closeSync(out);
    this.watch(child);
  }

  private watch(child: ChildProcess): void {
    this.child = child;
    this.startedAt = Date.now();
    this.update({ state: 'running', pid: child.pid });
    child.once('error', () => {}); // reported by 'exit'
    child.once('exit', (code, signal) => {
      this.status$.lastExit = { code, signal, at: new Date().toISOString() };
      if (this.stopping) return;
      if (Date.now() - this.startedAt > STABLE_MS) this.backoffMs = 250;
      this.status$.restarts++;
      this.update({ state: 'restarting', pid: undefined });
      this.timer = setTimeout(() => {
        if (!this.stopping) this.spawn();
      }, this.backoffMs);
      this.backoffMs = Math.min(MAX_BACKOFF_MS, this.backoffMs * 2);
    });
  }

  private update(patch: Partial<SidecarStatus>): void {
    Object.assign(this.status$, patch);
    this.onChange(this.status);
  }
}
