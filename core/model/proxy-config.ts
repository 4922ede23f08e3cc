// The config one proxy runs on, as the control plane computes it and the
// discovery stream carries it. Istio rules are compiled into these plain
// resources in the control plane, so the proxy only matches and forwards.
//
// Resources are keyed by (type, name). Cluster names follow Istio:
// `outbound|<port>|<subset>|<host>` and `inbound|<port>||`.

import type { PolicyProviderConfig } from './policy-adapter.ts';

export type ResourceType = 'listener' | 'route' | 'cluster' | 'endpoints' | 'mesh';

/** A string matcher after compilation (regex is RE2-like syntax, full match as Istio). */
export type StringMatcher = { exact: string } | { prefix: string } | { regex: string };

export interface HeaderMatcher {
  name: string;
  /** Absent `match` means: the header must be present. */
  match?: StringMatcher;
  /** True for `withoutHeaders`: the route matches when this header does NOT match. */
  invert?: boolean;
}

export interface RouteMatch {
  uri?: StringMatcher;
  method?: StringMatcher;
  authority?: StringMatcher;
  scheme?: StringMatcher;
  headers?: HeaderMatcher[];
  queryParams?: Array<{ name: string; match: StringMatcher }>;
  ignoreUriCase?: boolean;
  /** Match only requests that arrived on this listener port. */
  port?: number;
}

export interface HeaderMutation {
  set?: Array<[string, string]>;
  add?: Array<[string, string]>;
  remove?: string[];
}

export interface WeightedCluster {
  cluster: string;
  /** Relative weight; the weights of a route add up to 100. */
  weight: number;
  requestHeaders?: HeaderMutation;
  responseHeaders?: HeaderMutation;
}

export interface RouteAction {
  /** Where to send the request (one or more, weighted). */
  clusters?: WeightedCluster[];
  redirect?: { uri?: string; authority?: string; port?: number; scheme?: string; code: number };
  /** Answer directly without an upstream (used for NR-style answers). */
  directResponse?: { status: number; body?: string };
  /** Replaces the matched prefix (prefix match) or the whole path (other matches). */
  rewrite?: { uri?: string; authority?: string };
  requestHeaders?: HeaderMutation;
  responseHeaders?: HeaderMutation;
  /** Milliseconds; 0 or absent = no timeout. */
  timeoutMs?: number;
  /** Absent: no retries (the control plane fills in Istio's default policy). */
  retry?: RetryPolicy;
  fault?: FaultPolicy;
  /** A copy of each selected request goes here too; its answer is ignored. */
  mirror?: { cluster: string; percentage: number };
  cors?: CorsPolicy;
}

/** Istio's HTTPRetry as Envoy runs it. */
export interface RetryPolicy {
  /** Retries after the first try (Istio `attempts`). */
  attempts: number;
  /** Milliseconds per try; absent = only the route timeout applies. */
  perTryTimeoutMs?: number;
  /**
   * Envoy retry_on conditions: `5xx`, `gateway-error`, `connect-failure`,
   * `refused-stream`, `reset`, `retriable-4xx`, `retriable-status-codes`, and the
   * gRPC ones `cancelled`, `deadline-exceeded`, `internal`, `resource-exhausted`,
   * `unavailable`. Unknown names were refused at apply time.
   */
  retryOn: string[];
  /** HTTP statuses retried under `retriable-status-codes` (numbers in Istio's retryOn). */
  retriableStatusCodes: number[];
  /** Jittered exponential backoff: base and cap in milliseconds (Envoy: 25 and 250). */
  backoffBaseMs: number;
  backoffMaxMs: number;
}

/** Istio's HTTPFaultInjection; percentages are 0–100 with fractions. */
export interface FaultPolicy {
  delay?: { fixedDelayMs: number; percentage: number };
  /** Exactly one of httpStatus / grpcStatus (a gRPC status code number). */
  abort?: { httpStatus?: number; grpcStatus?: number; percentage: number };
}

/** Istio's CorsPolicy. */
export interface CorsPolicy {
  allowOrigins: StringMatcher[];
  allowMethods: string[];
  allowHeaders: string[];
  exposeHeaders: string[];
  maxAgeSeconds?: number;
  allowCredentials?: boolean;
}

export interface Route {
  name: string;
  /** Any of these matches (OR); an empty list matches everything. */
  match: RouteMatch[];
  action: RouteAction;
}

export interface VirtualHost {
  name: string;
  /** Host names and `host:port` forms this virtual host answers for; `*` matches any. */
  domains: string[];
  routes: Route[];
}

export interface RouteConfigResource {
  type: 'route';
  name: string;
  virtualHosts: VirtualHost[];
}

