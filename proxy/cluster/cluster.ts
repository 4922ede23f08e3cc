// A cluster as the data plane runs it: its config, its connection pool, the
// healthy hosts and the balancer over them. Immutable: an endpoint change
// builds a new Cluster (cheap: hosts come from the same pool, so keep-alive
// connections and in-flight counts carry over); only a change of pool
// settings builds a new pool.
import type { ClusterResource, EndpointsResource } from '../../core/model/proxy-config.ts';
import type { ClusterStats } from '../stats/proxy-stats.ts';
import { EMPTY_LOAD_BALANCER, effectiveWeights } from './load-balancer.ts';
import type { LoadBalancer, LoadBalancerRegistry } from './load-balancer.ts';
import { DEFAULT_POOL_SETTINGS, UpstreamPool, endpointKey, samePoolSettings } from './upstream-pool.ts';
import type { PoolSettings, UpstreamHost } from './upstream-pool.ts';

export interface ClusterDeps {
  loadBalancers: LoadBalancerRegistry;
  statsFor(name: string): ClusterStats;
  random: () => number;
  poolDefaults?: Partial<PoolSettings>;
}

export class Cluster {
  readonly name: string;
  readonly config: ClusterResource;
  /** The endpoints resource this cluster was built from (undefined: none sent yet). */
  readonly endpointsResource: EndpointsResource | undefined;
  readonly pool: UpstreamPool;
  readonly stats: ClusterStats;
  /** Healthy hosts, in config order. */
  readonly hosts: readonly UpstreamHost[];
  readonly lb: LoadBalancer;
  /** Keys of every endpoint in config (healthy or not): their pools are kept. */
  readonly endpointKeys: ReadonlySet<string>;

  constructor(
    config: ClusterResource,
    endpointsResource: EndpointsResource | undefined,
    pool: UpstreamPool,
    hosts: UpstreamHost[],
    lb: LoadBalancer,
    endpointKeys: Set<string>,
  ) {
    this.name = config.name;
    this.config = config;
    this.endpointsResource = endpointsResource;
    this.pool = pool;
    this.stats = pool.stats;
    this.hosts = hosts;
    this.lb = lb;
    this.endpointKeys = endpointKeys;
  }
}

export function poolSettingsOf(config: ClusterResource, defaults?: Partial<PoolSettings>): PoolSettings {
  const base = { ...DEFAULT_POOL_SETTINGS, ...defaults };
  return {
    ...base,
    maxConnectionsPerEndpoint: config.maxConnectionsPerEndpoint ?? base.maxConnectionsPerEndpoint,
    maxFreeConnectionsPerEndpoint: Math.min(base.maxFreeConnectionsPerEndpoint, config.maxConnectionsPerEndpoint ?? Infinity),
    connectTimeoutMs: config.connectTimeoutMs ?? base.connectTimeoutMs,
  };
}

/**
 * Builds the runtime cluster for a validated config, reusing what it can from
 * the previous one. Never closes anything: pools the new state no longer uses
 * are closed by the caller once the new state is in place.
 */
export function buildCluster(
  config: ClusterResource,
  endpointsResource: EndpointsResource | undefined,
  previous: Cluster | undefined,
  deps: ClusterDeps,
): Cluster {
  if (previous !== undefined && previous.config === config && previous.endpointsResource === endpointsResource) return previous;

  const settings = poolSettingsOf(config, deps.poolDefaults);
  const pool =
    previous !== undefined && samePoolSettings(previous.pool.settings, settings)
      ? previous.pool
      : new UpstreamPool(settings, deps.statsFor(config.name));

  const hosts: UpstreamHost[] = [];
  const weights: number[] = [];
  const keys = new Set<string>();
  for (const endpoint of endpointsResource?.endpoints ?? []) {
    keys.add(endpointKey(endpoint.address, endpoint.port));
    if (!endpoint.healthy) continue;
    const weight = endpoint.weight ?? 1;
    if (weight <= 0) continue;
    hosts.push(pool.host(endpoint.address, endpoint.port));
    weights.push(weight);
  }
  const lb =
    hosts.length === 0
      ? EMPTY_LOAD_BALANCER
      : deps.loadBalancers.create(config.lbPolicy, { hosts, weights: effectiveWeights(weights), random: deps.random });
  return new Cluster(config, endpointsResource, pool, hosts, lb, keys);
}
