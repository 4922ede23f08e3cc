// A DestinationRule's traffic policy, resolved for one cluster and compiled
// into the cluster's settings: load balancer (ring hash included), upstream
// protocol, connection pool limits (circuit breakers), keepalive, outlier
// detection. Istio's merge order and defaults are kept exactly, since users
// tune these from Istio's documentation.
import { tryParseDuration } from '../config/duration.ts';
import type { ConnectionPoolSettings, ConsistentHashLB, LoadBalancerSettings, OutlierDetection as IstioOutlierDetection, TrafficPolicy, TrafficPolicyFields } from '../model/networking.ts';
import type { CircuitBreakers, ClusterResource, ConsistentHash, LbPolicy, OutlierDetection } from '../model/proxy-config.ts';
import type { Protocol } from '../model/service.ts';
import { isHttp2Protocol, isHttpProtocol } from '../model/service.ts';

/** Istio's default when no DestinationRule says otherwise. */
export const DEFAULT_LB_POLICY: LbPolicy = 'LEAST_REQUEST';
/** Envoy's ring hash default size, which Istio keeps. */
export const DEFAULT_MINIMUM_RING_SIZE = 1024;

/** Istio's documented outlier detection defaults (Envoy's, except minHealthPercent). */
export const OUTLIER_DEFAULTS = { consecutive5xxErrors: 5, intervalMs: 10_000, baseEjectionTimeMs: 30_000, maxEjectionPercent: 10, minHealthPercent: 0 } as const;

function portLevel(policy: TrafficPolicy | undefined, port: number): TrafficPolicyFields | undefined {
  return policy?.portLevelSettings?.find((p) => p?.port?.number === port);
}

/**
 * The policy that governs (port, subset), as Istio's MergeTrafficPolicy: the
 * rule's top level; replaced whole by its portLevelSettings entry for the port
 * (port settings do not inherit: omitted fields fall back to defaults); then
 * each field the subset sets; then the subset's own port entry, again whole.
 */
export function effectivePolicy(rulePolicy: TrafficPolicy | undefined, subsetPolicy: TrafficPolicy | undefined, port: number): TrafficPolicyFields {
  let merged: TrafficPolicyFields = pick(portLevel(rulePolicy, port) ?? rulePolicy);
  if (subsetPolicy) {
    const fields = pick(subsetPolicy);
    merged = {
      loadBalancer: fields.loadBalancer ?? merged.loadBalancer,
      connectionPool: fields.connectionPool ?? merged.connectionPool,
      outlierDetection: fields.outlierDetection ?? merged.outlierDetection,
      tls: fields.tls ?? merged.tls,
    };
    const subsetPort = portLevel(subsetPolicy, port);
    if (subsetPort) merged = pick(subsetPort);
  }
  return merged;
}

function pick(p: TrafficPolicyFields | undefined): TrafficPolicyFields {
  return { loadBalancer: p?.loadBalancer, connectionPool: p?.connectionPool, outlierDetection: p?.outlierDetection, tls: p?.tls };
}

/**
 * What the proxy speaks to the endpoints (Istio's rules): HTTP/2 for `http2`,
 * `grpc`, `grpc-web` ports and when the pool asks to UPGRADE an HTTP/1 port;
 * HTTP/1.1 for `http`; raw TCP for everything else, unknown included. A port
 * the service does not declare is reached from an HTTP route, so HTTP/1.1.
 */
export function clusterProtocol(portProtocol: Protocol | undefined, pool: ConnectionPoolSettings | undefined): ClusterResource['protocol'] {
  if (portProtocol === undefined) return 'http1';
  if (isHttp2Protocol(portProtocol)) return 'http2';
  if (isHttpProtocol(portProtocol)) return pool?.http?.h2UpgradePolicy === 'UPGRADE' ? 'http2' : 'http1';
  return 'tcp';
}

export function compileLoadBalancer(lb: LoadBalancerSettings | undefined): { lbPolicy: LbPolicy; consistentHash?: ConsistentHash } {
  if (lb?.consistentHash) {
    const consistentHash = compileConsistentHash(lb.consistentHash);
    if (consistentHash) return { lbPolicy: 'RING_HASH', consistentHash };
  }
  switch (lb?.simple) {
    case 'ROUND_ROBIN':
    case 'LEAST_REQUEST':
    case 'RANDOM':
    case 'PASSTHROUGH':
      return { lbPolicy: lb.simple };
    case 'LEAST_CONN':
      // Istio's deprecated name for LEAST_REQUEST.
      return { lbPolicy: 'LEAST_REQUEST' };
    default:
      return { lbPolicy: DEFAULT_LB_POLICY };
  }
}

