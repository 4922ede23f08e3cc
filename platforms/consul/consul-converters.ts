// Consul catalog entries → core's model. Pure functions: the registry feeds
// them what its blocking queries returned; fixtures under
// test/unit/platforms/consul/fixtures pin the mapping.
//
// Mapping (what a Consul user writes → what the mesh sees):
// - service name → `<name>.<namespace>.svc.<domain>`; namespace from Meta
//   `jibe-namespace`, else the Enterprise namespace, else the configured default.
// - tags `key=value` and every Meta entry (Meta wins) → workload labels
//   (`version=v1` selects DestinationRule subsets); `jibe-*` Meta keys are Jibe's own.
// - protocol from Meta `protocol` (Consul's own convention), else a tag
//   `protocol=x`, else a bare tag naming one (`http`, `grpc`); else unknown (sniffed).
// - service port = Meta `jibe-service-port`, else the instance port; the
//   instance port is where the app listens.
// - address = the service address, else the node's.
// - datacenter → locality region; node Meta `zone`/`subzone` → zone/subzone.
// - a `connect-proxy` registered for the instance with Meta `jibe-sidecar=true`
//   is a Jibe sidecar: peers dial its port with mesh mTLS. Other sidecars (Consul
//   Connect's Envoy) speak another mTLS, so those instances are dialled directly.
import { compareStrings } from '../../core/model/resource.ts';
import { canonicalHost, protocolFromPort } from '../../core/model/service.ts';
import type { Protocol, Service, ServicePort } from '../../core/model/service.ts';
import { spiffeId } from '../../core/model/workload.ts';
import type { Locality, Workload } from '../../core/model/workload.ts';
import type { ConsulCheck, ConsulHealthEntry } from './consul-types.ts';
import { isDns1123Label } from '../../core/config/names.ts';

export interface ConsulConvertOptions {
  domain: string;
  trustDomain: string;
  /** Namespace of services that name none (Consul OSS has no namespaces). */
  namespace: string;
  /**
   * Whether a `warning` check still counts as healthy (Consul DNS's default). Otherwise
   * only instances whose checks all pass are healthy endpoints. Instances that are not
   * stay in the mesh, marked unhealthy: proxies never route to them, and their own
   * sidecar can still get its config (and so start passing its check).
   */
  warningIsHealthy: boolean;
  /** Retired (non-passing instances are always kept, unhealthy); accepted so older callers still compile. */
  onlyPassing?: boolean;
}

export const DEFAULT_CONVERT_OPTIONS: ConsulConvertOptions = { domain: 'cluster.local', trustDomain: 'cluster.local', namespace: 'default', warningIsHealthy: false };

/** Meta keys Jibe reads itself; they are not copied to labels. */
export const META_NAMESPACE = 'jibe-namespace';
export const META_SERVICE_PORT = 'jibe-service-port';
export const META_SERVICE_ACCOUNT = 'jibe-service-account';
export const META_SIDECAR = 'jibe-sidecar';
export const META_PROTOCOL = 'protocol';
/** Sidecar Meta: the node captures traffic (peers dial the app port, not the sidecar's). */
export const META_CAPTURE = 'jibe-capture';

/** A registration the platform skipped, for the log (never a crash). */
export interface ConsulProblem {
  service: string;
  instance?: string;
  node?: string;
  message: string;
}

/** What one Consul service name contributes to the mesh. */
export interface ConvertedService {
  services: Service[];
  workloads: Workload[];
  problems: ConsulProblem[];
}

const PROTOCOLS = new Set<Protocol>(['http', 'http2', 'grpc', 'grpc-web', 'tcp', 'tls', 'https']);

/** A sidecar (`connect-proxy`) entry that fronts an instance: the key is `<node>/<destination service ID>`. */
export function sidecarKey(node: string, destinationServiceId: string): string {
  return `${node}/${destinationServiceId}`;
}

/** Whether an entry is a Jibe sidecar registration. */
export function isJibeSidecar(entry: ConsulHealthEntry): boolean {
  return entry.Service.Kind === 'connect-proxy' && entry.Service.Meta?.[META_SIDECAR] === 'true' && !!entry.Service.Proxy?.DestinationServiceID;
}

