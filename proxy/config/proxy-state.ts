// The proxy's running config: an immutable ProxyState compiled from the full
// resource map. An update is validated as a whole before anything is built;
// a bad push throws and leaves the running state untouched, a good one yields
// a new state the caller swaps in with one assignment. Compiled pieces that
// did not change (route tables, clusters and their connection pools) are
// carried over from the previous state by identity.
import type {
  ClusterResource,
  ConfigUpdate,
  EndpointsResource,
  ListenerResource,
  MeshResource,
  ProxyResource,
  ResourceType,
  RouteConfigResource,
} from '../../core/model/proxy-config.ts';
import { OUTBOUND_ROUTE_CONFIG } from '../../core/model/proxy-config.ts';
import { buildCluster } from '../cluster/cluster.ts';
import type { UpstreamTlsFactory } from '../tls/tls-upstream.ts';
import type { Cluster } from '../cluster/cluster.ts';
import type { LoadBalancerRegistry } from '../cluster/load-balancer.ts';
import type { PoolSettings } from '../cluster/upstream-pool.ts';
import { RouteTable } from '../router/route-table.ts';
import type { ProxyStats } from '../stats/proxy-stats.ts';
import { ConfigProblems, RESOURCE_TYPES, resourceLabel, validateResourceShape } from './resource-validation.ts';

/** Every resource the proxy holds, keyed `type/name`. */
export type ResourceMap = ReadonlyMap<string, ProxyResource>;

export function resourceKey(type: ResourceType, name: string): string {
  return `${type}/${name}`;
}

/** A bound listener as requests see it: its config and the route table it routes with. */
export interface ActiveListener {
  readonly resource: ListenerResource;
  readonly routeTable: RouteTable;
}

/** Mesh-wide settings when the control plane sent none (Istio's defaults). */
export const DEFAULT_MESH: MeshResource = Object.freeze({ type: 'mesh', name: 'mesh', outboundTrafficPolicy: 'ALLOW_ANY' }) as MeshResource;

export class ProxyState {
  readonly version: string;
  readonly resources: ResourceMap;
  /**
   * Bound listeners (inbound, gateway) that route HTTP — protocol `http`, and
   * `auto` ones (served as HTTP until sniffing is in place) — by port; ports are
   * unique across all bound listeners.
   */
  readonly listenersByPort: ReadonlyMap<number, ActiveListener>;
  readonly routeTables: ReadonlyMap<string, RouteTable>;
  readonly clusters: ReadonlyMap<string, Cluster>;
  /** The sidecar outbound listener's routes (`outbound` route config), when sent. */
  readonly outbound: RouteTable | undefined;
  /** Mesh-wide settings (the `mesh` resource), DEFAULT_MESH when none was sent. */
  readonly mesh: MeshResource;
  /**
   * Bound listeners (inbound, gateway) whose protocol is `tcp` or `auto`, by
   * port: they relay connections to `tcpRoute` (an `auto` one only what it
   * does not sniff as HTTP). Sorted by port.
   */
  readonly tcpListeners: readonly ListenerResource[];
  /**
   * The sidecar's outbound virtual listeners (direction `outbound`, never bound):
   * the outbound capture port picks one by original destination (port, then the
   * most specific `destinationAddresses` match; none = any address). Sorted by name.
   */
  readonly outboundListeners: readonly ListenerResource[];
  /**
   * The same object in two states exactly when both hold the same listener and
   * mesh resources, so what is compiled from those alone (the listener index)
   * can be kept across an update that only changed clusters or endpoints.
   */
  readonly listenerGeneration: object;

