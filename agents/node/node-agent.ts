// The node agent: joins a VM to the mesh and keeps it there.
//
// join, in an order that installs nothing for a token that is refused:
//   0. the sidecar's process starts loading (as the proxy's user), to be given its arguments in step 4
//   1. the token is parsed and the control plane proven against its pinned root (agent-control-plane.ts)
//   2. a key is made here and the token traded for a certificate (one use of the token)
//   3. state is written (agent-state.ts); capture installed (root), then root is dropped
//   4. the app's health is probed, the workload registered over mTLS with host facts (tlsMode=istio,
//      inbound on the app's ports) — unhealthy until the sidecar serves — and the sidecar started and supervised
//   5. health is checked and reported; a heartbeat re-registers when the control plane forgot the workload
// With `--registry consul` (agent-registry-consul.ts) steps 4-5 publish to the local Consul agent instead:
// Consul's own check on the app's health URL judges health, the heartbeat re-registers what Consul forgot,
// and a stopped agent puts its instances in Consul maintenance.
// A second join with the same state directory resumes from the kept certificate (no second token use).
// While the control plane is unreachable, everything keeps running on the current certificate
// and the proxy's last config; reports and renewal retry.
import dns from 'node:dns/promises';
import fs from 'node:fs';
import { JibeError, isJibeError } from '../../core/errors/errors.ts';
import type { Workload } from '../../core/model/workload.ts';
import { validateRegistration } from '../../core/registry/workload-registrar.ts';
import type { WorkloadRegistration } from '../../core/registry/workload-registrar.ts';
import { decodeJoinToken, JOIN_TOKEN_TYPE, parseHostPort } from '../../platforms/vm/join-token.ts';
import { IdentityManager } from '../../proxy/identity/identity-manager.ts';
import type { WorkloadCertificate } from '../../proxy/identity/identity-manager.ts';
import { parseWorkloadSpiffeId } from '../../core/ca/spiffe-id.ts';
import { applyCapture, removeCapture } from '../capture/capture-apply.ts';
import { DEFAULT_CAPTURE_CONFIG } from '../capture/capture-config.ts';
import type { CommandRunner } from '../capture/capture-exec.ts';
import { callControlPlane, firstContact } from './agent-control-plane.ts';
import type { ControlPlaneTls } from './agent-control-plane.ts';
import { DEFAULT_HEALTH_CHECK, HealthChecker } from './agent-health.ts';
import type { Health, HealthCheckOptions } from './agent-health.ts';
import { collectHostFacts, workloadNameFromHost } from './agent-host-facts.ts';
import type { HostFactsResult } from './agent-host-facts.ts';
import { SidecarSupervisor, sidecarCommand, WarmSidecar } from './agent-sidecar.ts';
import { PROXY_NODE_FLAGS } from '../../proxy/proxy-node-flags.ts';
import {
  chownStateDir, ensureStateDir, readAgentState, readCertificate, runningAgentPid, statePaths, writeAgentState, writeCertificate, writeFileAtomic, writeRuntimeStatus,
} from './agent-state.ts';
import type { AgentRuntimeStatus, AgentState } from './agent-state.ts';
import type { AgentConsulRegistry } from './agent-registry-consul.ts';

export interface JoinOptions {
  /** Needed for a first join; ignored when resuming from the state directory. */
  token?: string;
  stateDir: string;
  /** `name:port[:targetPort]` already parsed; empty = keep the registered ones (resume). */
  services: WorkloadRegistration['services'];
  labels: Record<string, string>;
  name?: string;
  address?: string;
  health?: Partial<HealthCheckOptions> & { url: string };
  heartbeatMs?: number;
  /**
   * Where the workload is published: the control plane's vm registry (default) or the local Consul agent.
   * Unset on a resume keeps the registry the agent joined with.
   */
  registry?: { kind: 'vm' } | { kind: 'consul'; address?: string; tokenFile?: string };
  /** The control plane's discovery TLS port; learnt from the registration answer in the vm registry, else 15012. */
  discoveryTlsPort?: number;
  capture: boolean;
  proxy: boolean;
  proxyUid: number;
  proxyGid: number;
  /** Continue as proxyUid/proxyGid after capture when running as root. */
  dropPrivileges: boolean;
  /** The `jibe` entry point the sidecar is started with. */
  jibeEntry: string;
  log: (message: string) => void;
  /** Tests: run capture commands elsewhere. */
  captureExec?: CommandRunner;
}

