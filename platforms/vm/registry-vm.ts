// The `vm` platform: workloads registered through the control plane's API (by
// the node agent, or by `jibe up` for the local mesh). Registrations are kept
// in the StateStore so they survive a control-plane restart.
import { JibeError } from '../../core/errors/errors.ts';
import { canonicalHost } from '../../core/model/service.ts';
import type { Service } from '../../core/model/service.ts';
import { spiffeId } from '../../core/model/workload.ts';
import type { Workload } from '../../core/model/workload.ts';
import type { PlatformRegistry, RegistryEvent } from '../../core/registry/platform-registry.ts';
import { portProtocol, validateRegistration } from '../../core/registry/workload-registrar.ts';
import type { WorkloadRegistrar, WorkloadRegistration } from '../../core/registry/workload-registrar.ts';
import type { StateStore } from '../../core/state/state-store.ts';
import type { ApiExtension, ApiExtensionHost, ApiRoute } from '../../core/api/api-routes.ts';
import { JoinTokenPruner } from './join-token-pruner.ts';
import type { JoinTokenPrunerOptions } from './join-token-pruner.ts';
import { vmApiRoutes } from './vm-api.ts';

const PREFIX = 'vm/workloads/';

export interface VmRegistryOptions {
  domain: string;
  trustDomain: string;
  /** Expired join tokens are removed periodically while the registry runs (default hourly, 24 h after expiry). */
  joinTokenPruning?: JoinTokenPrunerOptions;
}

export class VmRegistry implements PlatformRegistry, WorkloadRegistrar, ApiExtension {
  readonly platform = 'vm' as const;
  private readonly registrations = new Map<string, WorkloadRegistration>();
  /** When each registration last registered or reported health; in memory (a write per heartbeat would be wasteful). */
  private readonly lastSeen = new Map<string, number>();
  /** Registrations loaded at start count as seen then: the agent's next heartbeat is due within its interval. */
  private startedAt = Date.now();
  private listener: ((events: RegistryEvent[]) => void) | undefined;
  /** Which registrations serve each derived service host (insertion order = registration order), so a change re-derives only the hosts it touches. */
  private readonly serviceMembers = new Map<string, Set<string>>();
  /** The derived services as last reported, to send only the ones a change actually altered. */
  private readonly services = new Map<string, Service>();
  private readonly state: StateStore;
  private readonly options: VmRegistryOptions;

  private readonly pruner: JoinTokenPruner;

  constructor(state: StateStore, options: VmRegistryOptions) {
    this.state = state;
    this.options = options;
    this.pruner = new JoinTokenPruner(state, options.joinTokenPruning);
  }

  async watch(listener: (events: RegistryEvent[]) => void): Promise<void> {
    for (const entry of await this.state.list<WorkloadRegistration>(PREFIX)) {
      this.registrations.set(entry.key.slice(PREFIX.length), entry.value);
    }
    this.startedAt = Date.now();
    this.listener = listener;
    this.reindex();
    listener([{ kind: 'sync', services: [...this.services.values()], workloads: [...this.registrations.values()].map((r) => this.toWorkload(r)) }]);
    this.pruner.start();
  }

  async stop(): Promise<void> {
    this.listener = undefined;
    await this.pruner.stop();
  }

  async register(input: WorkloadRegistration): Promise<Workload> {
    const errors = validateRegistration(input);
    if (errors.length) {
      throw new JibeError('JIBE_ERR_WORKLOAD_INVALID', `workload registration ${JSON.stringify(input?.name)} is invalid`, { causes: errors });
    }
    const registration: WorkloadRegistration = { ...input, namespace: input.namespace ?? 'default', health: input.health ?? 'healthy' };
    const key = `${registration.namespace}/${registration.name}`;
    await this.state.put(PREFIX + key, registration);
    const previous = this.registrations.get(key);
    this.registrations.set(key, registration);
    this.lastSeen.set(key, Date.now());
    const workload = this.toWorkload(registration);
    const { upserts, deletes } = this.updateServices(key, previous, registration);
    // Services first: a workload upsert never names a host the view does not have yet.
    this.emit([...upserts, { kind: 'workload', op: 'upsert', workload }, ...deletes]);
    return workload;
  }

  async deregister(namespace: string, name: string): Promise<boolean> {
    const key = `${namespace}/${name}`;
    const existed = await this.state.delete(PREFIX + key);
    const previous = this.registrations.get(key);
    const known = this.registrations.delete(key);
    this.lastSeen.delete(key);
    if (previous) {
      // A service this workload alone gave a port loses that port (upsert) or, with its last workload, goes (delete).
      const { upserts, deletes } = this.updateServices(key, previous, undefined);
      this.emit([{ kind: 'workload', op: 'delete', namespace, name }, ...upserts, ...deletes]);
    }
    return existed || known;
  }

  async setHealth(namespace: string, name: string, health: Workload['health']): Promise<void> {
    const key = `${namespace}/${name}`;
    const registration = this.registrations.get(key);
    if (!registration) throw new JibeError('JIBE_ERR_NOT_FOUND', `no workload ${key} is registered`);
    // Every report is a heartbeat, changed or not.
    this.lastSeen.set(key, Date.now());
    if (registration.health === health) return;
    const updated = { ...registration, health };
    await this.state.put(PREFIX + key, updated);
    this.registrations.set(key, updated);
    // Only health differs: the aggregator patches endpoints instead of rebuilding every proxy's config.
    this.emit([{ kind: 'workload', op: 'upsert', workload: this.toWorkload(updated) }]);
  }

