// What every config build needs besides the snapshot and the node: the rules in
// the order conflicts are decided (oldest first), with their hosts resolved once
// per snapshot, and the clusters the routes ask for, collected as they are compiled.
import type { MeshSnapshot } from './mesh-snapshot.ts';
import type { DestinationRule, Gateway, VirtualService } from '../model/networking.ts';
import type { ProxyNode } from '../model/proxy-config.ts';
import type { Service } from '../model/service.ts';
import { resolveHost } from '../model/service.ts';
import { compareByAge, compareStrings, hostMatchesPattern, hostSpecificity, isExportedTo, namespaceOf } from './mesh-match.ts';

/** The `gateways` name that binds a VirtualService to sidecars. */
export const MESH_GATEWAY = 'mesh';

export interface IndexedVirtualService {
  vs: VirtualService;
  namespace: string;
  /** `spec.hosts` resolved relative to the VirtualService's namespace (wildcards kept). */
  hosts: string[];
  /** `spec.gateways` as `ns/name` keys or `mesh`; `['mesh']` when absent, as Istio. */
  gateways: string[];
}

export interface IndexedDestinationRule {
  dr: DestinationRule;
  namespace: string;
  host: string;
}

/** Per-snapshot indexes, independent of the node; computed once and shared by every proxy's build. */
export interface SnapshotIndex {
  /** Oldest first. */
  virtualServices: IndexedVirtualService[];
  /** By namespace, oldest first within each. */
  destinationRules: Map<string, IndexedDestinationRule[]>;
  /** Sorted by namespace/name. */
  gateways: Gateway[];
  /** Sorted by host name. */
  services: Service[];
}

const indexCache = new WeakMap<MeshSnapshot, SnapshotIndex>();

export function snapshotIndex(snapshot: MeshSnapshot): SnapshotIndex {
  let index = indexCache.get(snapshot);
  if (!index) {
    index = buildIndex(snapshot);
    indexCache.set(snapshot, index);
  }
  return index;
}

/**
 * `next` has the rules and services of `previous` (only workloads changed):
 * it uses the same index, which depends on nothing else.
 */
export function inheritSnapshotIndex(previous: MeshSnapshot, next: MeshSnapshot): void {
  const index = indexCache.get(previous);
  if (index) indexCache.set(next, index);
}

function buildIndex(snapshot: MeshSnapshot): SnapshotIndex {
  const { domain } = snapshot.settings;
  const virtualServices = [...snapshot.virtualServices].sort(compareByAge).map((vs): IndexedVirtualService => {
    const namespace = namespaceOf(vs);
    return {
      vs,
      namespace,
      hosts: (vs.spec.hosts ?? []).map((h) => resolveHost(h, namespace, domain)),
      gateways: vs.spec.gateways?.length ? vs.spec.gateways.map((g) => resolveGatewayRef(g, namespace)) : [MESH_GATEWAY],
    };
  });
  const destinationRules = new Map<string, IndexedDestinationRule[]>();
  for (const dr of [...snapshot.destinationRules].sort(compareByAge)) {
    const namespace = namespaceOf(dr);
    if (typeof dr.spec?.host !== 'string') continue;
    let list = destinationRules.get(namespace);
    if (!list) destinationRules.set(namespace, (list = []));
    list.push({ dr, namespace, host: resolveHost(dr.spec.host, namespace, domain) });
  }
  const gateways = [...snapshot.gateways].sort((a, b) => compareStrings(gatewayKey(a), gatewayKey(b)));
  const services = [...snapshot.services.values()].sort((a, b) => compareStrings(a.hostname, b.hostname));
  return { virtualServices, destinationRules, gateways, services };
}

export function gatewayKey(gw: Gateway): string {
  return `${namespaceOf(gw)}/${gw.metadata.name}`;
}

/**
 * A `gateways` entry as written in a VirtualService (`mesh`, `name`, `ns/name`, or
 * the legacy `name.ns.svc.<domain>`) → `mesh` or `ns/name`.
 */
export function resolveGatewayRef(ref: string, vsNamespace: string): string {
  if (ref === MESH_GATEWAY || ref.includes('/')) return ref;
  const parts = ref.split('.');
  // Istio reads a dotted name as `name.namespace[.svc.<domain>]`.
  if (parts.length >= 2) return `${parts[1]}/${parts[0]}`;
  return `${vsNamespace}/${ref}`;
}

/** A cluster a route or the service list asked for. */
export interface ClusterRequest {
  name: string;
  host: string;
  port: number;
  subset: string;
}

export interface BuildContext {
  snapshot: MeshSnapshot;
  index: SnapshotIndex;
  node: ProxyNode;
  domain: string;
  /** Outbound clusters to emit, by name. */
  clusters: Map<string, ClusterRequest>;
  /** Destination rule chosen per host (null: none applies). */
  destinationRuleCache: Map<string, IndexedDestinationRule | null>;
}

export function createBuildContext(snapshot: MeshSnapshot, node: ProxyNode): BuildContext {
  return {
    snapshot,
    index: snapshotIndex(snapshot),
    node,
    domain: snapshot.settings.domain,
    clusters: new Map(),
    destinationRuleCache: new Map(),
  };
}

/** The service behind `host` if the node may see it (its `exportTo` admits the node's namespace). */
export function visibleService(ctx: BuildContext, host: string): Service | undefined {
  const service = ctx.snapshot.services.get(host);
  return service && isServiceVisible(service, ctx.node.namespace) ? service : undefined;
}

export function isServiceVisible(service: Service, clientNamespace: string): boolean {
  return isExportedTo(service.exportTo, service.namespace, clientNamespace);
}

/**
 * Which VirtualService routes a host for sidecars: among those bound to `mesh` and
 * exported to the node's namespace, an exact host beats a wildcard, a longer
 * wildcard beats a shorter one, and among equals the oldest wins (as Istio).
 */
export function meshVirtualServiceSelector(ctx: BuildContext): (host: string) => IndexedVirtualService | undefined {
  const exact = new Map<string, IndexedVirtualService>();
  const wildcards: Array<{ pattern: string; ivs: IndexedVirtualService }> = [];
  for (const ivs of ctx.index.virtualServices) {
    if (!ivs.gateways.includes(MESH_GATEWAY)) continue;
    if (!isExportedTo(ivs.vs.spec.exportTo, ivs.namespace, ctx.node.namespace)) continue;
    for (const host of ivs.hosts) {
      if (!exact.has(host)) exact.set(host, ivs);
      if (host.startsWith('*')) wildcards.push({ pattern: host, ivs });
    }
  }
  // Most specific first; the sort is stable, so equals stay oldest first.
  wildcards.sort((a, b) => hostSpecificity(b.pattern) - hostSpecificity(a.pattern));
  return (host) => exact.get(host) ?? wildcards.find((w) => hostMatchesPattern(host, w.pattern))?.ivs;
}