const DEFAULT_HEARTBEAT_MS = 10_000;
/**
 * Istio's marker for "this workload's sidecar terminates mesh mTLS" (core/mesh/build-tls.ts reads it with
 * the registration's `proxy` to mark endpoints mtlsReady, so peers' auto mTLS dials them with TLS). Set only
 * when capture and the sidecar both run: without capture nothing would terminate TLS in front of the app.
 */
const TLS_MODE_LABEL = 'security.istio.io/tlsMode';
const DEFAULT_DISCOVERY_TLS_PORT = 15012;
const READY_POLL_MS = 50;
// The sidecar listens where capture redirects to: one source for both.
const { outboundPort: OUTBOUND_PORT, inboundPort: INBOUND_PORT } = DEFAULT_CAPTURE_CONFIG;
const ADMIN_PORT = 15000;

export class NodeAgent {
  readonly state: AgentState;
  private readonly dir: string;
  private readonly identity: IdentityManager;
  private readonly log: (message: string) => void;
  private sidecar: SidecarSupervisor | undefined;
  private checker: HealthChecker | undefined;
  private heartbeat: ReturnType<typeof setInterval> | undefined;
  private health: Health = 'healthy';
  private readonly runtime: AgentRuntimeStatus;
  private reporting: Promise<void> = Promise.resolve();
  /** The sidecar serves this workload's inbound ports (always true without a sidecar). */
  private proxyReady = true;
  /** The sidecar pid readiness is being awaited for. */
  private readinessFor: number | undefined;
  private stopping = false;
  /** Set with `--registry consul`: Consul holds the registration and judges health. */
  private consul: AgentConsulRegistry | undefined;

  private constructor(dir: string, state: AgentState, identity: IdentityManager, log: (m: string) => void) {
    this.dir = dir;
    this.state = state;
    this.identity = identity;
    this.log = log;
    this.runtime = { pid: process.pid, updatedAt: new Date().toISOString(), user: { uid: process.getuid?.() ?? -1, gid: process.getgid?.() ?? -1 }, health: 'healthy' };
  }

  /** Joins (or resumes) and runs until stop(). Throws, with nothing left installed, when joining fails. */
  static async join(options: JoinOptions): Promise<NodeAgent> {
    const dir = options.stateDir;
    const other = runningAgentPid(dir);
    if (other !== undefined) throw new JibeError('JIBE_ERR_AGENT', `an agent already runs with state directory ${dir} (pid ${other})`, { hint: 'use `jibe agent status`, or `jibe agent leave` first' });
    if (options.capture && process.getuid?.() !== 0) {
      throw new JibeError('JIBE_ERR_AGENT', 'installing traffic capture needs root', { hint: 'run `jibe agent join` as root (it drops to the proxy user afterwards), or pass --no-capture' });
    }
    // The sidecar's process starts now and loads while the join goes on (agent-sidecar-launcher.ts); it runs as
    // the proxy's user from the start, which capture exempts, whether or not the agent drops root itself.
    const warm = options.proxy
      ? new WarmSidecar({ entry: options.jibeEntry, nodeArgs: [...PROXY_NODE_FLAGS], ...(process.getuid?.() === 0 ? { uid: options.proxyUid, gid: options.proxyGid } : {}) })
      : undefined;
    try {
      return await NodeAgent.joinWith(options, warm);
    } catch (err) {
      warm?.discard();
      throw err;
    }
  }

