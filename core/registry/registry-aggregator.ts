// Merges every platform's services and workloads into one view. The same host
// name from several platforms is ONE service whose endpoints are the union:
// that is what "one mesh across platforms" means.
import type { PlatformName, Service, ServicePort } from '../model/service.ts';
import type { Workload } from '../model/workload.ts';
import type { PlatformRegistry, RegistryEvent } from './platform-registry.ts';
import { aliasKey } from './service-alias-rules.ts';
import type { AliasRule } from './service-alias-rules.ts';

interface PlatformView {
  services: Map<string, Service>;
  workloads: Map<string, Workload>;
}

/**
 * What one registry change touched, for listeners that rebuild incrementally.
 * `endpoints`: only the health of existing workloads changed (nothing a
 * listener, cluster or route is built from): each pair is a workload as
 * `workloads()` held it before and holds it now. Absent: anything may have
 * changed (services, addresses, labels, aliases, a resync).
 */
export interface RegistryChange {
  endpoints?: ReadonlyArray<{ before: Workload; after: Workload }>;
}

/** A host whose platforms disagree (reported by `jibe analyze`, never resolved silently). */
export interface ServiceConflict {
  hostname: string;
  port: number;
  message: string;
  /** protocol: one port, two protocols; ports: the platforms serve no port in common (absent in older records = protocol). */
  kind?: 'protocol' | 'ports';
  /** Platforms on each side of the disagreement. */
  platforms?: string[];
}

export class RegistryAggregator {
  private readonly views = new Map<PlatformName, PlatformView>();
  private readonly registries: PlatformRegistry[] = [];
  private readonly listeners = new Set<(change: RegistryChange) => void>();
  private merged: { services: Map<string, Service>; workloads: Workload[]; conflicts: ServiceConflict[]; positions: Map<string, number> } | undefined;
  /** ServiceAlias renames by `platform|host`; several per key only when they differ by datacenter. */
  private aliases = new Map<string, AliasRule[]>();
  private aliasSignature = '';

  /** Starts watching a platform; resolves once its first full sync arrived. */
  async add(registry: PlatformRegistry): Promise<void> {
    this.registries.push(registry);
    this.views.set(registry.platform, { services: new Map(), workloads: new Map() });
    await registry.watch((events) => this.apply(registry.platform, events));
  }

  /** Applies events from one platform (also used for config-derived services, platform `config`). */
  apply(platform: PlatformName, events: RegistryEvent[]): void {
    let view = this.views.get(platform);
    if (!view) this.views.set(platform, (view = { services: new Map(), workloads: new Map() }));
    // A burst of health flips (the common change at scale) patches the merged view instead of re-merging every platform.
    const healthOnly = this.merged !== undefined && events.every((e) => e.kind === 'workload' && e.op === 'upsert' && onlyHealthDiffers(view.workloads.get(`${e.workload.namespace}/${e.workload.name}`), e.workload));
    for (const e of events) {
      if (e.kind === 'sync') {
        view.services = new Map(e.services.map((s) => [s.hostname, s]));
        view.workloads = new Map(e.workloads.map((w) => [`${w.namespace}/${w.name}`, w]));
      } else if (e.kind === 'service') {
        if (e.op === 'upsert') view.services.set(e.service.hostname, e.service);
        else view.services.delete(e.hostname);
      } else if (e.op === 'upsert') {
        view.workloads.set(`${e.workload.namespace}/${e.workload.name}`, e.workload);
      } else {
        view.workloads.delete(`${e.namespace}/${e.name}`);
      }
    }
    if (!healthOnly || !this.merged) {
      this.merged = undefined;
      this.notify({});
      return;
    }
    const merged = this.merged;
    // Snapshots hold the previous array: patch a copy.
    const workloads = merged.workloads.slice();
    const pairs: Array<{ before: Workload; after: Workload }> = [];
    for (const e of events) {
      if (e.kind !== 'workload' || e.op !== 'upsert') continue;
      const position = merged.positions.get(`${platform}|${e.workload.namespace}/${e.workload.name}`)!;
      const after = this.aliases.size > 0 ? this.rebind(platform, e.workload) : e.workload;
      pairs.push({ before: workloads[position], after });
      workloads[position] = after;
    }
    this.merged = { ...merged, workloads };
    this.notify({ endpoints: pairs });
  }

  private notify(change: RegistryChange): void {
    for (const l of this.listeners) l(change);
  }

  /**
   * The ServiceAlias renames to apply (compiled by service-alias-rules.ts);
   * listeners hear of it only when the set actually changed.
   */
  setAliases(rules: readonly AliasRule[]): void {
    const signature = JSON.stringify(rules);
    if (signature === this.aliasSignature) return;
    this.aliasSignature = signature;
    this.aliases = new Map();
    for (const rule of rules) {
      const key = aliasKey(rule);
      const list = this.aliases.get(key);
      if (list) list.push(rule);
      else this.aliases.set(key, [rule]);
    }
    this.merged = undefined;
    this.notify({});
  }

  /** Whether `platform` itself (before aliases) has a service named `hostname`. */
  hasPlatformService(platform: PlatformName, hostname: string): boolean {
    return this.views.get(platform)?.services.has(hostname) ?? false;
  }

