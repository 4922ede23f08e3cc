// A service in the mesh: one canonical host name, whatever platforms it comes from.

export type Protocol = 'http' | 'http2' | 'grpc' | 'grpc-web' | 'tcp' | 'tls' | 'https' | 'unknown';

export type PlatformName = 'kubernetes' | 'consul' | 'vm' | 'config';

export interface ServicePort {
  /** Port name, e.g. `http`, `grpc-web`, `tcp-db`. */
  name: string;
  /** The port clients dial on the service host. */
  port: number;
  protocol: Protocol;
}

export interface Service {
  /** Canonical host name: `<name>.<namespace>.svc.<domain>` for mesh services, the literal host for ServiceEntries. */
  hostname: string;
  name: string;
  namespace: string;
  ports: ServicePort[];
  /** Platforms that contributed this service (a host seen on several is one service). */
  platforms: PlatformName[];
  /** MESH_INTERNAL services are reachable by short aliases inside their namespace. */
  location: 'MESH_INTERNAL' | 'MESH_EXTERNAL';
  /** How endpoints are found: from the registry (STATIC) or by DNS at connect time. */
  resolution: 'STATIC' | 'DNS' | 'NONE';
  labels?: Record<string, string>;
  /**
   * Namespaces that may see this service (Istio `exportTo`: `*` all, `.` its own,
   * or names). Absent = all. Set from a ServiceEntry's `spec.exportTo` (or a
   * platform's equivalent annotation).
   */
  exportTo?: string[];
  /**
   * Virtual IPs (or CIDRs) clients dial for this service: a ServiceEntry's
   * `addresses`, a platform's cluster IP. Sidecars route connections to them
   * (by original destination) to this service. Absent = none known.
   */
  addresses?: string[];
}

export const DEFAULT_DOMAIN = 'cluster.local';

const PROTOCOL_PREFIXES: Array<[string, Protocol]> = [
  ['http2', 'http2'],
  ['https', 'https'],
  ['http', 'http'],
  ['grpc-web', 'grpc-web'],
  ['grpc', 'grpc'],
  ['h2c', 'http2'],
  ['tcp', 'tcp'],
  ['tls', 'tls'],
  ['mongo', 'tcp'],
  ['mysql', 'tcp'],
  ['redis', 'tcp'],
];

/**
 * Istio's protocol selection: `appProtocol` wins, else the port name's prefix
 * before the first `-` (`http-web`, `grpc`), else unknown (treated as TCP, sniffed inbound).
 */
export function protocolFromPort(name: string | undefined, appProtocol?: string): Protocol {
  for (const candidate of [appProtocol, name?.split('-')[0]]) {
    if (!candidate) continue;
    const lower = candidate.toLowerCase();
    for (const [prefix, protocol] of PROTOCOL_PREFIXES) if (lower === prefix) return protocol;
    if (lower === 'kubernetes.io/h2c') return 'http2';
  }
  return 'unknown';
}

export function isHttpProtocol(p: Protocol): boolean {
  return p === 'http' || p === 'http2' || p === 'grpc' || p === 'grpc-web';
}

/** Istio's IsHTTP2: these ports speak HTTP/2 to the upstream (gRPC-Web included, as Istio). */
export function isHttp2Protocol(p: Protocol): boolean {
  return p === 'http2' || p === 'grpc' || p === 'grpc-web';
}

/** `reviews`, `default` → `reviews.default.svc.cluster.local`. */
export function canonicalHost(name: string, namespace: string, domain = DEFAULT_DOMAIN): string {
  return `${name}.${namespace}.svc.${domain}`;
}

/**
 * Resolves a host as written in a rule (`reviews`, `reviews.default`, the full name,
 * or an external host) to the canonical host name, relative to the rule's namespace.
 */
export function resolveHost(host: string, namespace: string, domain = DEFAULT_DOMAIN): string {
  if (host.includes('*')) return host;
  const parts = host.split('.');
  if (parts.length === 1) return canonicalHost(host, namespace, domain);
  if (parts.length === 2) return canonicalHost(parts[0], parts[1], domain);
  if (parts.length === 3 && parts[2] === 'svc') return `${host}.${domain}`;
  return host;
}

/** The names a client inside `clientNamespace` may use for a mesh-internal service. */
export function hostAliases(service: Pick<Service, 'hostname' | 'name' | 'namespace' | 'location'>, clientNamespace: string, domain = DEFAULT_DOMAIN): string[] {
  if (service.location !== 'MESH_INTERNAL' || service.hostname !== canonicalHost(service.name, service.namespace, domain)) {
    return [service.hostname];
  }
  const aliases = [service.hostname, `${service.name}.${service.namespace}.svc`, `${service.name}.${service.namespace}`];
  if (service.namespace === clientNamespace) aliases.push(service.name);
  return aliases;
}
