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

export interface HTTPRetry {
  attempts: number;
  perTryTimeout?: string;
  retryOn?: string;
}

export interface HTTPFaultInjection {
  delay?: { fixedDelay: string; percentage?: { value: number } };
  abort?: { httpStatus?: number; grpcStatus?: string; percentage?: { value: number } };
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
  headers?: Headers;
}

export interface TCPRoute {
  match?: Array<{ port?: number; destinationSubnets?: string[]; sourceLabels?: Record<string, string>; gateways?: string[] }>;
  route?: Array<{ destination: Destination; weight?: number }>;
}

export interface VirtualServiceSpec {
  hosts: string[];
  gateways?: string[];
  http?: HTTPRoute[];
  tcp?: TCPRoute[];
  exportTo?: string[];
}

export type LoadBalancerSimple = 'UNSPECIFIED' | 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'LEAST_CONN' | 'RANDOM' | 'PASSTHROUGH';

export interface TrafficPolicy {
  loadBalancer?: { simple?: LoadBalancerSimple; consistentHash?: Record<string, unknown> };
  connectionPool?: Record<string, unknown>;
  outlierDetection?: Record<string, unknown>;
  tls?: Record<string, unknown>;
  portLevelSettings?: Array<{ port: { number: number } } & Omit<TrafficPolicy, 'portLevelSettings'>>;
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