  private static async joinWith(options: JoinOptions, warm: WarmSidecar | undefined): Promise<NodeAgent> {
    const dir = options.stateDir;
    const kept = readAgentState(dir);
    // Host facts are read while the control plane is contacted; both come before the token is spent.
    const hostFacts = collectHostFacts();
    const checkAddress = (host: HostFactsResult) => {
      if (!options.address && !kept?.registration.address && !host.primaryAddress) {
        throw new JibeError('JIBE_ERR_AGENT', 'this host has no external IPv4 address to register', { hint: 'pass --address with the address peers reach this VM at' });
      }
      return host;
    };
    if (kept && options.registry && (kept.registry?.kind ?? 'vm') !== options.registry.kind) {
      throw new JibeError('JIBE_ERR_AGENT', `this VM joined with --registry ${kept.registry?.kind ?? 'vm'}; it cannot switch to ${options.registry.kind} in place`, { hint: 'run `jibe agent leave` first (it deregisters from the old registry), then join again' });
    }
    const keptCert = kept ? readCertificate(dir, kept.identity.spiffeId) : undefined;
    const resumable = kept && keptCert && keptCert.expiresAt.getTime() > Date.now();

    let state: AgentState;
    let identity: IdentityManager;
    if (resumable) {
      options.log(`resuming as ${kept.identity.spiffeId} from ${dir} (certificate valid until ${keptCert.expiresAt.toISOString()}; the token is not used again)`);
      const host = checkAddress(await hostFacts);
      state = withHostFacts(mergeOptions(kept, options), host);
      writeAgentState(dir, state);
      identity = identityManager(state, keptCert, undefined, dir, options.log);
      await identity.start();
    } else {
      if (!options.token) {
        throw new JibeError('JIBE_ERR_AGENT', kept ? `the certificate kept in ${dir} has expired` : `${dir} holds no joined agent`, { hint: 'pass --token with a join token from `jibe vm token create`' });
      }
      const token = decodeJoinToken(options.token);
      const who = parseWorkloadSpiffeId(token.identity);
      if (!who) throw new JibeError('JIBE_ERR_JOIN_TOKEN', `the join token names ${token.identity}, not a workload identity`);
      // Nothing is written before the control plane is proven and the certificate issued.
      const [contact, host] = await Promise.all([firstContact(token), hostFacts.then(checkAddress)]);
      const controlPlane = { address: contact.address, addresses: token.addresses, spiffeId: token.controlPlane, rootSha256: token.rootSha256, trustDomain: contact.trustDomain };
      const draft = draftState(kept, controlPlane, { spiffeId: token.identity, namespace: who.namespace, serviceAccount: who.serviceAccount }, options);
      identity = identityManager(draft, undefined, { token: options.token, roots: contact.roots }, dir, options.log);
      const cert = await identity.start().catch((err: Error & { code?: string }) => {
        throw err.code === 'JIBE_ERR_JOIN_TOKEN' || err.code === 'JIBE_ERR_UNAUTHENTICATED'
          ? new JibeError('JIBE_ERR_JOIN_TOKEN', err.message.replace(/ \(JIBE_ERR_[A-Z_]+\)$/, ''), { hint: 'create a new token with `jibe vm token create`; nothing was installed' })
          : err;
      });
      state = withHostFacts({ ...draft, registration: { ...draft.registration, labels: { ...(cert.labels ?? {}), ...draft.registration.labels } } }, host);
      ensureStateDir(dir);
      writeCertificate(dir, cert);
      writeAgentState(dir, state);
      options.log(`joined as ${state.identity.spiffeId}; certificate valid until ${cert.expiresAt.toISOString()}`);
    }
    if (options.discoveryTlsPort !== undefined) state.controlPlane.discoveryTlsPort = options.discoveryTlsPort;
    const problems = validateRegistration(state.registration);
    if (state.registry?.kind === 'consul' && state.proxy.enabled && state.registration.services.length > 1) {
      problems.push(new JibeError('JIBE_ERR_WORKLOAD_INVALID', 'with --registry consul and the sidecar, a VM serves one --service: each is its own Consul instance, and one sidecar fronts one instance', { field: 'service', hint: 'register one service per VM, or join with --no-proxy' }));
    }
    if (problems.length) {
      identity.stop();
      throw new JibeError('JIBE_ERR_WORKLOAD_INVALID', 'the workload registration is invalid', { causes: problems });
    }

    const agent = new NodeAgent(dir, state, identity, options.log);
    if (state.registry?.kind === 'consul') {
      try {
        const { AgentConsulRegistry } = await import('./agent-registry-consul.ts');
        agent.consul = new AgentConsulRegistry(state.registry, options.log);
      } catch (err) {
        identity.stop();
        throw err;
      }
    }
    await agent.run(options, warm);
    return agent;
  }

