// Istio's networking API (networking.istio.io/v1) as TypeScript types.
// Field names are Istio's so that users' YAML maps one to one.
import type { Resource } from './resource.ts';

export type StringMatch = { exact: string } | { prefix: string } | { regex: string };

export interface HTTPMatchRequest {
  name?: string;
  uri?: StringMatch;
  scheme?: StringMatch;
  method?: StringMatch;
  authority?: StringMatch;
  headers?: Record<string, StringMatch | Record<string, never>>;
  withoutHeaders?: Record<string, StringMatch | Record<string, never>>;
  queryParams?: Record<string, StringMatch>;
  ignoreUriCase?: boolean;
  port?: number;
  sourceLabels?: Record<string, string>;
  sourceNamespace?: string;
  gateways?: string[];
}

export interface Destination {
  host: string;
  subset?: string;
  port?: { number: number };
}

export interface HeaderOperations {
  set?: Record<string, string>;
  add?: Record<string, string>;
  remove?: string[];
}

export interface Headers {
  request?: HeaderOperations;
  response?: HeaderOperations;
}

export interface HTTPRouteDestination {
  destination: Destination;
  weight?: number;
  headers?: Headers;
}

export interface HTTPRedirect {
  uri?: string;
  authority?: string;
  port?: number;
  scheme?: string;
  redirectCode?: number;
}

export interface HTTPRewrite {
  uri?: string;
  authority?: string;
}

/** Istio's Percent: 0–100, fractions allowed. */
export interface Percent {
  value: number;
}

export interface HTTPRetry {
  /** Retries after the first try; 0 disables retries (Istio's default policy included). */
  attempts: number;
  perTryTimeout?: string;
  /** Comma-separated Envoy conditions (`5xx,connect-failure`) and HTTP status codes (`503`). */
  retryOn?: string;
  /** Retry on another host than the one that failed (Envoy's previous_hosts predicate). */
  retryRemoteLocalities?: boolean;
}

export interface HTTPFaultInjection {
  delay?: { fixedDelay: string; percentage?: Percent };
  /** Exactly one of httpStatus / grpcStatus (a gRPC code name such as `UNAVAILABLE`). */
  abort?: { httpStatus?: number; grpcStatus?: string; percentage?: Percent };
}

/** A copy of the traffic also goes to `destination` (Istio's HTTPMirrorPolicy). */
export interface HTTPMirrorPolicy {
  destination: Destination;
  percentage?: Percent;
}

/** Istio's CorsPolicy. */
export interface CorsPolicy {
  allowOrigins?: StringMatch[];
  allowMethods?: string[];
  allowHeaders?: string[];
  exposeHeaders?: string[];
  /** Duration (`24h`); the preflight answer's Access-Control-Max-Age. */
  maxAge?: string;
  allowCredentials?: boolean;
}

/** Answers the request from the proxy itself (Istio's HTTPDirectResponse). */
export interface HTTPDirectResponse {
  status: number;
  /** `bytes` is base64. */
  body?: { string: string } | { bytes: string };
}

export interface HTTPRoute {
  name?: string;
  match?: HTTPMatchRequest[];
  route?: HTTPRouteDestination[];
  redirect?: HTTPRedirect;
  /** Exclusive with `route` and `redirect`. */
  directResponse?: HTTPDirectResponse;
  rewrite?: HTTPRewrite;
  timeout?: string;
  retries?: HTTPRetry;
  fault?: HTTPFaultInjection;
  /** A single mirror destination (older form of `mirrors`). */
  mirror?: Destination;
  /** Share of requests mirrored to `mirror`; absent = 100. */
  mirrorPercentage?: Percent;
  mirrors?: HTTPMirrorPolicy[];
  corsPolicy?: CorsPolicy;
  headers?: Headers;
}

export interface L4MatchAttributes {
  port?: number;
  destinationSubnets?: string[];
  sourceLabels?: Record<string, string>;
  sourceNamespace?: string;
  gateways?: string[];
}

export interface RouteDestination {
  destination: Destination;
  weight?: number;
}

export interface TCPRoute {
  match?: L4MatchAttributes[];
  route?: RouteDestination[];
}

export interface VirtualServiceSpec {
  hosts: string[];
  gateways?: string[];
  http?: HTTPRoute[];
  tcp?: TCPRoute[];
  exportTo?: string[];
}

export type LoadBalancerSimple = 'UNSPECIFIED' | 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'LEAST_CONN' | 'RANDOM' | 'PASSTHROUGH';

/** Istio's ConsistentHashLB: exactly one hash key. */
export interface ConsistentHashLB {
  httpHeaderName?: string;
  httpCookie?: { name: string; path?: string; ttl?: string };
  useSourceIp?: boolean;
  httpQueryParameterName?: string;
  ringHash?: { minimumRingSize?: number };
  maglev?: { tableSize?: number };
  /** Deprecated in Istio in favour of ringHash.minimumRingSize; still honoured. */
  minimumRingSize?: number;
}

