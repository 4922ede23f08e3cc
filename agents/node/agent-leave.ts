// `jibe agent leave` and `jibe agent status`: both work from the state
// directory alone, so they work whether or not the agent is running.
// leave: stop the running agent (which stops the proxy), deregister over mTLS,
// remove every capture rule (iptables-save as before join, byte for byte), and
// delete the state (key included). Local cleanup happens even when the
// control plane cannot be reached; that is reported, not hidden.
// An agent that joined with `--registry consul` is deregistered from its
// Consul agent instead (each instance, and with it its sidecar).
import fs from 'node:fs';
import { JibeError } from '../../core/errors/errors.ts';
import { captureStatus, removeCapture } from '../capture/capture-apply.ts';
import type { CaptureState } from '../capture/capture-apply.ts';
import type { CommandRunner } from '../capture/capture-exec.ts';
import { callControlPlane } from './agent-control-plane.ts';
import { readAgentState, readCertificate, readRuntimeStatus, runningAgentPid } from './agent-state.ts';
import type { AgentRuntimeStatus } from './agent-state.ts';

export interface LeaveResult {
  stoppedAgent?: number;
  /** The workload this VM was registered as. */
  workload: { namespace: string; name: string };
  /** The control plane's TLS API address the agent used. */
  controlPlane: string;
  /** Where the workload was registered; with Consul, its address and the instance IDs. */
  registry?: { kind: 'consul'; address: string; instances: string[]; failed: string[] };
  deregistered: boolean;
  deregisterError?: string;
  captureRemoved: boolean;
}