  private async run(options: JoinOptions, warm: WarmSidecar | undefined): Promise<void> {
    const dir = this.dir;
    writeFileAtomic(statePaths(dir).pid, `${process.pid}\n`, 0o644);
    let installedNow = false;
    try {
      if (this.state.capture.enabled) {
        const cp = parseHostPort(this.state.controlPlane.address)!;
        const address = (await dns.lookup(cp.host)).address;
        const capture = { ...this.state.capture.options, controlPlane: { address } };
        const result = await applyCapture(capture, { exec: options.captureExec });
        installedNow = result.changed;
        this.state.capture.options = capture;
        writeAgentState(dir, this.state);
        this.log(result.changed ? 'traffic capture installed' : 'traffic capture already in place');
      }
      if (options.dropPrivileges && process.getuid?.() === 0 && process.setuid && process.setgid) {
        chownStateDir(dir, this.state.proxy.uid, this.state.proxy.gid);
        process.setgroups?.([]);
        process.setgid(this.state.proxy.gid);
        process.setuid(this.state.proxy.uid);
        this.log(`continuing as uid ${this.state.proxy.uid}, gid ${this.state.proxy.gid} (the proxy's user, which capture exempts)`);
        this.runtime.user = { uid: this.state.proxy.uid, gid: this.state.proxy.gid };
      }
      // The app's health first (one probe), so the registration carries it.
      // With Consul, Consul's own check on the same URL judges health; probing here too would only disagree.
      if (this.state.healthCheck && !this.consul) {
        this.checker = new HealthChecker(this.state.healthCheck, 'healthy', (health, reason) => {
          this.log(`workload is ${health} (${reason})`);
          this.health = health;
          this.runtime.healthReason = reason;
          void this.report();
        });
        this.health = await this.checker.initial();
        this.runtime.healthReason = this.checker.reason;
        this.checker.start();
      }
      // Registered before the sidecar starts: the answer names the discovery port, and the sidecar's first
      // config then already holds the inbound listeners of this workload. Until the sidecar serves them the
      // workload is reported unhealthy, so no peer is sent to a capture port nobody answers on.
      this.proxyReady = !this.state.proxy.enabled;
      if (this.consul) {
        await this.registerInConsul().catch((err: Error) => {
          // A resumed agent knows its instances (and so its sidecar's workload): it keeps serving and the
          // heartbeat registers once Consul answers. A first join cannot name its workload without Consul.
          if (this.state.registry?.instances?.length && isJibeError(err) && err.code === 'JIBE_ERR_CONSUL') this.log(`Consul registration deferred: ${err.message}`);
          else throw err;
        });
      } else {
        await this.register().catch((err: Error) => {
          // Unreachable: keep going, the heartbeat registers later. Refused: the join fails.
          if (isJibeError(err) && err.code === 'JIBE_ERR_CONTROL_PLANE_UNREACHABLE') this.log(`registration deferred: ${err.message}`);
          else throw err;
        });
      }
      if (this.state.proxy.enabled) this.startSidecar(options.jibeEntry, warm);
      this.heartbeat = setInterval(() => void this.report(), this.state.heartbeatMs);
      this.saveRuntime();
    } catch (err) {
      await this.shutdown(false);
      // A join that failed must not leave a healthy-looking instance in Consul with no agent behind it.
      if (this.consul && this.state.registry?.instances?.length) {
        const { deregisterFromConsul } = await import('./agent-registry-consul.ts');
        await deregisterFromConsul(this.state.registry, this.log);
      }
      if (installedNow) await removeCapture({ exec: options.captureExec }).catch(() => undefined);
      fs.rmSync(statePaths(dir).pid, { force: true });
      throw err;
    }
  }