  /** The registration as stored (the VM API checks who owns it). */
  registration(namespace: string, name: string): WorkloadRegistration | undefined {
    return this.registrations.get(`${namespace}/${name}`);
  }

  /** Registrations made by a node agent (they carry host facts), which heartbeats; `jibe up`'s local workloads do not. */
  heartbeats(): Array<{ namespace: string; name: string; lastSeen: number }> {
    const out: Array<{ namespace: string; name: string; lastSeen: number }> = [];
    for (const [key, r] of this.registrations) {
      if (!r.host) continue;
      out.push({ namespace: r.namespace ?? 'default', name: r.name, lastSeen: this.lastSeen.get(key) ?? this.startedAt });
    }
    return out;
  }

  /** Join tokens and registration by VMs over the TLS API port. */
  apiRoutes(host: ApiExtensionHost): ApiRoute[] {
    return vmApiRoutes(this, this.state, host);
  }

  async list(): Promise<Workload[]> {
    return [...this.registrations.values()].map((r) => this.toWorkload(r));
  }

  /** Changes go out as per-object events, so a health flip or one registration stays incremental at 10,000 VMs. */
  private emit(events: RegistryEvent[]): void {
    if (!this.listener || events.length === 0) return;
    this.listener(events);
  }

  /** Rebuilds the service index from all registrations (the first sync). */
  private reindex(): void {
    this.serviceMembers.clear();
    this.services.clear();
    for (const [key, r] of this.registrations) {
      for (const hostname of this.hostsOf(r)) this.members(hostname).add(key);
    }
    for (const hostname of this.serviceMembers.keys()) this.services.set(hostname, this.deriveService(hostname)!);
  }

  /** Moves `key` between the hosts `before` and `after` serve and returns events for the services that changed. */
  private updateServices(key: string, before: WorkloadRegistration | undefined, after: WorkloadRegistration | undefined): { upserts: RegistryEvent[]; deletes: RegistryEvent[] } {
    const oldHosts = before ? this.hostsOf(before) : new Set<string>();
    const newHosts = after ? this.hostsOf(after) : new Set<string>();
    for (const hostname of oldHosts) if (!newHosts.has(hostname)) this.serviceMembers.get(hostname)?.delete(key);
    for (const hostname of newHosts) this.members(hostname).add(key);
    const upserts: RegistryEvent[] = [];
    const deletes: RegistryEvent[] = [];
    for (const hostname of new Set([...oldHosts, ...newHosts])) {
      const service = this.deriveService(hostname);
      const known = this.services.get(hostname);
      if (!service) {
        this.serviceMembers.delete(hostname);
        if (known) {
          this.services.delete(hostname);
          deletes.push({ kind: 'service', op: 'delete', hostname });
        }
      } else if (!known || !sameService(known, service)) {
        this.services.set(hostname, service);
        upserts.push({ kind: 'service', op: 'upsert', service });
      }
    }
    return { upserts, deletes };
  }

  private members(hostname: string): Set<string> {
    let set = this.serviceMembers.get(hostname);
    if (!set) this.serviceMembers.set(hostname, (set = new Set()));
    return set;
  }

  private hostsOf(r: WorkloadRegistration): Set<string> {
    const namespace = r.namespace ?? 'default';
    return new Set(r.services.map((s) => canonicalHost(s.name, namespace, this.options.domain)));
  }

  /** A service is the union of what its registered workloads declare they serve; undefined when none does any more. */
  private deriveService(hostname: string): Service | undefined {
    let service: Service | undefined;
    for (const key of this.serviceMembers.get(hostname) ?? []) {
      const r = this.registrations.get(key);
      if (!r) continue;
      const namespace = r.namespace ?? 'default';
      for (const s of r.services) {
        if (canonicalHost(s.name, namespace, this.options.domain) !== hostname) continue;
        service ??= { hostname, name: s.name, namespace, ports: [], platforms: ['vm'], location: 'MESH_INTERNAL', resolution: 'STATIC' };
        if (!service.ports.some((p) => p.port === s.port)) {
          service.ports.push({ name: s.portName ?? `http-${s.port}`, port: s.port, protocol: portProtocol(s) });
        }
      }
    }
    service?.ports.sort((a, b) => a.port - b.port);
    return service;
  }

  private toWorkload(r: WorkloadRegistration): Workload {
    const namespace = r.namespace ?? 'default';
    const serviceAccount = r.serviceAccount ?? 'default';
    const bindings = new Map<string, Record<number, number>>();
    for (const s of r.services) {
      const hostname = canonicalHost(s.name, namespace, this.options.domain);
      const ports = bindings.get(hostname) ?? {};
      ports[s.port] = s.targetPort ?? s.port;
      bindings.set(hostname, ports);
    }
    return {
      name: r.name,
      namespace,
      platform: 'vm',
      address: r.address,
      labels: { ...(r.labels ?? {}) },
      serviceAccount,
      identity: spiffeId(namespace, serviceAccount, this.options.trustDomain),
      health: r.health ?? 'healthy',
      locality: r.locality,
      services: [...bindings].map(([hostname, ports]) => ({ hostname, ports })),
      proxy: r.proxy,
      ...(r.host ? { host: r.host } : {}),
    };
  }
}

function sameService(a: Service, b: Service): boolean {
  return a.name === b.name && a.namespace === b.namespace && a.ports.length === b.ports.length
    && a.ports.every((p, i) => p.port === b.ports[i].port && p.name === b.ports[i].name && p.protocol === b.ports[i].protocol);
}
