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
import { PROXY_NODE_FLAGS } from '../../proxy/proxy-node-flags.ts';

export interface SidecarSpec {
  namespace: string;
  workload: string;
  /** `host:port` of the discovery stream (TLS, 15012). */
  discovery: string;
  certDir: string;
  controlPlane: string;
  outboundPort: number;
  /** Set when iptables capture is installed: inbound connections arrive here (Istio: 15006). */
  inboundCapturePort?: number;
  adminPort: number;
}

/** argv (after the node binary) and extra environment of the sidecar. */
export function sidecarCommand(jibeEntry: string, spec: SidecarSpec): { args: string[]; env: Record<string, string> } {
  return {
    args: [
      ...PROXY_NODE_FLAGS,
      jibeEntry, 'proxy',
      '--type', 'sidecar',
      '--namespace', spec.namespace,
      '--workload', spec.workload,
      '--platform', 'vm',
      '--discovery', spec.discovery,
      // Always TLS, whatever the port: the VM reaches discovery only on the control plane's TLS port.
      '--discovery-tls',
      '--outbound-port', String(spec.outboundPort),
      ...(spec.inboundCapturePort === undefined ? [] : ['--capture', '--inbound-capture-port', String(spec.inboundCapturePort)]),
      '--admin-port', String(spec.adminPort),
      '--cert-dir', spec.certDir,
      '--control-plane-id', spec.controlPlane,
    ],
    env: {},
  };
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
  private readonly command: { args: string[]; env: Record<string, string> };
  private readonly logFile: string;
  private readonly onChange: (status: SidecarStatus) => void;
  private child: ChildProcess | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private startedAt = 0;
  private backoffMs = 250;
  private stopping = false;
  private readonly status$: SidecarStatus = { state: 'stopped', restarts: 0 };

  constructor(command: { args: string[]; env: Record<string, string> }, logFile: string, onChange: (status: SidecarStatus) => void = () => {}) {
    this.command = command;
    this.logFile = logFile;
    this.onChange = onChange;
  }

  get status(): SidecarStatus {
    return { ...this.status$ };
  }

  start(): void {
    this.stopping = false;
    this.spawn();
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
    const child = spawn(process.execPath, this.command.args, { stdio: ['ignore', out, out], env: { ...process.env, ...this.command.env } });
    fs.closeSync(out);
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