/** Maglev is served by the same ring (its table size is the ring's size): same keys, same stickiness. */
function compileConsistentHash(h: ConsistentHashLB): ConsistentHash | undefined {
  const size = h.ringHash?.minimumRingSize || h.maglev?.tableSize || h.minimumRingSize || DEFAULT_MINIMUM_RING_SIZE;
  const out: ConsistentHash = { minimumRingSize: size };
  if (typeof h.httpHeaderName === 'string' && h.httpHeaderName) out.httpHeaderName = h.httpHeaderName.toLowerCase();
  else if (h.httpCookie?.name) {
    const cookie: NonNullable<ConsistentHash['httpCookie']> = { name: h.httpCookie.name };
    if (h.httpCookie.path) cookie.path = h.httpCookie.path;
    const ttl = h.httpCookie.ttl !== undefined ? tryParseDuration(h.httpCookie.ttl) : undefined;
    if (ttl !== undefined) cookie.ttlMs = Math.round(ttl);
    out.httpCookie = cookie;
  } else if (h.useSourceIp === true) out.useSourceIp = true;
  else if (typeof h.httpQueryParameterName === 'string' && h.httpQueryParameterName) out.httpQueryParameterName = h.httpQueryParameterName;
  else return undefined;
  return out;
}

function ms(d: string | undefined): number | undefined {
  if (d === undefined) return undefined;
  const v = tryParseDuration(d);
  return v !== undefined && v > 0 ? Math.round(v) : undefined;
}

/** Istio reads 0 as "not set" (proto3), so only positive values become limits. */
function positive(n: number | undefined): number | undefined {
  return typeof n === 'number' && n > 0 ? Math.floor(n) : undefined;
}

/** connectionPool → the cluster's timeout, keepalive and circuit breakers; only what is set. */
export function applyConnectionPool(cluster: ClusterResource, pool: ConnectionPoolSettings | undefined): void {
  if (!pool) return;
  const connectTimeoutMs = ms(pool.tcp?.connectTimeout);
  if (connectTimeoutMs !== undefined) cluster.connectTimeoutMs = connectTimeoutMs;
  const ka = pool.tcp?.tcpKeepalive;
  if (ka) {
    const keepalive: NonNullable<ClusterResource['tcpKeepalive']> = {};
    const timeMs = ms(ka.time);
    if (timeMs !== undefined) keepalive.timeMs = timeMs;
    const intervalMs = ms(ka.interval);
    if (intervalMs !== undefined) keepalive.intervalMs = intervalMs;
    const probes = positive(ka.probes);
    if (probes !== undefined) keepalive.probes = probes;
    // `tcpKeepalive: {}` turns keepalive on with the OS's timings.
    cluster.tcpKeepalive = keepalive;
  }
  const cb: CircuitBreakers = {};
  set(cb, 'maxConnections', positive(pool.tcp?.maxConnections));
  set(cb, 'maxPendingRequests', positive(pool.http?.http1MaxPendingRequests));
  set(cb, 'maxRequests', positive(pool.http?.http2MaxRequests));
  set(cb, 'maxRetries', positive(pool.http?.maxRetries));
  set(cb, 'maxRequestsPerConnection', positive(pool.http?.maxRequestsPerConnection));
  // TCP proxies idle out on tcp.idleTimeout; HTTP pools on http.idleTimeout.
  set(cb, 'idleTimeoutMs', cluster.protocol === 'tcp' ? ms(pool.tcp?.idleTimeout) : ms(pool.http?.idleTimeout));
  if (Object.keys(cb).length) cluster.circuitBreakers = cb;
}

function set<K extends keyof CircuitBreakers>(cb: CircuitBreakers, key: K, value: CircuitBreakers[K]): void {
  if (value !== undefined) cb[key] = value;
}

/**
 * Istio's outlierDetection with its defaults filled in. A consecutive-error
 * detector set to 0 is off; consecutive5xxErrors defaults to 5 (Envoy's
 * default, which Istio leaves on), consecutiveGatewayErrors to off.
 */
export function compileOutlierDetection(od: IstioOutlierDetection | undefined): OutlierDetection | undefined {
  if (!od) return undefined;
  const out: OutlierDetection = {
    intervalMs: ms(od.interval) ?? OUTLIER_DEFAULTS.intervalMs,
    baseEjectionTimeMs: ms(od.baseEjectionTime) ?? OUTLIER_DEFAULTS.baseEjectionTimeMs,
    maxEjectionPercent: typeof od.maxEjectionPercent === 'number' ? od.maxEjectionPercent : OUTLIER_DEFAULTS.maxEjectionPercent,
    minHealthPercent: typeof od.minHealthPercent === 'number' ? od.minHealthPercent : OUTLIER_DEFAULTS.minHealthPercent,
  };
  const fiveXx = od.consecutive5xxErrors ?? od.consecutiveErrors ?? OUTLIER_DEFAULTS.consecutive5xxErrors;
  if (fiveXx > 0) out.consecutive5xxErrors = fiveXx;
  if (typeof od.consecutiveGatewayErrors === 'number' && od.consecutiveGatewayErrors > 0) out.consecutiveGatewayErrors = od.consecutiveGatewayErrors;
  return out;
}