/** Whether every check of the entry (node checks included, as Consul's `?passing`) passes (or warns, when allowed). */
export function isPassing(checks: readonly ConsulCheck[] | null | undefined, warningIsHealthy = false): boolean {
  for (const c of checks ?? []) if (c.Status !== 'passing' && !(warningIsHealthy && c.Status === 'warning')) return false;
  return true;
}

interface ParsedInstance {
  workload: Workload;
  hostname: string;
  port: ServicePort;
  passing: boolean;
}

/**
 * One instance → a workload of one service, or the reason it is skipped.
 * `sidecar` is the Jibe sidecar registered for it, if any.
 */
export function toWorkload(entry: ConsulHealthEntry, sidecar: ConsulHealthEntry | undefined, options: ConsulConvertOptions): ParsedInstance | ConsulProblem {
  const s = entry.Service;
  const node = entry.Node;
  const problem = (message: string): ConsulProblem => ({ service: s?.Service ?? '', instance: s?.ID, node: node?.Node, message });
  if (!s || !node) return { service: '', message: 'entry has no Service or Node' };
  const name = String(s.Service ?? '').toLowerCase();
  if (!isDns1123Label(name)) return problem(`service name ${JSON.stringify(s.Service)} is not a DNS label (letters, digits, -), so it cannot be a mesh host name`);
  if (!s.ID) return problem('instance has no ID');
  const meta = s.Meta ?? {};

  const namespace = meta[META_NAMESPACE] ?? (s.Namespace && s.Namespace !== 'default' ? s.Namespace : options.namespace);
  if (!isDns1123Label(namespace)) return problem(`Meta ${META_NAMESPACE}=${JSON.stringify(namespace)} is not a DNS label`);

  const appPort = s.Port;
  if (!isPort(appPort)) return problem(`instance has no port (Port ${JSON.stringify(appPort)}); register it with the port the app listens on`);
  let servicePort = appPort;
  if (meta[META_SERVICE_PORT] !== undefined) {
    servicePort = Number(meta[META_SERVICE_PORT]);
    if (!/^\d+$/.test(meta[META_SERVICE_PORT]) || !isPort(servicePort)) return problem(`Meta ${META_SERVICE_PORT}=${JSON.stringify(meta[META_SERVICE_PORT])} is not a port (1-65535)`);
  }

  const labels: Record<string, string> = {};
  let taggedProtocol: string | undefined;
  for (const tag of s.Tags ?? []) {
    const eq = tag.indexOf('=');
    if (eq > 0) labels[tag.slice(0, eq)] = tag.slice(eq + 1);
    else if (PROTOCOLS.has(tag.toLowerCase() as Protocol)) taggedProtocol ??= tag.toLowerCase();
  }
  for (const [k, v] of Object.entries(meta)) if (!k.startsWith('jibe-') && k !== META_PROTOCOL) labels[k] = v;

  const declared = meta[META_PROTOCOL] ?? labels[META_PROTOCOL] ?? taggedProtocol;
  delete labels[META_PROTOCOL];
  let protocol: Protocol = 'unknown';
  if (declared !== undefined) {
    protocol = protocolFromPort(undefined, declared);
    if (protocol === 'unknown') return problem(`protocol ${JSON.stringify(declared)} is not one of ${[...PROTOCOLS].join(', ')}`);
  }

  const address = s.Address || node.Address;
  if (!address) return problem('instance has no address (neither the service nor its node has one)');

  const serviceAccount = meta[META_SERVICE_ACCOUNT] ?? name;
  if (!isDns1123Label(serviceAccount)) return problem(`Meta ${META_SERVICE_ACCOUNT}=${JSON.stringify(serviceAccount)} is not a DNS label`);

  const datacenter = node.Datacenter ?? '';
  const hostname = canonicalHost(name, namespace, options.domain);
  let passing = isPassing(entry.Checks, options.warningIsHealthy);
  const workload: Workload = {
    name: workloadName(s.ID, node.Node, datacenter),
    namespace,
    platform: 'consul',
    address,
    labels,
    serviceAccount,
    identity: spiffeId(namespace, serviceAccount, options.trustDomain),
    health: 'healthy',
    services: [{ hostname, ports: { [servicePort]: appPort } }],
  };
  const locality = localityOf(datacenter, node.Meta);
  if (locality) workload.locality = locality;
  if (sidecar) {
    if (!isPort(sidecar.Service.Port)) return problem(`its Jibe sidecar ${sidecar.Service.ID} has no port`);
    // With traffic capture peers dial the app port and the node redirects it to the
    // sidecar, whose inbound listener then serves that same port (as a VM agent's
    // does); else peers dial the sidecar's own port.
    const listenPort = sidecar.Service.Meta?.[META_CAPTURE] === 'true' ? appPort : sidecar.Service.Port;
    workload.proxy = { inboundPorts: { [appPort]: listenPort } };
    // Traffic goes through the sidecar: a sidecar that is down makes the instance unreachable.
    passing &&= isPassing(sidecar.Checks, options.warningIsHealthy);
  }
  if (!passing) workload.health = 'unhealthy';
  return { workload, hostname, port: { name: portName(protocol, servicePort), port: servicePort, protocol }, passing };
}