/**
 * `http`: HTTP/1.1 and HTTP/2 (h2c prior knowledge) sniffed per connection;
 * `tcp`: bytes relayed to `tcpRoute`; `auto`: sniffed — HTTP goes to
 * `routeConfig`, anything else to `tcpRoute`.
 */
export type ListenerProtocol = 'http' | 'tcp' | 'auto';

export interface ListenerResource {
  type: 'listener';
  name: string;
  /**
   * inbound: in front of the local app (reached through the inbound capture
   * port 15006 by original destination port, or bound itself in local mode);
   * gateway: an ingress port; outbound: a virtual listener of the sidecar's
   * outbound capture port (15001), picked by the connection's original
   * destination, never bound itself (Envoy's bind_to_port: false).
   */
  direction: 'inbound' | 'gateway' | 'outbound';
  address: string;
  port: number;
  protocol: ListenerProtocol;
  /** Route config that HTTP requests on this listener are routed with. */
  routeConfig?: string;
  /**
   * Where TCP connections go (tcp and auto listeners): one cluster picked by weight per connection.
   * An `auto` listener without it sends what it does not sniff as HTTP to the mesh's outboundTrafficPolicy.
   */
  tcpRoute?: { clusters: WeightedCluster[] };
  /**
   * Outbound virtual listeners: the original destination addresses (IPs or
   * CIDRs) this listener covers on `port`; absent or empty = any address.
   * The most specific match wins, as Envoy's filter chain match.
   */
  destinationAddresses?: string[];
  /** Local rate limits enforced on this (inbound) listener, checked in order. */
  rateLimits?: LocalRateLimit[];
  /** AuthorizationPolicies selecting this (inbound or gateway) listener's workload, compiled per action. */
  authz?: CompiledAuthorization;
  /** RequestAuthentication JWT rules for this listener's workload; a present but invalid token is refused with 401. */
  jwt?: CompiledJwtRule[];
  /** Resolved PeerAuthentication mode for this port (portLevelMtls applied); absent = PERMISSIVE, Istio's default. */
  mtls?: 'STRICT' | 'PERMISSIVE' | 'DISABLE';
  /** Gateway listeners: TLS terminated with the operator's certificate (Gateway `servers[].tls`); absent = plaintext. */
  tls?: ListenerTls;
}

/**
 * Gateway `servers[].tls` SIMPLE / MUTUAL, resolved. Credentials are either
 * PEM text (a `credentialName` the control plane read from its state store)
 * or file paths on the gateway's host (serverCertificate / privateKey /
 * caCertificates); PEM wins when both are given.
 */
export interface ListenerTls {
  mode: 'SIMPLE' | 'MUTUAL';
  certificatePem?: string;
  privateKeyPem?: string;
  /** MUTUAL: roots client certificates must chain to. */
  caCertificatesPem?: string;
  serverCertificate?: string;
  privateKey?: string;
  caCertificates?: string;
  /** MUTUAL: accepted client certificate SANs (Istio's subjectAltNames); empty = any that chains to the CA. */
  subjectAltNames?: string[];
  minProtocolVersion?: 'TLSv1.2' | 'TLSv1.3';
}

/**
 * One AuthorizationPolicy as the proxy evaluates it: Istio's rules unchanged
 * (the proxy compiles them into matchers once per config), tagged with its name.
 */
export interface CompiledAuthzPolicy {
  /** `AuthorizationPolicy/<ns>/<name>`, named in the access record of the request it decided. */
  name: string;
  /** Istio's AuthorizationRule list; empty = matches no request (an ALLOW policy then denies all). */
  rules: Array<{
    from?: Array<{ source: Record<string, string[]> }>;
    to?: Array<{ operation: Record<string, string[]> }>;
    when?: Array<{ key: string; values?: string[]; notValues?: string[] }>;
  }>;
  /** CUSTOM only: the policy adapter that decides requests these rules match. */
  provider?: string;
}

/** Evaluated in Istio's order: CUSTOM, then DENY, then ALLOW (AUDIT only records). */
export interface CompiledAuthorization {
  /** The workload port policies see as `destination.port` and operation `ports`. */
  destinationPort: number;
  custom: CompiledAuthzPolicy[];
  deny: CompiledAuthzPolicy[];
  allow: CompiledAuthzPolicy[];
  audit: CompiledAuthzPolicy[];
}

/** A RequestAuthentication jwtRule with its key source and token locations resolved. */
export interface CompiledJwtRule {
  /** `RequestAuthentication/<ns>/<name>#<index>`, for logs. */
  name: string;
  issuer: string;
  /** Accepted `aud` values; empty = any audience. */
  audiences: string[];
  /** Inline JWKS (JSON text); else `jwksUri` is fetched and cached. */
  jwks?: string;
  /** Absent with no `jwks`: discovered from `<issuer>/.well-known/openid-configuration`. */
  jwksUri?: string;
  /** Where the token is read; Istio's default is `Authorization: Bearer …` and the `access_token` query parameter. */
  fromHeaders: Array<{ name: string; prefix?: string }>;
  fromParams: string[];
  fromCookies?: string[];
  forwardOriginalToken: boolean;
  outputPayloadToHeader?: string;
  outputClaimToHeaders?: Array<{ header: string; claim: string }>;
  /** JWKS fetch timeout, milliseconds. */
  timeoutMs?: number;
}

