// The config one proxy runs on, as the control plane computes it and the
// discovery stream carries it. Istio rules are compiled into these plain
// resources in the control plane, so the proxy only matches and forwards.
//
// Resources are keyed by (type, name). Cluster names follow Istio:
// `outbound|<port>|<subset>|<host>` and `inbound|<port>||`.

export type ResourceType = 'listener' | 'route' | 'cluster' | 'endpoints';

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

export interface ListenerResource {
  type: 'listener';
  name: string;
  /** inbound: in front of the local app; gateway: an ingress port. */
  direction: 'inbound' | 'gateway';
  address: string;
  port: number;
  protocol: 'http';
  /** Route config that requests on this listener are routed with. */
  routeConfig: string;
}

export type LbPolicy = 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RANDOM' | 'PASSTHROUGH';

export interface ClusterResource {
  type: 'cluster';
  name: string;
  /** Service host the cluster stands for ('' for inbound clusters). */
  service: string;
  port: number;
  subset?: string;
  lbPolicy: LbPolicy;
  /** HTTP version to speak to upstream endpoints. */
  protocol: 'http1' | 'http2';
  connectTimeoutMs?: number;
  maxConnectionsPerEndpoint?: number;
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
  platform?: string;
  locality?: string;
  labels?: Record<string, string>;
}

export interface EndpointsResource {
  type: 'endpoints';
  /** Equal to the cluster name it belongs to. */
  name: string;
  endpoints: Endpoint[];
}

export type ProxyResource = ListenerResource | RouteConfigResource | ClusterResource | EndpointsResource;

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
