// Merges every platform's services and workloads into one view. The same host
// name from several platforms is ONE service whose endpoints are the union:
// that is what "one mesh across platforms" means.
import type { PlatformName, Service, ServicePort } from '../model/service.ts';
import type { Workload } from '../model/workload.ts';
import type { PlatformRegistry, RegistryEvent } from './platform-registry.ts';

interface PlatformView {
  services: Map<string, Service>;
  workloads: Map<string, Workload>;
}

/** A host whose platforms disagree (reported by `jibe analyze`, never resolved silently). */
export interface ServiceConflict {
  hostname: string;
  port: number;
  message: string;
}

export class RegistryAggregator {
  private readonly views = new Map<PlatformName, PlatformView>();
  private readonly registries: PlatformRegistry[] = [];
  private readonly listeners = new Set<() => void>();
  private merged: { services: Map<string, Service>; workloads: Workload[]; conflicts: ServiceConflict[] } | undefined;

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
    this.merged = undefined;
    for (const l of this.listeners) l();
  }

  onChange(listener: () => void): () => void {
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
    const conflicts: ServiceConflict[] = [];
    // Sorted platform order keeps the merge deterministic whatever order platforms synced in.
    for (const platform of [...this.views.keys()].sort()) {
      const view = this.views.get(platform)!;
      for (const service of view.services.values()) {
        const existing = services.get(service.hostname);
        services.set(service.hostname, existing ? mergeService(existing, service, conflicts) : { ...service, ports: [...service.ports], platforms: [...service.platforms] });
      }
      workloads.push(...view.workloads.values());
    }
    this.merged = { services, workloads, conflicts };
    return this.merged;
  }
}

function mergeService(into: Service, other: Service, conflicts: ServiceConflict[]): Service {
  const ports: ServicePort[] = [...into.ports];
  for (const port of other.ports) {
    const same = ports.find((p) => p.port === port.port);
    if (!same) ports.push(port);
    else if (same.protocol !== port.protocol) {
      conflicts.push({
        hostname: into.hostname,
        port: port.port,
        message: `port ${port.port} is ${same.protocol} on ${into.platforms.join(', ')} but ${port.protocol} on ${other.platforms.join(', ')}`,
      });
    }
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