/** A token bucket from `jibe.dev/v1alpha1` RateLimit, compiled for one inbound listener. */
export interface LocalRateLimit {
  /** `RateLimit/<ns>/<name>#<limit name, else index>`, named in the response and logs. */
  name: string;
  /** Limit only requests matching any of these; absent/empty = every request. */
  match?: RouteMatch[];
  maxTokens: number;
  tokensPerFill: number;
  fillIntervalMs: number;
  /** One bucket per distinct value of this key; absent = one bucket for all. */
  key?: { header: string } | { sourcePrincipal: true } | { sourceIp: true };
}

/** Mesh-wide settings one proxy needs; a single resource named `mesh`. */
export interface MeshResource {
  type: 'mesh';
  name: 'mesh';
  /** What the outbound capture port does with a destination no listener covers (Istio's outboundTrafficPolicy.mode). */
  outboundTrafficPolicy: 'ALLOW_ANY' | 'REGISTRY_ONLY';
  /** MeshConfig `accessLog`: one line per request in this format; absent = each proxy's own flag decides. */
  accessLog?: 'json' | 'text' | 'off';
  /** MeshConfig `tracing`: sampled percentage of new traces (0–100) and the Zipkin collector; absent = the proxy's flags. */
  tracing?: { sampling: number; zipkinAddress?: string };
  /** PEM roots of the mesh CA (two during a root rotation's overlap); proxies trust these besides their certificate's bundle. */
  trustBundle?: string[];
  /** MeshConfig `extensionProviders` this proxy's CUSTOM policies name (only those); absent = none. */
  extensionProviders?: PolicyProviderConfig[];
}

/** RING_HASH: DestinationRule consistentHash (see ClusterResource.consistentHash). */
export type LbPolicy = 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RANDOM' | 'PASSTHROUGH' | 'RING_HASH';

/** What a RING_HASH cluster hashes a request on (exactly one field). */
export interface ConsistentHash {
  httpHeaderName?: string;
  httpCookie?: { name: string; path?: string; ttlMs?: number };
  useSourceIp?: boolean;
  httpQueryParameterName?: string;
  /** Virtual nodes on the ring (Istio's ringHash.minimumRingSize; default 1024). */
  minimumRingSize: number;
}

/** DestinationRule connectionPool, flattened (absent = Envoy's default, effectively unlimited). */
export interface CircuitBreakers {
  /** tcp.maxConnections: per cluster, across its endpoints. */
  maxConnections?: number;
  /** http.http1MaxPendingRequests: requests waiting for a connection. */
  maxPendingRequests?: number;
  /** http.http2MaxRequests: requests in flight on the cluster. */
  maxRequests?: number;
  /** http.maxRetries: retries in flight on the cluster. */
  maxRetries?: number;
  /** http.maxRequestsPerConnection: a connection is closed after this many. */
  maxRequestsPerConnection?: number;
  /** http.idleTimeout: an idle upstream connection is closed after this. */
  idleTimeoutMs?: number;
}

/** DestinationRule outlierDetection. */
export interface OutlierDetection {
  /** Absent = this detector is off (the control plane fills in Istio's default of 5). */
  consecutive5xxErrors?: number;
  /** Absent = this detector is off. */
  consecutiveGatewayErrors?: number;
  intervalMs: number;
  baseEjectionTimeMs: number;
  /** 0–100. */
  maxEjectionPercent: number;
  /** 0–100: below this share of healthy hosts, ejection stops (Istio minHealthPercent). */
  minHealthPercent: number;
}

/** Linkerd's retry budget: retries ≤ retryRatio × requests + minRetriesPerSecond × ttl. */
export interface RetryBudget {
  retryRatio: number;
  minRetriesPerSecond: number;
  /** Window the ratio is computed over, milliseconds (Linkerd: 10 s). */
  ttlMs: number;
}

