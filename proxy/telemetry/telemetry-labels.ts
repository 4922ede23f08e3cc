// Istio's standard metric labels and how the proxy fills them: `source_*` and
// `destination_*` identities come from this proxy's node (its own side) and
// from the endpoint's metadata or the peer's metadata header (the other side).
// Label values are bounded by the mesh's workloads and services: no paths, no
// ids, so a series count never grows with traffic.
import type { Endpoint, ProxyNode } from '../../core/model/proxy-config.ts';

/** Every label of Istio's HTTP/gRPC request metrics, in the order they are rendered. */
export const ISTIO_LABELS = [
  'reporter',
  'source_workload',
  'source_workload_namespace',
  'source_principal',
  'source_app',
  'source_version',
  'source_cluster',
  'destination_workload',
  'destination_workload_namespace',
  'destination_principal',
  'destination_app',
  'destination_version',
  'destination_service',
  'destination_service_name',
  'destination_service_namespace',
  'destination_cluster',
  'request_protocol',
  'response_code',
  'grpc_response_status',
  'response_flags',
  'connection_security_policy',
] as const;

export type IstioLabel = (typeof ISTIO_LABELS)[number];
export type IstioLabels = Record<IstioLabel, string>;

export const UNKNOWN = 'unknown';

/** One side of a request: a workload and who it runs as. */
export interface PeerIdentity {
  workload: string;
  namespace: string;
  principal: string;
  app: string;
  version: string;
  cluster: string;
}

export const UNKNOWN_PEER: PeerIdentity = Object.freeze({ workload: UNKNOWN, namespace: UNKNOWN, principal: UNKNOWN, app: UNKNOWN, version: UNKNOWN, cluster: UNKNOWN });

/** The service a request was for. */
export interface ServiceIdentity {
  /** Full host, e.g. `reviews.default.svc.cluster.local`. */
  host: string;
  name: string;
  namespace: string;
}

/**
 * This proxy's own identity. A gateway has no workload: Istio names it after
 * its `app` label (`istio-ingressgateway`), so does Jibe.
 */
export function nodeIdentity(node: ProxyNode, options: { principal?: string; cluster?: string } = {}): PeerIdentity {
  const labels = node.labels ?? {};
  const app = labels.app ?? labels['app.kubernetes.io/name'] ?? (node.type === 'gateway' ? 'istio-ingressgateway' : node.workload) ?? UNKNOWN;
  return {
    workload: node.workload ?? (node.type === 'gateway' ? app : UNKNOWN),
    namespace: node.namespace || UNKNOWN,
    principal: options.principal ?? UNKNOWN,
    app,
    version: labels.version ?? labels['app.kubernetes.io/version'] ?? UNKNOWN,
    cluster: options.cluster ?? node.platform ?? UNKNOWN,
  };
}

/** The identity of an upstream endpoint, from the metadata the control plane sent with it. */
export function endpointIdentity(endpoint: Endpoint | undefined): PeerIdentity {
  if (endpoint === undefined) return UNKNOWN_PEER;
  const labels = endpoint.labels ?? {};
  return {
    workload: endpoint.workload ?? UNKNOWN,
    namespace: endpoint.namespace ?? UNKNOWN,
    principal: endpoint.identity ?? UNKNOWN,
    app: labels.app ?? UNKNOWN,
    version: labels.version ?? UNKNOWN,
    cluster: endpoint.platform ?? UNKNOWN,
  };
}

/**
 * `reviews.default.svc.cluster.local` → name reviews, namespace default. A
 * host outside that form (ServiceEntry, `reviews:9080`) keeps its whole name
 * and the fallback namespace, as Istio does.
 */
export function serviceIdentity(host: string, fallbackNamespace: string): ServiceIdentity {
  if (host === '') return { host: UNKNOWN, name: UNKNOWN, namespace: fallbackNamespace || UNKNOWN };
  const colon = host.lastIndexOf(':');
  const bare = colon > 0 && host.indexOf(']') < colon && /^\d+$/.test(host.slice(colon + 1)) ? host.slice(0, colon) : host;
  const parts = bare.split('.');
  if (parts.length >= 3 && parts[2] === 'svc') return { host: bare, name: parts[0], namespace: parts[1] };
  if (parts.length === 2 && !/^\d+$/.test(parts[1])) return { host: bare, name: parts[0], namespace: parts[1] };
  return { host: bare, name: parts.length === 1 ? bare : parts[0], namespace: fallbackNamespace || UNKNOWN };
}

/**
 * Peer metadata between sidecars (Istio's `x-envoy-peer-metadata` idea, in
 * plain text): the outbound side names itself and the service it called, the
 * inbound side reads it for `source_*` and removes it before the app sees it.
 */
export const PEER_METADATA_HEADER = 'x-jibe-peer-metadata';

export function encodePeerMetadata(self: PeerIdentity, service: string): string {
  return [self.workload, self.namespace, self.principal, self.app, self.version, self.cluster, service].map(encodeURIComponent).join(';');
}

export function decodePeerMetadata(value: string): { peer: PeerIdentity; service: string } | undefined {
  const parts = value.split(';');
  if (parts.length !== 7) return undefined;
  try {
    const [workload, namespace, principal, app, version, cluster, service] = parts.map((p) => decodeURIComponent(p).slice(0, 253) || UNKNOWN);
    return { peer: { workload, namespace, principal, app, version, cluster }, service };
  } catch {
    return undefined;
  }
}

/** The identity labels of a request (everything but the per-response ones), as one frozen object. */
export function identityLabels(
  reporter: 'source' | 'destination',
  source: PeerIdentity,
  destination: PeerIdentity,
  service: ServiceIdentity,
  securityPolicy: string,
): Omit<IstioLabels, 'request_protocol' | 'response_code' | 'grpc_response_status' | 'response_flags'> {
  return {
    reporter,
    source_workload: source.workload,
    source_workload_namespace: source.namespace,
    source_principal: source.principal,
    source_app: source.app,
    source_version: source.version,
    source_cluster: source.cluster,
    destination_workload: destination.workload,
    destination_workload_namespace: destination.namespace,
    destination_principal: destination.principal,
    destination_app: destination.app,
    destination_version: destination.version,
    destination_service: service.host,
    destination_service_name: service.name,
    destination_service_namespace: service.namespace,
    destination_cluster: destination.cluster,
    connection_security_policy: securityPolicy,
  };
}
