// A cluster as the data plane runs it: its config, its connection pool, the
// healthy hosts and the balancer over them, its circuit breakers and outlier
// detector. An endpoint change builds a new Cluster (cheap: hosts come from
// the same pool, so keep-alive connections and in-flight counts carry over,
// and the outlier detector is handed on so ejections survive); only a change
// of pool settings builds a new pool. The one mutable part is the balancer,
// rebuilt over the hosts in service when outlier detection ejects or
// re-admits one.
import type { ClusterResource, EndpointsResource, RetryBudget as RetryBudgetConfig } from '../../core/model/proxy-config.ts';
import type { Exchange } from '../http/exchange.ts';
import type { ClusterStats } from '../stats/proxy-stats.ts';
import { CircuitBreaker } from './circuit-breaker.ts';
import { OutlierDetector } from './outlier-detector.ts';
import { RetryBudget } from '../resilience/retry-budget.ts';
import { EMPTY_LOAD_BALANCER, effectiveWeights } from './load-balancer.ts';
import { createLocalityBalancer } from './load-balancer-locality.ts';
import type { LoadBalancer, LoadBalancerRegistry } from './load-balancer.ts';
import { DEFAULT_POOL_SETTINGS, UpstreamPool, endpointKey, samePoolSettings } from './upstream-pool.ts';
import type { PoolSettings, UpstreamHost } from './upstream-pool.ts';
import type { UpstreamTlsFactory } from '../tls/tls-upstream.ts';

export interface ClusterDeps {
  loadBalancers: LoadBalancerRegistry;
  statsFor(name: string): ClusterStats;
  random: () => number;
  poolDefaults?: Partial<PoolSettings>;
  /** Clock for outlier ejection times, milliseconds (performance.now by default). */
  now?: () => number;
  /** Plaintext, mesh mTLS or TLS per endpoint (absent: plaintext). */
  upstreamTls?: UpstreamTlsFactory;
}

const defaultNow = (): number => performance.now();

/** Per-host priority and locality (parallel to `hosts`) and the configured endpoint counts, for localityLb clusters. */
export interface HostLocality {
  priorities: readonly number[];
  localities: readonly string[];
  totals: ReadonlyMap<string, number>;
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
  /** Balancer over the hosts in service (all healthy hosts unless outlier detection ejected some). */
  lb: LoadBalancer;
  /** Keys of every endpoint in config (healthy or not): their pools are kept. */
  readonly endpointKeys: ReadonlySet<string>;
  readonly circuitBreaker: CircuitBreaker | undefined;
  readonly outlier: OutlierDetector | undefined;
  /** Linkerd-style retry budget for retries to this cluster (kept across rebuilds while its config is unchanged). */
  readonly retryBudget: RetryBudget | undefined;
  private readonly weights: readonly number[];
  private readonly locality: HostLocality | undefined;
  private readonly loadBalancers: LoadBalancerRegistry;
  /** The proxy's random source (seeded in tests): balancers, retry backoff jitter, mirror sampling. */
  readonly random: () => number;
  /** The outlier generation `lb` was built for. */
  private lbGeneration = -1;

  constructor(
    config: ClusterResource,
    endpointsResource: EndpointsResource | undefined,
    pool: UpstreamPool,
    hosts: UpstreamHost[],
    weights: number[],
    endpointKeys: Set<string>,
    deps: { loadBalancers: LoadBalancerRegistry; random: () => number; outlier?: OutlierDetector; retryBudget?: RetryBudget; locality?: HostLocality },
  ) {
    this.name = config.name;
    this.config = config;
    this.endpointsResource = endpointsResource;
    this.pool = pool;
    this.stats = pool.stats;
    this.hosts = hosts;
    this.weights = weights;
    this.locality = config.localityLb !== undefined ? deps.locality : undefined;
    this.endpointKeys = endpointKeys;
    this.loadBalancers = deps.loadBalancers;
    this.random = deps.random;
    this.circuitBreaker = config.circuitBreakers !== undefined ? new CircuitBreaker(config.circuitBreakers, pool.stats, config.protocol === 'http2') : undefined;
    this.outlier = deps.outlier;
    this.retryBudget = deps.retryBudget;
    this.lb = this.buildBalancer();
  }

  /**
   * The host for the next request; undefined when none is in service. Without
   * outlier detection this is the balancer's pick and nothing else.
   */
  pick(ex?: Exchange): UpstreamHost | undefined {
    const od = this.outlier;
    if (od !== undefined) {
      if (od.dueAt <= od.now()) od.sweep();
      if (od.generation !== this.lbGeneration) this.lb = this.buildBalancer();
    }
    return this.lb.pick(ex);
  }

  private buildBalancer(): LoadBalancer {
    const od = this.outlier;
    let hosts: UpstreamHost[] = this.hosts as UpstreamHost[];
    let weights: readonly number[] = this.weights;
    let kept: number[] | undefined;
    if (od !== undefined) {
      this.lbGeneration = od.generation;
      if (od.ejectedCount > 0 && od.enforcing) {
        hosts = [];
        kept = [];
        const w: number[] = [];
        for (let i = 0; i < this.hosts.length; i++) {
          if (od.isEjected(this.hosts[i].key)) continue;
          hosts.push(this.hosts[i]);
          w.push(this.weights[i]);
          kept.push(i);
        }
        weights = w;
      }
    }
    if (hosts.length === 0) return EMPTY_LOAD_BALANCER;
    if (this.locality !== undefined) return this.buildLocalityBalancer(hosts, weights, kept, this.locality);
    return this.loadBalancers.create(this.config.lbPolicy, {
      hosts,
      weights: effectiveWeights(weights),
      random: this.random,
      consistentHash: this.config.consistentHash,
      hostOf: (address, port) => this.pool.host(address, port),
    });
  }