/**
 * Every instance of one Consul service name → the mesh services and workloads
 * it contributes (usually one service; several when instances name different
 * namespaces), with what was skipped and why.
 */
export function toService(entries: readonly ConsulHealthEntry[], sidecars: ReadonlyMap<string, ConsulHealthEntry>, options: ConsulConvertOptions): ConvertedService {
  const services = new Map<string, Service>();
  const workloads = new Map<string, Workload>();
  const problems: ConsulProblem[] = [];
  // Oldest registration first, so on a clash the instance that was there first stays.
  const ordered = [...entries].sort((a, b) => (a.Service?.ModifyIndex ?? 0) - (b.Service?.ModifyIndex ?? 0) || compareStrings(a.Node?.Node ?? '', b.Node?.Node ?? '') || compareStrings(a.Service?.ID ?? '', b.Service?.ID ?? ''));
  for (const entry of ordered) {
    if (entry.Service?.Kind) continue; // sidecars and gateways are not services of their own
    const sidecar = entry.Node && entry.Service ? sidecars.get(sidecarKey(entry.Node.Node, entry.Service.ID)) : undefined;
    const parsed = toWorkload(entry, sidecar, options);
    if (!('workload' in parsed)) {
      problems.push(parsed);
      continue;
    }
    const { workload, hostname, port } = parsed;
    const key = `${workload.namespace}/${workload.name}`;
    if (workloads.has(key)) {
      problems.push({ service: entry.Service.Service, instance: entry.Service.ID, node: entry.Node.Node, message: `duplicate instance: ${key} is already registered; skipped` });
      continue;
    }
    let service = services.get(hostname);
    const clash = service?.ports.find((p) => p.port === port.port && p.protocol !== port.protocol);
    if (clash) {
      problems.push({ service: entry.Service.Service, instance: entry.Service.ID, node: entry.Node.Node, message: `port ${port.port} is ${port.protocol} here but ${clash.protocol} on other instances; skipped` });
      continue;
    }
    if (!service) {
      service = { hostname, name: hostname.split('.')[0], namespace: workload.namespace, ports: [], platforms: ['consul'], location: 'MESH_INTERNAL', resolution: 'STATIC' };
      services.set(hostname, service);
    }
    if (!service.ports.some((p) => p.port === port.port)) service.ports.push(port);
    workloads.set(key, workload);
  }
  for (const service of services.values()) service.ports.sort((a, b) => a.port - b.port);
  return { services: [...services.values()], workloads: [...workloads.values()], problems };
}

/** Unique per instance across the catalog: Consul IDs are unique per node, node names per datacenter. */
export function workloadName(serviceId: string, node: string, datacenter: string): string {
  return [serviceId, node, datacenter].filter(Boolean).join('.').toLowerCase();
}

function localityOf(datacenter: string, nodeMeta: Record<string, string> | null | undefined): Locality | undefined {
  const locality: Locality = {};
  if (datacenter) locality.region = datacenter;
  if (nodeMeta?.zone) locality.zone = nodeMeta.zone;
  if (nodeMeta?.subzone) locality.subzone = nodeMeta.subzone;
  return Object.keys(locality).length ? locality : undefined;
}

function portName(protocol: Protocol, port: number): string {
  return protocol === 'unknown' ? `port-${port}` : `${protocol}-${port}`;
}

function isPort(n: unknown): n is number {
  return Number.isInteger(n) && (n as number) > 0 && (n as number) < 65536;
}
