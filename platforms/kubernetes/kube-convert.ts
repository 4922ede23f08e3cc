// Pure converters from Kubernetes objects to the mesh model (Kuma's
// pod_converter.go, tested against fixture files): a Service becomes a mesh
// Service, and a Pod together with the EndpointSlice entries that name it
// becomes one Workload. Nothing here does I/O, so every rule is tested offline.
import { canonicalHost, protocolFromPort } from '../../core/model/service.ts';
import type { Service, ServicePort } from '../../core/model/service.ts';
import { spiffeId } from '../../core/model/workload.ts';
import type { Locality, Workload, WorkloadServiceBinding } from '../../core/model/workload.ts';
import type { KubeEndpoint, KubeEndpointSlice, KubePod, KubeService } from './kube-types.ts';

export interface ConvertOptions {
  domain: string;
  trustDomain: string;
}

/** The EndpointSlice label naming the Service a slice belongs to. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
/** Istio's annotation limiting which namespaces see a Service. */
export const EXPORT_TO_ANNOTATION = 'networking.istio.io/exportTo';
/** The injected proxy container's name; a pod with it runs a Jibe sidecar. */
export const PROXY_CONTAINER = 'jibe-proxy';
/**
 * Set on pods whose sidecar runs without traffic capture: `appPort=proxyPort,…`.
 * Peers then dial the proxy's port instead of the app's.
 */
export const INBOUND_PORTS_ANNOTATION = 'sidecar.jibe.dev/inbound-ports';
export const REGION_LABEL = 'topology.kubernetes.io/region';
export const ZONE_LABEL = 'topology.kubernetes.io/zone';
export const SUBZONE_LABEL = 'topology.istio.io/subzone';

/** A Service as the mesh sees it. ExternalName services resolve by DNS. */
export function toService(svc: KubeService, options: Pick<ConvertOptions, 'domain'>): Service {
  const { name, namespace = 'default' } = svc.metadata;
  const spec = svc.spec ?? {};
  const ports: ServicePort[] = (spec.ports ?? []).map((p) => ({ name: p.name ?? '', port: p.port, protocol: protocolFromPort(p.name, p.appProtocol) }));
  const service: Service = {
    hostname: canonicalHost(name, namespace, options.domain),
    name,
    namespace,
    ports,
    platforms: ['kubernetes'],
    location: 'MESH_INTERNAL',
    resolution: spec.type === 'ExternalName' ? 'DNS' : 'STATIC',
  };
  if (svc.metadata.labels && Object.keys(svc.metadata.labels).length) service.labels = { ...svc.metadata.labels };
  const exportTo = svc.metadata.annotations?.[EXPORT_TO_ANNOTATION];
  if (exportTo) service.exportTo = exportTo.split(',').map((s) => s.trim()).filter(Boolean);
  const addresses = (spec.clusterIPs?.length ? spec.clusterIPs : spec.clusterIP ? [spec.clusterIP] : []).filter((ip) => ip && ip !== 'None');
  if (addresses.length) service.addresses = addresses;
  return service;
}

/** Where one workload appears in one slice. */
export interface EndpointRef {
  slice: KubeEndpointSlice;
  endpoint: KubeEndpoint;
}

/**
 * The workload name an endpoint stands for: its Pod's name, or for endpoints
 * without a Pod (hand-made slices pointing at a VM or a test process) a name
 * made from the Service and the address, stable across resyncs.
 */