export async function leave(dir: string, options: { captureExec?: CommandRunner; log?: (m: string) => void } = {}): Promise<LeaveResult> {
  const log = options.log ?? (() => {});
  const state = readAgentState(dir);
  if (!state) throw new JibeError('JIBE_ERR_AGENT', `${dir} holds no joined agent; nothing to leave`, { hint: 'pass the --state-dir the agent joined with' });
  if (state.capture.enabled && process.getuid?.() !== 0) {
    throw new JibeError('JIBE_ERR_AGENT', 'removing traffic capture needs root', { hint: 'run `jibe agent leave` as root' });
  }
  const result: LeaveResult = { workload: { namespace: state.identity.namespace, name: state.registration.name }, controlPlane: state.controlPlane.address, deregistered: false, captureRemoved: false };
  const pid = runningAgentPid(dir);
  if (pid !== undefined) {
    process.kill(pid, 'SIGTERM');
    result.stoppedAgent = pid;
    const deadline = Date.now() + 15_000;
    while (runningAgentPid(dir) !== undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    if (runningAgentPid(dir) !== undefined) throw new JibeError('JIBE_ERR_AGENT', `the agent (pid ${pid}) did not stop within 15 s`, { hint: `stop it (kill ${pid}) and run leave again` });
    log(`stopped the agent (pid ${pid}) and its proxy`);
  }
  const cert = readCertificate(dir, state.identity.spiffeId);
  const { namespace } = state.identity;
  const name = state.registration.name;
  if (state.registry?.kind === 'consul') {
    const { deregisterFromConsul } = await import('./agent-registry-consul.ts');
    const outcome = await deregisterFromConsul(state.registry, log);
    result.registry = { kind: 'consul', address: state.registry.address, instances: (state.registry.instances ?? []).map((i) => i.id), failed: outcome.failed };
    result.deregistered = outcome.error === undefined;
    if (outcome.error !== undefined) result.deregisterError = outcome.error;
  } else if (cert && name) {
    try {
      await callControlPlane(state.controlPlane.address, 'DELETE', `/api/v1/vm/workloads/${namespace}/${name}`, undefined, {
        roots: cert.trustBundle,
        controlPlane: state.controlPlane.spiffeId,
        client: { keyPem: cert.keyPem, certChainPem: cert.certChainPem },
      });
      result.deregistered = true;
      log(`deregistered ${namespace}/${name}`);
    } catch (err) {
      const e = err as JibeError;
      if (e.code === 'JIBE_ERR_NOT_FOUND') result.deregistered = true;
      else result.deregisterError = e.message;
    }
  } else {
    result.deregisterError = 'no valid certificate is kept to deregister with';
  }
  if (state.capture.enabled) {
    const removed = await removeCapture({ exec: options.captureExec });
    result.captureRemoved = removed.removedFamilies.length > 0;
    log(result.captureRemoved ? 'traffic capture removed' : 'no traffic capture was in place');
  }
  fs.rmSync(dir, { recursive: true, force: true });
  return result;
}

/**
 * What `jibe agent leave` tells the operator. When the control plane could not be told (down, unreachable,
 * or no valid certificate left), the VM has still left locally, and the one step that remains is spelled out:
 * the registration would otherwise stay, and come back healthy with a restarted control plane.
 */
export function formatLeaveResult(r: LeaveResult): { stdout: string; stderr: string } {
  const id = `${r.workload.namespace}/${r.workload.name}`;
  const where = r.registry ? ` from Consul (${r.registry.instances.join(', ') || 'no instances'})` : '';
  if (!r.deregisterError) return { stdout: `left the mesh: ${id} deregistered${where}, capture ${r.captureRemoved ? 'removed' : 'was not installed'}, agent state deleted\n`, stderr: '' };
  if (r.registry) {
    return {
      stdout: `left the mesh locally: the agent and its proxy are stopped, ${r.captureRemoved ? 'every capture rule is removed' : 'no capture was installed'}, the key, certificate and agent state are deleted\n`,
      stderr: [
        `warning: Consul at ${r.registry.address} was not told (${r.deregisterError})`,
        `  ${r.registry.failed.join(', ')} stay registered there (in maintenance if the agent was running, so no peer is sent here).`,
        '  One manual step remains; once Consul answers run:',
        ...r.registry.failed.map((instance) => `    jibe consul deregister ${instance} --consul-address ${r.registry!.address} --ignore-missing`),
        '',
      ].join('\n'),
    };
  }
  return {
    stdout: `left the mesh locally: the agent and its proxy are stopped, ${r.captureRemoved ? 'every capture rule is removed' : 'no capture was installed'}, the key, certificate and agent state are deleted\n`,
    stderr: [
      `warning: the control plane at ${r.controlPlane} was not told (${r.deregisterError})`,
      `  ${id} is still registered there and peers may keep being sent to this VM.`,
      '  One manual step remains; on the control plane host (or with --server pointing at its API) run:',
      `    jibe workload deregister ${r.workload.name} -n ${r.workload.namespace}`,
      '  Until then `jibe analyze` reports the workload\'s heartbeat as stale.',
      '',
    ].join('\n'),
  };
}

export interface AgentStatusReport {
  joined: boolean;
  identity?: string;
  workload?: string;
  address?: string;
  controlPlane?: string;
  /** `control plane` (its vm registry) or `consul <address>: <instance IDs>`. */
  registry?: string;
  /** With Consul: the instances' health as Consul's checks judge it. */
  consulHealth?: string;
  certificate?: { expiresAt: string; expired: boolean };
  capture?: { enabled: boolean; state: CaptureState | 'unknown (needs root)' };
  agent: { running: boolean; pid?: number };
  runtime?: AgentRuntimeStatus;
}

export async function agentStatus(dir: string, options: { captureExec?: CommandRunner } = {}): Promise<AgentStatusReport> {
  const state = readAgentState(dir);
  const pid = runningAgentPid(dir);
  if (!state) return { joined: false, agent: { running: pid !== undefined, pid } };
  const cert = readCertificate(dir, state.identity.spiffeId);
  let capture: AgentStatusReport['capture'] = { enabled: state.capture.enabled, state: 'absent' };
  if (state.capture.enabled) {
    capture = process.getuid?.() === 0
      ? { enabled: true, state: (await captureStatus(state.capture.options ?? {}, { exec: options.captureExec })).state }
      : { enabled: true, state: 'unknown (needs root)' };
  }
  const consulHealth = state.registry?.kind === 'consul'
    ? await import('./agent-registry-consul.ts').then((m) => m.consulInstanceHealth(state.registry!))
    : undefined;
  return {
    joined: true,
    ...(consulHealth === undefined ? {} : { consulHealth }),
    identity: state.identity.spiffeId,
    workload: `${state.identity.namespace}/${state.registration.name}`,
    address: state.registration.address,
    controlPlane: state.controlPlane.address,
    registry: state.registry?.kind === 'consul'
      ? `consul ${state.registry.address}: ${(state.registry.instances ?? []).map((i) => `${i.id} (workload ${i.workload})`).join(', ') || 'not registered yet'}`
      : 'control plane (vm registry)',
    ...(cert ? { certificate: { expiresAt: cert.expiresAt.toISOString(), expired: cert.expiresAt.getTime() <= Date.now() } } : {}),
    capture,
    agent: { running: pid !== undefined, pid },
    runtime: readRuntimeStatus(dir),
  };
}

/** The report as `jibe agent status` prints it. */
export function formatAgentStatus(r: AgentStatusReport): string {
  if (!r.joined) return 'not joined (no agent state here)\n';
  const rt = r.runtime;
  const lines: Array<[string, string]> = [
    ['identity', r.identity ?? ''],
    ['workload', `${r.workload} at ${r.address}`],
    ['control plane', r.controlPlane ?? ''],
    ['registry', r.registry ?? 'control plane (vm registry)'],
    ['certificate', r.certificate ? `${r.certificate.expired ? 'EXPIRED' : 'valid'} until ${r.certificate.expiresAt}` : 'none'],
    ['capture', r.capture?.enabled ? String(r.capture.state) : 'off'],
    ['agent', r.agent.running ? `running (pid ${r.agent.pid})` : 'not running'],
    ['proxy', rt?.sidecar && r.agent.running ? `${rt.sidecar.state}${rt.sidecar.pid ? ` (pid ${rt.sidecar.pid})` : ''}, ${rt.sidecar.restarts} restart(s)` : r.agent.running ? 'off' : 'not running'],
    ['health', r.consulHealth ?? (rt ? `${rt.health}${rt.healthReason ? ` (${rt.healthReason})` : ''}` : 'unknown')],
    ['last registration', rt?.lastRegistration ?? 'never'],
    ['last report', rt?.lastReport ? `${rt.lastReport.at} ${rt.lastReport.ok ? 'ok' : `failed: ${rt.lastReport.error}`}` : 'never'],
  ];
  return lines.map(([k, v]) => `${(k + ':').padEnd(19)}${v}`).join('\n') + '\n';
}