/**
 * Istio's LocalityLoadBalancerSetting. Localities are `region/zone/subzone`
 * (`*` as the last part matches any). `distribute` and `failover` are
 * exclusive; failover (and failoverPriority) only take effect on a cluster
 * with outlier detection, as in Istio, since only ejection moves traffic on.
 */
export interface LocalityLoadBalancerSetting {
  /** Callers in `from` spread their requests over the `to` localities by these percentages (adding up to 100). */
  distribute?: Array<{ from: string; to: Record<string, number> }>;
  /** When the caller's region `from` has no healthy endpoint left, go to region `to` before any other. */
  failover?: Array<{ from: string; to: string }>;
  /**
   * Labels compared between caller and endpoint, most important first: the
   * longer the matching prefix, the higher the endpoint's priority. Besides
   * workload labels: `topology.kubernetes.io/region`, `topology.kubernetes.io/zone`,
   * `topology.istio.io/subzone` (the locality's parts) and `topology.jibe.dev/platform`.
   */
  failoverPriority?: string[];
  /** Absent = enabled (Istio's default). */
  enabled?: boolean;
}

export interface LoadBalancerSettings {
  simple?: LoadBalancerSimple;
  consistentHash?: ConsistentHashLB;
  localityLbSetting?: LocalityLoadBalancerSetting;
}

export interface ConnectionPoolSettings {
  tcp?: {
    maxConnections?: number;
    connectTimeout?: string;
    tcpKeepalive?: { probes?: number; time?: string; interval?: string };
    maxConnectionDuration?: string;
    idleTimeout?: string;
  };
  http?: {
    http1MaxPendingRequests?: number;
    http2MaxRequests?: number;
    maxRequestsPerConnection?: number;
    maxRetries?: number;
    idleTimeout?: string;
    h2UpgradePolicy?: 'DEFAULT' | 'DO_NOT_UPGRADE' | 'UPGRADE';
    useClientProtocol?: boolean;
    maxConcurrentStreams?: number;
  };
}

export interface OutlierDetection {
  /** Deprecated alias of consecutive5xxErrors (Istio v1alpha3). */
  consecutiveErrors?: number;
  consecutiveGatewayErrors?: number;
  consecutive5xxErrors?: number;
  splitExternalLocalOriginErrors?: boolean;
  consecutiveLocalOriginFailures?: number;
  interval?: string;
  baseEjectionTime?: string;
  maxEjectionPercent?: number;
  minHealthPercent?: number;
}

/** The policy fields every level (rule, port, subset, subset port) may set. */
export interface TrafficPolicyFields {
  loadBalancer?: LoadBalancerSettings;
  connectionPool?: ConnectionPoolSettings;
  outlierDetection?: OutlierDetection;
  tls?: Record<string, unknown>;
}

export interface PortTrafficPolicy extends TrafficPolicyFields {
  port: { number: number };
}

export interface TrafficPolicy extends TrafficPolicyFields {
  portLevelSettings?: PortTrafficPolicy[];
}

export interface Subset {
  name: string;
  labels?: Record<string, string>;
  trafficPolicy?: TrafficPolicy;
}

export interface DestinationRuleSpec {
  host: string;
  trafficPolicy?: TrafficPolicy;
  subsets?: Subset[];
  exportTo?: string[];
}

export interface Port {
  number: number;
  protocol?: string;
  name: string;
  targetPort?: number;
}

export interface Server {
  port: Port;
  hosts: string[];
  bind?: string;
  name?: string;
  tls?: Record<string, unknown>;
}

export interface GatewaySpec {
  selector?: Record<string, string>;
  servers: Server[];
}

export interface WorkloadEntrySpec {
  address?: string;
  ports?: Record<string, number>;
  labels?: Record<string, string>;
  network?: string;
  locality?: string;
  weight?: number;
  serviceAccount?: string;
}

export interface ServiceEntrySpec {
  hosts: string[];
  addresses?: string[];
  ports?: Port[];
  location?: 'MESH_EXTERNAL' | 'MESH_INTERNAL';
  resolution?: 'NONE' | 'STATIC' | 'DNS' | 'DNS_ROUND_ROBIN';
  endpoints?: WorkloadEntrySpec[];
  workloadSelector?: { labels: Record<string, string> };
  exportTo?: string[];
}

export type VirtualService = Resource<'VirtualService', VirtualServiceSpec>;
export type DestinationRule = Resource<'DestinationRule', DestinationRuleSpec>;
export type Gateway = Resource<'Gateway', GatewaySpec>;
export type ServiceEntry = Resource<'ServiceEntry', ServiceEntrySpec>;
export type WorkloadEntry = Resource<'WorkloadEntry', WorkloadEntrySpec>;

export type NetworkingResource = VirtualService | DestinationRule | Gateway | ServiceEntry | WorkloadEntry;