export function endpointWorkloadName(slice: KubeEndpointSlice, endpoint: KubeEndpoint): string | undefined {
  if (endpoint.targetRef?.kind === 'Pod' && endpoint.targetRef.name) return endpoint.targetRef.name;
  const address = endpoint.addresses?.[0];
  if (!address) return undefined;
  const service = slice.metadata.labels?.[SERVICE_NAME_LABEL] ?? slice.metadata.name;
  return `${service}-${address.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
}

/** Whether an endpoint's workload needs its Pod to be known (it names one). */
export function endpointNeedsPod(endpoint: KubeEndpoint): boolean {
  return endpoint.targetRef?.kind === 'Pod' && !!endpoint.targetRef.name;
}

/**
 * One workload from its Pod (when there is one) and every slice entry naming
 * it. Returns undefined when there is nothing routable yet: no address, or a
 * slice names a Pod the cache has not seen (it arrives on its own watch).
 */
export function toWorkload(
  namespace: string,
  name: string,
  pod: KubePod | undefined,
  refs: readonly EndpointRef[],
  serviceOf: (namespace: string, name: string) => KubeService | undefined,
  options: ConvertOptions,
): Workload | undefined {
  if (!pod && refs.some((r) => endpointNeedsPod(r.endpoint))) return undefined;
  if (pod && (pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed')) return undefined;
  const address = refs[0]?.endpoint.addresses?.[0] ?? pod?.status?.podIP;
  if (!address) return undefined;

  const bindings = new Map<string, WorkloadServiceBinding>();
  for (const { slice } of refs) {
    const serviceName = slice.metadata.labels?.[SERVICE_NAME_LABEL];
    const svc = serviceName ? serviceOf(slice.metadata.namespace ?? namespace, serviceName) : undefined;
    if (!svc) continue;
    const hostname = canonicalHost(svc.metadata.name, svc.metadata.namespace ?? namespace, options.domain);
    let binding = bindings.get(hostname);
    if (!binding) bindings.set(hostname, (binding = { hostname, ports: {} }));
    for (const sp of svc.spec?.ports ?? []) {
      // Slices name their ports after the Service's; an unnamed single port matches the unnamed one.
      const match = (slice.ports ?? []).find((p) => (p.name ?? '') === (sp.name ?? ''));
      if (match?.port) binding.ports[sp.port] = match.port;
    }
  }

  const serviceAccount = pod?.spec?.serviceAccountName || 'default';
  const workload: Workload = {
    name,
    namespace,
    platform: 'kubernetes',
    address,
    labels: { ...(pod?.metadata.labels ?? {}) },
    serviceAccount,
    identity: spiffeId(namespace, serviceAccount, options.trustDomain),
    health: isHealthy(pod, refs) ? 'healthy' : 'unhealthy',
    services: [...bindings.values()].sort((a, b) => (a.hostname < b.hostname ? -1 : a.hostname > b.hostname ? 1 : 0)),
  };
  const locality = localityOf(pod, refs);
  if (locality) workload.locality = locality;
  if (pod?.spec?.containers?.some((c) => c.name === PROXY_CONTAINER)) {
    const inboundPorts = parsePortMap(pod.metadata.annotations?.[INBOUND_PORTS_ANNOTATION]);
    workload.proxy = inboundPorts ? { inboundPorts } : {};
  }
  return workload;
}

/**
 * Readiness is the slice's word when the workload is an endpoint (the endpoint
 * controller, or the test playing it, decides); a Pod outside every Service is
 * healthy when its Ready condition is true. A terminating Pod never takes traffic.
 */
function isHealthy(pod: KubePod | undefined, refs: readonly EndpointRef[]): boolean {
  if (pod?.metadata.deletionTimestamp) return false;
  if (refs.length) return refs.every((r) => r.endpoint.conditions?.ready !== false && r.endpoint.conditions?.terminating !== true);
  return pod?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

/** Region and zone as Kubernetes' topology labels say (the slice's zone wins), subzone as Istio's. */
function localityOf(pod: KubePod | undefined, refs: readonly EndpointRef[]): Locality | undefined {
  const labels = pod?.metadata.labels ?? {};
  const region = labels[REGION_LABEL];
  const zone = refs.find((r) => r.endpoint.zone)?.endpoint.zone ?? labels[ZONE_LABEL];
  const subzone = labels[SUBZONE_LABEL];
  if (!region && !zone && !subzone) return undefined;
  const out: Locality = {};
  if (region) out.region = region;
  if (zone) out.zone = zone;
  if (subzone) out.subzone = subzone;
  return out;
}

/** `9080=15080,9090=15090` → {9080: 15080, 9090: 15090}; undefined when absent or malformed. */
export function parsePortMap(value: string | undefined): Record<number, number> | undefined {
  if (!value) return undefined;
  const out: Record<number, number> = {};
  for (const part of value.split(',')) {
    const m = /^\s*(\d{1,5})\s*[=:]\s*(\d{1,5})\s*$/.exec(part);
    if (!m) return undefined;
    out[Number(m[1])] = Number(m[2]);
  }
  return out;
}