  /** Starts the supervised sidecar; a (re)started sidecar counts as ready once it serves this workload's inbound ports. */
  private startSidecar(jibeEntry: string, warm: WarmSidecar | undefined): void {
    const cp = parseHostPort(this.state.controlPlane.address)!;
    const command = sidecarCommand(jibeEntry, {
      namespace: this.state.identity.namespace,
      // In Consul the workload is the instance Consul names (`<id>.<node>.<datacenter>`); one per sidecar.
      workload: this.consul ? this.state.registry!.instances![0].workload : this.state.registration.name,
      platform: this.consul ? 'consul' : 'vm',
      discovery: `${cp.host.includes(':') ? `[${cp.host}]` : cp.host}:${this.state.controlPlane.discoveryTlsPort ?? DEFAULT_DISCOVERY_TLS_PORT}`,
      certDir: statePaths(this.dir).certDir,
      controlPlane: this.state.controlPlane.spiffeId,
      outboundPort: this.state.proxy.outboundPort,
      inboundCapturePort: this.state.capture.enabled ? this.state.proxy.inboundPort : undefined,
      adminPort: this.state.proxy.adminPort,
    });
    const inbound = Object.keys(this.state.registration.proxy?.inboundPorts ?? {}).map((p) => `inbound|${p}`);
    const ids = process.getuid?.() === 0 ? { uid: this.state.proxy.uid, gid: this.state.proxy.gid } : {};
    this.sidecar = new SidecarSupervisor(command, ids, statePaths(this.dir).proxyLog, (status) => {
      this.runtime.sidecar = status;
      this.saveRuntime();
      if (status.state === 'running' && status.pid !== undefined && status.pid !== this.readinessFor) {
        this.readinessFor = status.pid;
        void this.awaitSidecarReady(status.pid, inbound);
      } else if (status.state === 'restarting' && this.proxyReady) {
        this.proxyReady = false;
        this.log('the sidecar exited; reporting the workload unhealthy until it serves again');
        void this.report();
      }
    });
    this.sidecar.start(warm);
  }