  /** Ejected hosts count as unhealthy in their level's and locality's health, so traffic spills on as in Envoy. */
  private buildLocalityBalancer(hosts: UpstreamHost[], weights: readonly number[], kept: number[] | undefined, meta: HostLocality): LoadBalancer {
    const lb = createLocalityBalancer({
      config: this.config.localityLb!,
      hosts,
      weights,
      priorities: kept ? kept.map((i) => meta.priorities[i]) : meta.priorities,
      localities: kept ? kept.map((i) => meta.localities[i]) : meta.localities,
      totals: meta.totals,
      random: this.random,
      create: (groupHosts, groupWeights) =>
        this.loadBalancers.create(this.config.lbPolicy, {
          hosts: groupHosts,
          weights: effectiveWeights(groupWeights),
          random: this.random,
          consistentHash: this.config.consistentHash,
          hostOf: (address, port) => this.pool.host(address, port),
        }),
    });
    return lb ?? EMPTY_LOAD_BALANCER;
  }
}

export function poolSettingsOf(config: ClusterResource, defaults?: Partial<PoolSettings>): PoolSettings {
  const base = { ...DEFAULT_POOL_SETTINGS, ...defaults };
  const cb = config.circuitBreakers;
  // One endpoint can never hold more than the whole cluster may.
  const perEndpoint = Math.min(config.maxConnectionsPerEndpoint ?? base.maxConnectionsPerEndpoint, cb?.maxConnections ?? Infinity);
  return {
    ...base,
    maxConnectionsPerEndpoint: perEndpoint,
    maxFreeConnectionsPerEndpoint: Math.min(base.maxFreeConnectionsPerEndpoint, perEndpoint),
    connectTimeoutMs: config.connectTimeoutMs ?? base.connectTimeoutMs,
    idleTimeoutMs: cb?.idleTimeoutMs ?? base.idleTimeoutMs,
    maxRequestsPerConnection: cb?.maxRequestsPerConnection ?? base.maxRequestsPerConnection,
    clusterMaxConnections: cb?.maxConnections ?? base.clusterMaxConnections,
    keepAliveMs: config.tcpKeepalive !== undefined ? (config.tcpKeepalive.timeMs ?? DEFAULT_KEEPALIVE_MS) : base.keepAliveMs,
  };
}

// Linux's default tcp_keepalive_time, used when tcpKeepalive is set without a time.
const DEFAULT_KEEPALIVE_MS = 7_200_000;

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
    previous !== undefined && samePoolSettings(previous.pool.settings, settings) && sameTls(previous.config.tls, config.tls)
      ? previous.pool
      : new UpstreamPool(settings, deps.statsFor(config.name));

  const hosts: UpstreamHost[] = [];
  const weights: number[] = [];
  const keys = new Set<string>();
  const locality = config.localityLb !== undefined ? { priorities: [] as number[], localities: [] as string[], totals: new Map<string, number>() } : undefined;
  for (const endpoint of endpointsResource?.endpoints ?? []) {
    keys.add(endpointKey(endpoint.address, endpoint.port));
    const weight = endpoint.weight ?? 1;
    if (locality !== undefined && weight > 0) countEndpoint(locality.totals, endpoint.priority ?? 0, endpoint.locality ?? '');
    if (!endpoint.healthy) continue;
    if (weight <= 0) continue;
    if (locality !== undefined) {
      locality.priorities.push(endpoint.priority ?? 0);
      locality.localities.push(endpoint.locality ?? '');
    }
    hosts.push(pool.host(endpoint.address, endpoint.port, deps.upstreamTls?.dialFor(config, endpoint)));
    weights.push(weight);
  }
  let outlier: OutlierDetector | undefined;
  if (config.outlierDetection !== undefined) {
    outlier = previous?.outlier ?? new OutlierDetector(config.outlierDetection, deps.now ?? defaultNow, pool.stats);
    outlier.config = config.outlierDetection;
    outlier.setHosts(hosts.map((h) => h.key));
  }
  const rb = config.retryBudget;
  const previousBudget = previous?.retryBudget;
  const retryBudget =
    rb === undefined
      ? undefined
      : previousBudget !== undefined && sameBudget(previousBudget.config, rb)
        ? previousBudget
        : new RetryBudget(rb, deps.now ?? defaultNow);
  return new Cluster(config, endpointsResource, pool, hosts, weights, keys, { loadBalancers: deps.loadBalancers, random: deps.random, outlier, retryBudget, locality });
}

function countEndpoint(totals: Map<string, number>, priority: number, locality: string): void {
  const level = String(priority);
  totals.set(level, (totals.get(level) ?? 0) + 1);
  const key = `${level}|${locality}`;
  totals.set(key, (totals.get(key) ?? 0) + 1);
}

/** A changed tls policy (mode, names, files) means new pools: connections made under the old one must not be reused. */
function sameTls(a: ClusterResource['tls'], b: ClusterResource['tls']): boolean {
  return a === b || JSON.stringify(a) === JSON.stringify(b);
}

function sameBudget(a: RetryBudgetConfig, b: RetryBudgetConfig): boolean {
  return a.retryRatio === b.retryRatio && a.minRetriesPerSecond === b.minRetriesPerSecond && a.ttlMs === b.ttlMs;
}
