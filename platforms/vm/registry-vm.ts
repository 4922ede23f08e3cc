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
    this.emit();
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
    this.registrations.set(key, registration);
    this.lastSeen.set(key, Date.now());
    this.emit();
    return this.toWorkload(registration);
  }

  async deregister(namespace: string, name: string): Promise<boolean> {
    const key = `${namespace}/${name}`;
    const existed = await this.state.delete(PREFIX + key);
    const known = this.registrations.delete(key);
    this.lastSeen.delete(key);
    if (known) this.emit();
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
    this.emit();
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

  /** The VM view is small; resending it whole keeps the registry trivially consistent. */
  private emit(): void {
    if (!this.listener) return;
    const workloads = [...this.registrations.values()].map((r) => this.toWorkload(r));
    this.listener([{ kind: 'sync', services: this.deriveServices(), workloads }]);
  }

  /** Services are the union of what the registered workloads declare they serve. */
  private deriveServices(): Service[] {
    const services = new Map<string, Service>();
    for (const r of this.registrations.values()) {
      const namespace = r.namespace ?? 'default';
      for (const s of r.services) {
        const hostname = canonicalHost(s.name, namespace, this.options.domain);
        let service = services.get(hostname);
        if (!service) {
          service = { hostname, name: s.name, namespace, ports: [], platforms: ['vm'], location: 'MESH_INTERNAL', resolution: 'STATIC' };
          services.set(hostname, service);
        }
        if (!service.ports.some((p) => p.port === s.port)) {
          service.ports.push({ name: s.portName ?? `http-${s.port}`, port: s.port, protocol: portProtocol(s) });
          service.ports.sort((a, b) => a.port - b.port);
        }
      }
    }
    return [...services.values()];
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