  /** Polls the sidecar's admin port until it applied a config holding every inbound listener of this workload. */
  private async awaitSidecarReady(pid: number, inbound: string[]): Promise<void> {
    const url = `http://127.0.0.1:${this.state.proxy.adminPort}/config_dump`;
    while (!this.stopping && this.sidecar?.status.pid === pid) {
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
        const dump = (await res.json()) as { resources?: Array<{ type: string; name: string }> };
        const names = new Set((dump.resources ?? []).filter((r) => r.type === 'listener').map((r) => r.name));
        // A config version of "" is the empty one a proxy starts with; ready needs a pushed config.
        if (res.ok && (dump as { version?: string }).version && inbound.every((n) => names.has(n))) break;
      } catch {
        // Not listening yet.
      }
      await new Promise((r) => setTimeout(r, READY_POLL_MS));
    }
    if (this.stopping || this.sidecar?.status.pid !== pid) return;
    this.proxyReady = true;
    this.log(`sidecar ready (pid ${pid})${inbound.length ? `: serving ${inbound.join(', ')}` : ''}`);
    await this.report();
  }

  /** What the control plane is told: the app's health, and unhealthy while the sidecar cannot serve it. */
  private effectiveHealth(): Health {
    return this.proxyReady ? this.health : 'unhealthy';
  }

  private tls(): ControlPlaneTls {
    const cert = this.identity.current!;
    return { roots: cert.trustBundle, controlPlane: this.state.controlPlane.spiffeId, client: { keyPem: cert.keyPem, certChainPem: cert.certChainPem } };
  }

  async register(): Promise<Workload> {
    const health = this.effectiveHealth();
    const body = { ...this.state.registration, health };
    const answer = await callControlPlane<{ workload: Workload; discovery?: { tls?: number } }>(this.state.controlPlane.address, 'PUT', '/api/v1/vm/workloads', body, this.tls());
    const tlsPort = answer.discovery?.tls;
    if (tlsPort !== undefined && tlsPort !== this.state.controlPlane.discoveryTlsPort) {
      // Kept, so a sidecar restarted while the control plane is away still finds discovery.
      this.state.controlPlane.discoveryTlsPort = tlsPort;
      writeAgentState(this.dir, this.state);
    }
    this.runtime.lastRegistration = new Date().toISOString();
    this.runtime.health = health;
    this.saveRuntime();
    this.log(`registered ${answer.workload.namespace}/${answer.workload.name} at ${answer.workload.address} (${health}${this.proxyReady ? '' : ' until the sidecar serves'})`);
    return answer.workload;
  }

  /** Publishes the workload's services (and sidecar) in Consul, with Consul's check on the app's health URL. */
  async registerInConsul(): Promise<void> {
    const instances = await this.consul!.register(this.state);
    this.state.registry = { ...this.state.registry!, instances };
    writeAgentState(this.dir, this.state);
    this.runtime.lastRegistration = new Date().toISOString();
    this.saveRuntime();
    this.log(`registered in Consul at ${this.state.registry.address}: ${instances.map((i) => `${i.id} (mesh workload ${i.workload})`).join(', ')}`);
  }

  /** The heartbeat with Consul: health is Consul's; only a registration Consul lost (wiped agent) needs the agent. */
  private consulHeartbeat(): Promise<void> {
    this.reporting = this.reporting.then(async () => {
      const at = new Date().toISOString();
      try {
        const instances = this.state.registry?.instances ?? [];
        if (!instances.length || !(await this.consul!.present(instances))) {
          this.log('Consul does not hold this workload\'s instances (agent restarted without its data?); registering again');
          await this.registerInConsul();
        }
        this.runtime.lastReport = { at, ok: true };
      } catch (err) {
        this.runtime.lastReport = { at, ok: false, error: (err as Error).message };
      }
      this.saveRuntime();
    });
    return this.reporting;
  }

  /** Reports health (also the heartbeat); re-registers when the control plane no longer knows the workload. */
  report(): Promise<void> {
    if (this.consul) return this.consulHeartbeat();
    this.reporting = this.reporting.then(async () => {
      const { namespace, name } = { namespace: this.state.identity.namespace, name: this.state.registration.name };
      const at = new Date().toISOString();
      try {
        const health = this.effectiveHealth();
        await callControlPlane(this.state.controlPlane.address, 'POST', `/api/v1/vm/workloads/${namespace}/${name}/health`, { health }, this.tls());
        this.runtime.health = health;
        this.runtime.lastReport = { at, ok: true };
      } catch (err) {
        if (isJibeError(err) && err.code === 'JIBE_ERR_NOT_FOUND') {
          this.log('the control plane does not know this workload (restarted without its state?); registering again');
          await this.register().then(
            () => (this.runtime.lastReport = { at, ok: true }),
            (e: Error) => (this.runtime.lastReport = { at, ok: false, error: e.message }),
          );
        } else {
          this.runtime.lastReport = { at, ok: false, error: (err as Error).message };
        }
      }
      this.saveRuntime();
    });
    return this.reporting;
  }

  /** Stops the agent (systemd stop): tells the control plane this VM stops serving, stops the proxy; capture and registration stay. */
  async stop(): Promise<void> {
    await this.shutdown(true);
    fs.rmSync(statePaths(this.dir).pid, { force: true });
  }

  private async shutdown(reportDown: boolean): Promise<void> {
    this.stopping = true;
    if (this.heartbeat !== undefined) clearInterval(this.heartbeat);
    this.checker?.stop();
    this.identity.stop();
    await this.reporting.catch(() => undefined);
    if (reportDown && this.consul) {
      await this.consul.maintenance(this.state.registry?.instances ?? []).catch((err: Error) => this.log(`could not put the Consul instances in maintenance: ${err.message}`));
    } else if (reportDown && this.identity.current) {
      this.health = 'unhealthy';
      await this.report().catch(() => undefined);
    }
    await this.sidecar?.stop();
  }

  private saveRuntime(): void {
    this.runtime.updatedAt = new Date().toISOString();
    this.runtime.certExpiresAt = this.identity.current?.expiresAt.toISOString();
    try {
      writeRuntimeStatus(this.dir, this.runtime);
    } catch (err) {
      this.log(`cannot write status: ${(err as Error).message}`);
    }
  }
}

function identityManager(state: AgentState, initial: WorkloadCertificate | undefined, join: { token: string; roots: string[] } | undefined, dir: string, log: (m: string) => void): IdentityManager {
  let manager: IdentityManager | undefined = undefined;
  manager = new IdentityManager({
    apiBase: () => `https://${state.controlPlane.address}`,
    spiffeId: state.identity.spiffeId,
    initial,
    // The join token buys the first certificate; every later one is bought with the certificate in force.
    credential: async () => (manager?.current ? { type: 'workload-certificate', token: '' } : { type: JOIN_TOKEN_TYPE, token: join?.token ?? '' }),
    tls: { roots: () => manager?.current?.trustBundle ?? join?.roots ?? [], serverSpiffeId: state.controlPlane.spiffeId, clientCertificate: true },
    onRotate: (cert) => {
      writeCertificate(dir, cert);
      log(`certificate renewed; valid until ${cert.expiresAt.toISOString()}`);
    },
    onError: (err) => log(`certificate renewal failed (retrying; the current one serves until ${manager?.current?.expiresAt.toISOString()}): ${err.message}`),
  });
  return manager;
}

