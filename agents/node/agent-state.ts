// What the node agent keeps in its state directory (default
// /var/lib/jibe-agent, 0700), so a restarted agent resumes instead of joining
// again (and spends no second use of its token):
//   agent.json     how it joined: control plane, pinned roots, identity, registration, capture, proxy
//   status.json    what the running agent last saw (proxy, health, reports); read by `jibe agent status`
//   agent.pid      the running agent, for `leave`
//   certs/         key.pem (0600), cert-chain.pem, root-cert.pem — the workload certificate, rotated in
//                  place; the key is made here and never sent anywhere, and is kept on disk only so a
//                  restarted agent (and its proxy) keeps serving while the control plane is away
//   proxy.log      the sidecar's output
// Files are written to a temporary name and renamed, so a reader never sees half a file.
import fs from 'node:fs';
import path from 'node:path';
import { JibeError } from '../../core/errors/errors.ts';
import type { WorkloadRegistration } from '../../core/registry/workload-registrar.ts';
import type { CaptureOptions } from '../capture/capture-config.ts';
import type { WorkloadCertificate } from '../../proxy/identity/identity-manager.ts';
import { certificateExpiry } from '../../proxy/identity/workload-key.ts';
import type { HealthCheckOptions, Health } from './agent-health.ts';
import type { SidecarStatus } from './agent-sidecar.ts';

export const DEFAULT_STATE_DIR = '/var/lib/jibe-agent';

export interface AgentState {
  version: 1;
  controlPlane: { address: string; addresses: string[]; spiffeId: string; rootSha256: string; trustDomain: string; discoveryTlsPort?: number };
  identity: { spiffeId: string; namespace: string; serviceAccount: string };
  registration: WorkloadRegistration;
  capture: { enabled: boolean; options?: CaptureOptions };
  proxy: { enabled: boolean; uid: number; gid: number; outboundPort: number; inboundPort: number; adminPort: number };
  healthCheck?: HealthCheckOptions;
  heartbeatMs: number;
  joinedAt: string;
  /** Where the workload is registered; absent = the control plane's vm registry (agents that joined before this existed). */
  registry?: ConsulRegistryState;
}

/** `--registry consul`: the local Consul agent holds the registration (agent-registry-consul.ts). */
export interface ConsulRegistryState {
  kind: 'consul';
  /** Consul's HTTP API, e.g. http://127.0.0.1:8500. */
  address: string;
  /** Read at each use; the token itself is never copied into the state. */
  tokenFile?: string;
  /** What the last registration put into Consul, so leave removes exactly those. */
  instances?: Array<{ id: string; workload: string }>;
}

export interface AgentRuntimeStatus {
  pid: number;
  updatedAt: string;
  user: { uid: number; gid: number };
  sidecar?: SidecarStatus;
  health: Health;
  healthReason?: string;
  lastRegistration?: string;
  lastReport?: { at: string; ok: boolean; error?: string };
  certExpiresAt?: string;
}

export function statePaths(dir: string) {
  return {
    dir,
    agent: path.join(dir, 'agent.json'),
    status: path.join(dir, 'status.json'),
    pid: path.join(dir, 'agent.pid'),
    certDir: path.join(dir, 'certs'),
    key: path.join(dir, 'certs', 'key.pem'),
    chain: path.join(dir, 'certs', 'cert-chain.pem'),
    root: path.join(dir, 'certs', 'root-cert.pem'),
    proxyLog: path.join(dir, 'proxy.log'),
  };
}

export function writeFileAtomic(file: string, data: string, mode = 0o600): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, data, { mode });
  fs.chmodSync(tmp, mode);
  fs.renameSync(tmp, file);
}

export function ensureStateDir(dir: string): void {
  fs.mkdirSync(path.join(dir, 'certs'), { recursive: true, mode: 0o700 });
  fs.chmodSync(dir, 0o700);
}

export function readAgentState(dir: string): AgentState | undefined {
  const file = statePaths(dir).agent;
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new JibeError('JIBE_ERR_AGENT', `cannot read ${file}: ${(err as Error).message}`, { hint: 'run as the user that owns the state directory (root, or the proxy user after the agent dropped privileges)' });
  }
  try {
    const state = JSON.parse(text) as AgentState;
    if (state?.version !== 1) throw new Error(`unknown version ${String(state?.version)}`);
    return state;
  } catch (err) {
    throw new JibeError('JIBE_ERR_AGENT', `${file} is not what the agent wrote: ${(err as Error).message}`, { hint: 'run `jibe agent leave` (or remove the state directory) and join again' });
  }
}

export function writeAgentState(dir: string, state: AgentState): void {
  writeFileAtomic(statePaths(dir).agent, JSON.stringify(state, null, 2) + '\n');
}

export function readRuntimeStatus(dir: string): AgentRuntimeStatus | undefined {
  try {
    return JSON.parse(fs.readFileSync(statePaths(dir).status, 'utf8')) as AgentRuntimeStatus;
  } catch {
    return undefined;
  }
}

export function writeRuntimeStatus(dir: string, status: AgentRuntimeStatus): void {
  writeFileAtomic(statePaths(dir).status, JSON.stringify(status, null, 2) + '\n', 0o644);
}

/** Writes the certificate files the agent and the proxy read (key 0600; chain and roots public). */
export function writeCertificate(dir: string, cert: WorkloadCertificate): void {
  const p = statePaths(dir);
  writeFileAtomic(p.key, cert.keyPem, 0o600);
  writeFileAtomic(p.chain, cert.certChainPem, 0o644);
  writeFileAtomic(p.root, cert.trustBundle.join(''), 0o644);
}

/** The kept certificate, or undefined when there is none (or it cannot be read). */
export function readCertificate(dir: string, spiffeId: string): WorkloadCertificate | undefined {
  const p = statePaths(dir);
  try {
    const keyPem = fs.readFileSync(p.key, 'utf8');
    const certChainPem = fs.readFileSync(p.chain, 'utf8');
    const roots = fs.readFileSync(p.root, 'utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? [];
    return { spiffeId, keyPem, certChainPem, trustBundle: roots, expiresAt: certificateExpiry(certChainPem) };
  } catch {
    return undefined;
  }
}

/** The pid in agent.pid when that process is alive. */
export function runningAgentPid(dir: string): number | undefined {
  let pid: number;
  try {
    pid = Number(fs.readFileSync(statePaths(dir).pid, 'utf8').trim());
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return undefined;
  try {
    process.kill(pid, 0);
    return pid;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM' ? pid : undefined;
  }
}

/** Gives the state directory to the user the agent continues as after dropping root. */
export function chownStateDir(dir: string, uid: number, gid: number): void {
  for (const entry of [dir, ...fs.readdirSync(dir, { recursive: true }).map((f) => path.join(dir, String(f)))]) fs.chownSync(entry, uid, gid);
}