export interface ClusterResource {
  type: 'cluster';
  name: string;
  /** Service host the cluster stands for ('' for inbound clusters). */
  service: string;
  port: number;
  subset?: string;
  lbPolicy: LbPolicy;
  /**
   * What to speak to upstream endpoints (http2 for `http2`/`grpc`/`grpc-web` ports, tcp for `tcp`/`tls`/unknown).
   * An HTTP request that reaches a `tcp` cluster (sniffed on an `auto` listener of an undeclared port)
   * goes upstream in the protocol the client spoke, as Envoy's use-downstream-protocol.
   */
  protocol: 'http1' | 'http2' | 'tcp';
  connectTimeoutMs?: number;
  maxConnectionsPerEndpoint?: number;
  /** SO_KEEPALIVE on upstream connections (connectionPool.tcp.tcpKeepalive). */
  tcpKeepalive?: { timeMs?: number; intervalMs?: number; probes?: number };
  consistentHash?: ConsistentHash;
  circuitBreakers?: CircuitBreakers;
  outlierDetection?: OutlierDetection;
  retryBudget?: RetryBudget;
  /** How to secure connections to the endpoints; absent = AUTO (Istio's auto mTLS). */
  tls?: UpstreamTls;
  /** Locality-aware balancing (DestinationRule localityLbSetting, compiled for this proxy); absent = every endpoint alike. */
  localityLb?: LocalityLb;
}

/**
 * Envoy's priority levels and locality weights. Endpoints carry a `priority`
 * (0 = most preferred); a level takes a share of the traffic equal to its
 * healthy fraction × overprovisioningFactor (capped at 100%), the rest spills
 * to the next level; ejected endpoints count as unhealthy.
 */
export interface LocalityLb {
  /** Percent; Envoy's default 140 (a level at ≥ 72% health keeps all its traffic). */
  overprovisioningFactor: number;
  /**
   * `distribute`: weight of each endpoint locality (`region/zone/subzone`, `''` for
   * none) within its priority; a locality not listed gets no traffic.
   * Absent = endpoints balanced as one group.
   */
  localityWeights?: Record<string, number>;
}

/**
 * DestinationRule `trafficPolicy.tls`, resolved. AUTO: mesh mTLS to endpoints
 * that run a Jibe proxy (`Endpoint.mtlsReady`), plaintext to the others.
 * ISTIO_MUTUAL: mesh mTLS always. SIMPLE / MUTUAL: TLS (with a client
 * certificate) to a server outside the mesh, with the operator's files.
 */
export interface UpstreamTls {
  mode: 'AUTO' | 'ISTIO_MUTUAL' | 'DISABLE' | 'SIMPLE' | 'MUTUAL';
  /**
   * Mesh mTLS: SPIFFE IDs the service's workloads run as (secure naming: a
   * server presenting any other identity is refused). SIMPLE/MUTUAL: names
   * the server certificate must carry (DestinationRule subjectAltNames).
   */
  subjectAltNames?: string[];
  sni?: string;
  /** SIMPLE / MUTUAL: file paths on the proxy's host, as Istio's DestinationRule. */
  caCertificates?: string;
  clientCertificate?: string;
  privateKey?: string;
  insecureSkipVerify?: boolean;
}

export interface Endpoint {
  address: string;
  port: number;
  healthy: boolean;
  weight?: number;
  /** Workload name and namespace, for logs and status. */
  workload?: string;
  namespace?: string;
  identity?: string;
  /** The endpoint runs a Jibe proxy that accepts mesh mTLS (auto mTLS dials it with TLS). */
  mtlsReady?: boolean;
  platform?: string;
  locality?: string;
  labels?: Record<string, string>;
  /** Priority level under the cluster's localityLb (0 = most preferred; absent = 0). */
  priority?: number;
}

export interface EndpointsResource {
  type: 'endpoints';
  /** Equal to the cluster name it belongs to. */
  name: string;
  endpoints: Endpoint[];
}

export type ProxyResource = ListenerResource | RouteConfigResource | ClusterResource | EndpointsResource | MeshResource;

/** Route config used by a sidecar's outbound listener (its port comes from the proxy's bootstrap). */
export const OUTBOUND_ROUTE_CONFIG = 'outbound';

/** Who a proxy is, sent on the first request of its discovery stream. */
export interface ProxyNode {
  /** Unique per proxy instance, e.g. `sidecar~reviews-v1.default`. */
  id: string;
  type: 'sidecar' | 'gateway';
  namespace: string;
  /** Workload this sidecar fronts (sidecars only). */
  workload?: string;
  /** Platform of that workload (default `vm`). */
  platform?: string;
  /** Labels of the proxy itself; gateways are selected by them (`istio: ingressgateway`). */
  labels: Record<string, string>;
  /** Proxy software version, for proxy-status. */
  version?: string;
}

/** One push as the proxy receives it: apply all of it, or none of it. */
export interface ConfigUpdate {
  version: string;
  nonce: string;
  /** True when the update replaces everything the proxy had (first push, resync). */
  full: boolean;
  upserts: ProxyResource[];
  removes: Array<{ type: ResourceType; name: string }>;
}

export function outboundClusterName(host: string, port: number, subset = ''): string {
  return `outbound|${port}|${subset}|${host}`;
}

export function inboundClusterName(port: number): string {
  return `inbound|${port}||`;
}