function draftState(kept: AgentState | undefined, controlPlane: AgentState['controlPlane'], identity: AgentState['identity'], options: JoinOptions): AgentState {
  const base: AgentState = {
    version: 1,
    controlPlane,
    identity,
    registration: { name: '', address: '', services: [] },
    capture: { enabled: options.capture },
    proxy: { enabled: options.proxy, uid: options.proxyUid, gid: options.proxyGid, outboundPort: OUTBOUND_PORT, inboundPort: INBOUND_PORT, adminPort: ADMIN_PORT },
    heartbeatMs: options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS,
    joinedAt: new Date().toISOString(),
  };
  return mergeOptions(kept && kept.identity.spiffeId === identity.spiffeId ? { ...kept, controlPlane, joinedAt: base.joinedAt } : base, options);
}

/** The state with what this command line says (a resumed agent may be given new services or labels). */
export function mergeOptions(state: AgentState, options: JoinOptions): AgentState {
  const services = options.services.length ? options.services : state.registration.services;
  const targetPorts = [...new Set(services.map((s) => s.targetPort ?? s.port))];
  const meshed = options.capture && options.proxy;
  const labels = { ...(state.registration.labels ?? {}), ...options.labels };
  if (meshed) labels[TLS_MODE_LABEL] ??= 'istio';
  else if (labels[TLS_MODE_LABEL] === 'istio') delete labels[TLS_MODE_LABEL];
  return {
    ...state,
    registration: {
      ...state.registration,
      name: options.name ?? (state.registration.name || ''),
      namespace: state.identity.namespace,
      serviceAccount: state.identity.serviceAccount,
      address: options.address ?? state.registration.address,
      labels,
      services,
      // With capture the sidecar answers on the app's own ports (Istio's layout): peers dial the app port,
      // iptables hands the connection to the inbound capture port, and the proxy serves it by its original port.
      proxy: meshed ? { inboundPorts: Object.fromEntries(targetPorts.map((p) => [p, p])) } : undefined,
    },
    capture: {
      enabled: options.capture,
      // Inbound: only the workload's own ports, so SSH and other host services are left alone.
      options: { ...state.capture.options, proxyUid: options.proxyUid, proxyGid: options.proxyGid, includeInboundPorts: targetPorts, inboundPort: INBOUND_PORT, outboundPort: OUTBOUND_PORT },
    },
    proxy: { ...state.proxy, enabled: options.proxy, uid: options.proxyUid, gid: options.proxyGid },
    healthCheck: options.health ? { ...DEFAULT_HEALTH_CHECK, ...options.health } : state.healthCheck,
    heartbeatMs: options.heartbeatMs ?? state.heartbeatMs,
    registry: mergeRegistry(state.registry, options.registry),
  };
}

/** Fills the address, name and host facts from the host itself. */
function withHostFacts(state: AgentState, host: HostFactsResult): AgentState {
  const address = state.registration.address || host.primaryAddress || '';
  return { ...state, registration: { ...state.registration, address, name: state.registration.name || workloadNameFromHost(host.facts.hostname), host: host.facts } };
}

/** The registry the agent publishes to: a resume without --registry keeps it; a new address or token file replaces the old. */
function mergeRegistry(kept: AgentState['registry'], wanted: JoinOptions['registry']): AgentState['registry'] {
  if (wanted === undefined) return kept;
  if (wanted.kind === 'vm') return undefined;
  return {
    kind: 'consul',
    address: wanted.address ?? kept?.address ?? process.env.CONSUL_HTTP_ADDR ?? 'http://127.0.0.1:8500',
    ...(wanted.tokenFile ?? kept?.tokenFile ? { tokenFile: wanted.tokenFile ?? kept?.tokenFile } : {}),
    ...(kept?.instances ? { instances: kept.instances } : {}),
  };
}