  /** Calls `listener` after every change, with what it touched when that is known. */
  onChange(listener: (change: RegistryChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  services(): ReadonlyMap<string, Service> {
    return this.merge().services;
  }

  workloads(): readonly Workload[] {
    return this.merge().workloads;
  }

  conflicts(): readonly ServiceConflict[] {
    return this.merge().conflicts;
  }

  /** Counts per platform, for status and metrics. */
  sizes(): Record<string, { services: number; workloads: number }> {
    const out: Record<string, { services: number; workloads: number }> = {};
    for (const [platform, view] of this.views) out[platform] = { services: view.services.size, workloads: view.workloads.size };
    return out;
  }

  async stop(): Promise<void> {
    await Promise.all(this.registries.map((r) => r.stop()));
  }

  private merge() {
    if (this.merged) return this.merged;
    const services = new Map<string, Service>();
    const workloads: Workload[] = [];
    const positions = new Map<string, number>();
    const conflicts: ServiceConflict[] = [];
    const add = (service: Service) => {
      const existing = services.get(service.hostname);
      services.set(service.hostname, existing ? mergeService(existing, service, conflicts) : { ...service, ports: [...service.ports], platforms: [...service.platforms] });
    };
    const aliased = this.aliases.size > 0;
    // Sorted platform order keeps the merge deterministic whatever order platforms synced in.
    for (const platform of [...this.views.keys()].sort()) {
      const view = this.views.get(platform)!;
      for (const service of view.services.values()) {
        const rules = aliased ? this.aliases.get(aliasKey({ platform, from: service.hostname })) : undefined;
        if (!rules) {
          add(service);
          continue;
        }
        // A datacenter-limited alias moves only some instances: the platform's own name keeps the rest.
        if (rules.every((r) => r.datacenter !== undefined)) add(service);
        for (const to of new Set(rules.map((r) => r.to))) {
          const rule = rules.find((r) => r.to === to)!;
          add({ ...service, hostname: to, name: to.split('.')[0], namespace: rule.toNamespace });
        }
      }
      for (const [key, w] of view.workloads) {
        positions.set(`${platform}|${key}`, workloads.length);
        workloads.push(aliased ? this.rebind(platform, w) : w);
      }
    }
    this.merged = { services, workloads, conflicts, positions };
    return this.merged;
  }

  /** The workload with its service bindings renamed by the aliases of its platform (the same object when none applies). */
  private rebind(platform: PlatformName, w: Workload): Workload {
    let bindings: Workload['services'] | undefined;
    for (let i = 0; i < w.services.length; i++) {
      const rules = this.aliases.get(aliasKey({ platform, from: w.services[i].hostname }));
      if (!rules) continue;
      const region = w.locality?.region;
      const rule = rules.find((r) => r.datacenter !== undefined && r.datacenter === region) ?? rules.find((r) => r.datacenter === undefined);
      if (!rule) continue;
      bindings ??= [...w.services];
      bindings[i] = { ...bindings[i], hostname: rule.to };
    }
    return bindings ? { ...w, services: bindings } : w;
  }
}

/** True when `next` is `previous` with another health: nothing but endpoint health changes. */
function onlyHealthDiffers(previous: Workload | undefined, next: Workload): boolean {
  if (previous === undefined || previous === next) return previous !== undefined;
  for (const key of new Set([...Object.keys(previous), ...Object.keys(next)]) as Set<keyof Workload>) {
    if (key === 'health') continue;
    const a = previous[key];
    const b = next[key];
    if (a === b) continue;
    if (typeof a !== 'object' || typeof b !== 'object' || JSON.stringify(a) !== JSON.stringify(b)) return false;
  }
  return true;
}

function mergeService(into: Service, other: Service, conflicts: ServiceConflict[]): Service {
  const ports: ServicePort[] = [...into.ports];
  let shared = false;
  for (const port of other.ports) {
    const same = ports.find((p) => p.port === port.port);
    if (!same) ports.push(port);
    else if (same.protocol !== port.protocol) {
      conflicts.push({
        hostname: into.hostname,
        port: port.port,
        message: `port ${port.port} is ${same.protocol} on ${into.platforms.join(', ')} but ${port.protocol} on ${other.platforms.join(', ')}`,
        kind: 'protocol',
        platforms: [...new Set([...into.platforms, ...other.platforms])],
      });
    } else shared = true;
  }
  // Disjoint port lists: a client of one platform's port never reaches the other platform's instances.
  if (!shared && into.ports.length && other.ports.length && !other.ports.some((p) => into.ports.some((q) => q.port === p.port))) {
    conflicts.push({
      hostname: into.hostname,
      port: other.ports[0].port,
      message: `${into.platforms.join(', ')} serve${into.platforms.length === 1 ? 's' : ''} port ${into.ports.map((p) => p.port).join(', ')} but ${other.platforms.join(', ')} port ${other.ports.map((p) => p.port).join(', ')}: no port in common`,
      kind: 'ports',
      platforms: [...new Set([...into.platforms, ...other.platforms])],
    });
  }
  ports.sort((a, b) => a.port - b.port);
  const merged: Service = {
    ...into,
    ports,
    platforms: [...new Set([...into.platforms, ...other.platforms])],
    location: into.location === 'MESH_INTERNAL' || other.location === 'MESH_INTERNAL' ? 'MESH_INTERNAL' : 'MESH_EXTERNAL',
  };
  // Every platform's virtual IPs reach the one service.
  if (other.addresses?.length) merged.addresses = [...new Set([...(into.addresses ?? []), ...other.addresses])].sort();
  return merged;
}