  constructor(
    version: string,
    resources: ResourceMap,
    listenersByPort: Map<number, ActiveListener>,
    routeTables: Map<string, RouteTable>,
    clusters: Map<string, Cluster>,
    /** The previous state's listener-derived fields, when no listener, route or mesh resource changed. */
    sameListenersAs?: ProxyState,
  ) {
    this.version = version;
    this.resources = resources;
    this.listenersByPort = listenersByPort;
    this.routeTables = routeTables;
    this.clusters = clusters;
    this.outbound = routeTables.get(OUTBOUND_ROUTE_CONFIG);
    if (sameListenersAs !== undefined) {
      this.mesh = sameListenersAs.mesh;
      this.tcpListeners = sameListenersAs.tcpListeners;
      this.outboundListeners = sameListenersAs.outboundListeners;
      this.listenerGeneration = sameListenersAs.listenerGeneration;
      return;
    }
    this.listenerGeneration = {};
    let mesh: MeshResource | undefined;
    const tcp: ListenerResource[] = [];
    const outboundListeners: ListenerResource[] = [];
    for (const r of resources.values()) {
      if (r.type === 'mesh') mesh = r;
      else if (r.type === 'listener' && r.direction === 'outbound') outboundListeners.push(r);
      else if (r.type === 'listener' && r.protocol !== 'http') tcp.push(r);
    }
    this.mesh = mesh ?? DEFAULT_MESH;
    this.tcpListeners = tcp.sort((a, b) => a.port - b.port);
    this.outboundListeners = outboundListeners.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  static empty(): ProxyState {
    return new ProxyState('', new Map(), new Map(), new Map(), new Map());
  }
}

export interface StateContext {
  loadBalancers: LoadBalancerRegistry;
  stats: ProxyStats;
  random: () => number;
  poolDefaults?: Partial<PoolSettings>;
  /** Decides per endpoint whether connections are plaintext, mesh mTLS or TLS (absent: plaintext everywhere). */
  upstreamTls?: UpstreamTlsFactory;
  /** Clock for outlier detection, milliseconds (performance.now when absent). */
  now?: () => number;
  /** Ports the proxy itself holds (outbound, admin), by what holds them; config listeners may not use them. */
  reservedPorts?: ReadonlyMap<number, string>;
}

/**
 * Validates `update` against `current` and builds the state it leads to.
 * @throws JibeError (JIBE_ERR_CONFIG_REJECTED) listing every problem; nothing is changed then.
 */
export function applyUpdate(
  current: ResourceMap,
  update: ConfigUpdate,
  ctx: StateContext,
  previous?: ProxyState,
): { resources: ResourceMap; state: ProxyState } {
  const problems = new ConfigProblems();
  const version = typeof update?.version === 'string' ? update.version : '?';
  if (!checkUpdateEnvelope(update, problems)) throw problems.toError(version);

  const next = new Map<string, ProxyResource>(update.full ? [] : current);
  /** Keys this update touches (delta updates only): what an incremental build must look at. */
  const touched = update.full || previous === undefined || previous.resources !== current ? undefined : new Set<string>();
  if (!update.full) {
    for (const ref of update.removes) {
      const key = resourceKey(ref.type, ref.name);
      next.delete(key);
      touched?.add(key);
    }
  }
  const seen = new Set<string>();
  update.upserts.forEach((r, i) => {
    if (!validateResourceShape(r, i, (p) => ctx.loadBalancers.has(p), problems)) return;
    const key = resourceKey(r.type, r.name);
    if (seen.has(key)) {
      problems.add(resourceLabel(r, i), '', 'the same resource appears twice in one update', 'JIBE_ERR_DUPLICATE');
      return;
    }
    seen.add(key);
    touched?.add(key);
    next.set(key, r);
  });
  if (!problems.empty) throw problems.toError(version);

  // A delta that only upserts clusters and touches endpoints cannot break a reference the running config
  // has already passed: at 10,000 endpoints, checking them all again per health change would make each push O(config).
  if (touched === undefined || !onlyClustersAndEndpoints(touched, update.removes)) {
    checkReferences(next, ctx.reservedPorts, problems);
    if (!problems.empty) throw problems.toError(version);
  }

  return { resources: next, state: buildState(version, next, ctx, previous, touched) };
}

function onlyClustersAndEndpoints(touched: ReadonlySet<string>, removes: ConfigUpdate['removes']): boolean {
  for (const key of touched) if (!key.startsWith('cluster/') && !key.startsWith('endpoints/')) return false;
  for (const ref of removes) if (ref.type !== 'endpoints') return false;
  return true;
}

function checkUpdateEnvelope(update: ConfigUpdate, problems: ConfigProblems): boolean {
  if (update === null || typeof update !== 'object') {
    problems.add('update', '', 'update must be an object');
    return false;
  }
  if (typeof update.version !== 'string') problems.add('update', 'version', 'version must be a string');
  if (typeof update.full !== 'boolean') problems.add('update', 'full', 'full must be a boolean');
  if (!Array.isArray(update.upserts)) problems.add('update', 'upserts', 'upserts must be a list');
  if (!Array.isArray(update.removes)) problems.add('update', 'removes', 'removes must be a list');
  else
    update.removes.forEach((ref, i) => {
      if (ref === null || typeof ref !== 'object' || !RESOURCE_TYPES.includes(ref.type) || typeof ref.name !== 'string') {
        problems.add('update', `removes[${i}]`, `remove must name a type (${RESOURCE_TYPES.join(', ')}) and a name`);
      }
    });
  return problems.empty;
}

/** References between resources: listener → route config and clusters, route → clusters; bound listener ports unique. */
function checkReferences(resources: ResourceMap, reservedPorts: ReadonlyMap<number, string> | undefined, problems: ConfigProblems): void {
  const portOwners = new Map<number, string>();
  for (const r of resources.values()) {
    const label = `${r.type}/${r.name}`;
    if (r.type === 'listener') {
      if (r.routeConfig !== undefined && !resources.has(resourceKey('route', r.routeConfig))) {
        problems.add(label, 'routeConfig', `route config ${r.routeConfig} does not exist`, 'JIBE_ERR_REFERENCE');
      }
      r.tcpRoute?.clusters.forEach((c, k) => {
        if (!resources.has(resourceKey('cluster', c.cluster))) problems.add(label, `tcpRoute.clusters[${k}].cluster`, `tcpRoute refers to unknown cluster ${c.cluster}`, 'JIBE_ERR_REFERENCE');
      });
      // Outbound listeners are virtual: many share a port and none binds it.
      if (r.direction === 'outbound') continue;
      const reserved = reservedPorts?.get(r.port);
      if (reserved !== undefined) problems.add(label, 'port', `port ${r.port} is used by the ${reserved}`, 'JIBE_ERR_DUPLICATE');
      const owner = portOwners.get(r.port);
      if (owner !== undefined) problems.add(label, 'port', `port ${r.port} is also used by listener ${owner}`, 'JIBE_ERR_DUPLICATE');
      else portOwners.set(r.port, r.name);
    } else if (r.type === 'route') {
      r.virtualHosts.forEach((vh, i) =>
        vh.routes.forEach((route, j) =>
          {
            route.action.clusters?.forEach((c, k) => {
              if (!resources.has(resourceKey('cluster', c.cluster))) {
                problems.add(label, `virtualHosts[${i}].routes[${j}].action.clusters[${k}].cluster`, `route ${route.name} refers to unknown cluster ${c.cluster}`, 'JIBE_ERR_REFERENCE');
              }
            });
            const mirror = route.action.mirror?.cluster;
            if (mirror !== undefined && !resources.has(resourceKey('cluster', mirror))) {
              problems.add(label, `virtualHosts[${i}].routes[${j}].action.mirror.cluster`, `route ${route.name} mirrors to unknown cluster ${mirror}`, 'JIBE_ERR_REFERENCE');
            }
          },
        ),
      );
    }
  }
}

/**
 * Builds a state from a validated resource map, reusing unchanged pieces of
 * `previous`. With `touched` (the keys a delta update changed, relative to
 * `previous.resources`) only those are compiled again: a push of one
 * endpoints resource costs one cluster, not every cluster of the config.
 */
export function buildState(version: string, resources: ResourceMap, ctx: StateContext, previous?: ProxyState, touched?: ReadonlySet<string>): ProxyState {
  const clusterDeps = {
    loadBalancers: ctx.loadBalancers,
    statsFor: (name: string) => ctx.stats.cluster(name),
    random: ctx.random,
    poolDefaults: ctx.poolDefaults,
    upstreamTls: ctx.upstreamTls,
    now: ctx.now,
  };
  if (previous !== undefined && touched !== undefined) return buildStateDelta(version, resources, previous, touched, clusterDeps);
  const routeTables = new Map<string, RouteTable>();
  const clusters = new Map<string, Cluster>();
  const listeners: ListenerResource[] = [];
  for (const r of resources.values()) {
    if (r.type === 'route') {
      const old = previous?.routeTables.get(r.name);
      routeTables.set(r.name, old !== undefined && old.resource === r ? old : new RouteTable(r as RouteConfigResource));
    } else if (r.type === 'cluster') {
      const endpoints = resources.get(resourceKey('endpoints', r.name)) as EndpointsResource | undefined;
      clusters.set(r.name, buildCluster(r as ClusterResource, endpoints, previous?.clusters.get(r.name), clusterDeps));
    } else if (r.type === 'listener') {
      listeners.push(r);
    }
  }
  return new ProxyState(version, resources, activeListeners(listeners, routeTables), routeTables, clusters);
}

function buildStateDelta(version: string, resources: ResourceMap, previous: ProxyState, touched: ReadonlySet<string>, clusterDeps: Parameters<typeof buildCluster>[3]): ProxyState {
  const routeTables = new Map(previous.routeTables);
  const clusters = new Map(previous.clusters);
  let listenersChanged = false;
  for (const key of touched) {
    const slash = key.indexOf('/');
    const type = key.slice(0, slash);
    const name = key.slice(slash + 1);
    if (type === 'cluster' || type === 'endpoints') {
      const config = resources.get(resourceKey('cluster', name)) as ClusterResource | undefined;
      if (config === undefined) clusters.delete(name);
      else clusters.set(name, buildCluster(config, resources.get(resourceKey('endpoints', name)) as EndpointsResource | undefined, previous.clusters.get(name), clusterDeps));
    } else if (type === 'route') {
      listenersChanged = true;
      const config = resources.get(key) as RouteConfigResource | undefined;
      if (config === undefined) routeTables.delete(name);
      else {
        const old = previous.routeTables.get(name);
        routeTables.set(name, old !== undefined && old.resource === config ? old : new RouteTable(config));
      }
    } else {
      listenersChanged = true;
    }
  }
  if (!listenersChanged) return new ProxyState(version, resources, new Map(previous.listenersByPort), routeTables, clusters, previous);
  const listeners: ListenerResource[] = [];
  for (const r of resources.values()) if (r.type === 'listener') listeners.push(r);
  return new ProxyState(version, resources, activeListeners(listeners, routeTables), routeTables, clusters);
}

/** Bound listeners that route HTTP; TCP relaying reads ProxyState.tcpListeners, capture ProxyState.outboundListeners. */
function activeListeners(listeners: readonly ListenerResource[], routeTables: ReadonlyMap<string, RouteTable>): Map<number, ActiveListener> {
  const listenersByPort = new Map<number, ActiveListener>();
  for (const l of listeners) if (l.direction !== 'outbound' && l.routeConfig !== undefined) listenersByPort.set(l.port, { resource: l, routeTable: routeTables.get(l.routeConfig)! });
  return listenersByPort;
}

/**
 * After `next` replaced `previous`: closes pools of clusters that are gone or
 * were rebuilt with new pool settings, and the pools of endpoints that left.
 * In-flight requests on them finish; idle connections close now.
 */
export function releaseUnused(previous: ProxyState, next: ProxyState, stats: ProxyStats): void {
  for (const [name, old] of previous.clusters) {
    const now = next.clusters.get(name);
    if (now === undefined) {
      old.pool.close();
      stats.clusters.delete(name);
    } else if (now.pool !== old.pool) {
      old.pool.close();
    } else if (now !== old) {
      now.pool.prune(now.endpointKeys);
    }
  }
}
