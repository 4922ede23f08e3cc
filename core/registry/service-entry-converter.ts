// ServiceEntries and WorkloadEntries are a registry like any platform: this
// pure converter turns them into core's Services and Workloads (platform
// `config`), which the registry then merges with every other platform by host.
import type { MeshSettings } from '../mesh/mesh-snapshot.ts';
import type { Port, ServiceEntry, WorkloadEntry, WorkloadEntrySpec } from '../model/networking.ts';
import { DEFAULT_NAMESPACE } from '../model/resource.ts';
import type { Service, ServicePort } from '../model/service.ts';
import { canonicalHost, protocolFromPort } from '../model/service.ts';
import type { Locality, Workload, WorkloadServiceBinding } from '../model/workload.ts';
import { spiffeId } from '../model/workload.ts';

const DEFAULT_SERVICE_ACCOUNT = 'default';

export interface ServiceEntryModel {
  services: Service[];
  workloads: Workload[];
}

export function serviceEntriesToModel(serviceEntries: ServiceEntry[], workloadEntries: WorkloadEntry[], settings: MeshSettings): ServiceEntryModel {
  const entries = [...serviceEntries].filter((se) => se?.spec).sort(compareEntries);
  const services = new Map<string, Service>();
  const workloads: Workload[] = [];
  // WorkloadEntry key → its bindings, collected over every ServiceEntry that selects it.
  const selectedBindings = new Map<string, WorkloadServiceBinding[]>();
  const workloadEntriesByNs = groupByNamespace(workloadEntries.filter((we) => we?.spec));

  for (const se of entries) {
    const ns = namespaceOf(se);
    const ports = (se.spec.ports ?? []).filter((p) => p && typeof p.number === 'number');
    const hosts = dedupe(se.spec.hosts ?? []);
    for (const host of hosts) addService(services, toService(se, host, ns, ports, settings));

    (se.spec.endpoints ?? []).forEach((ep, index) => {
      // An endpoint without an address cannot be dialed (Istio needs it only for network gateways, which Jibe has not).
      if (!ep?.address) return;
      workloads.push(toWorkload(`${se.metadata.name}-${index}`, ns, ep, {}, bindingsFor(hosts, ports, ep), settings));
    });

    const selector = se.spec.workloadSelector?.labels;
    if (selector) {
      for (const we of workloadEntriesByNs.get(ns) ?? []) {
        if (!matches(selector, workloadEntryLabels(we))) continue;
        const key = we.metadata.name;
        const list = selectedBindings.get(`${ns}/${key}`) ?? [];
        list.push(...bindingsFor(hosts, ports, we.spec));
        selectedBindings.set(`${ns}/${key}`, list);
      }
    }
  }

  // Every WorkloadEntry is a workload, selected or not: a Kubernetes Service may select it later.
  for (const [ns, list] of workloadEntriesByNs) {
    for (const we of list) {
      // Without an address there is nothing to dial (Istio allows it only behind network gateways, which Jibe lacks).
      if (!we.spec.address) continue;
      const bindings = mergeBindings(selectedBindings.get(`${ns}/${we.metadata.name}`) ?? []);
      workloads.push(toWorkload(we.metadata.name, ns, we.spec, we.metadata.labels ?? {}, bindings, settings));
    }
  }

  return {
    services: [...services.values()].sort((a, b) => compare(a.hostname, b.hostname)),
    workloads: workloads.sort((a, b) => compare(a.namespace, b.namespace) || compare(a.name, b.name)),
  };
}

function toService(se: ServiceEntry, host: string, ns: string, ports: Port[], settings: MeshSettings): Service {
  const location = se.spec.location ?? 'MESH_EXTERNAL';
  // A host that is this namespace's canonical name for `<name>` is that mesh service (aliases and all).
  const shortName = host.split('.')[0];
  const isCanonical = host === canonicalHost(shortName, ns, settings.domain);
  const service: Service = {
    hostname: host,
    name: isCanonical ? shortName : host,
    namespace: ns,
    ports: ports.map((p): ServicePort => ({ name: p.name ?? '', port: p.number, protocol: protocolFromPort(p.name, p.protocol) })),
    platforms: ['config'],
    location,
    resolution: toResolution(se.spec.resolution),
  };
  if (se.spec.exportTo?.length) service.exportTo = [...se.spec.exportTo];
  if (se.spec.addresses?.length) service.addresses = [...new Set(se.spec.addresses)].sort();
  return service;
}

function toResolution(r: ServiceEntry['spec']['resolution']): Service['resolution'] {
  switch (r) {
    case 'STATIC':
      return 'STATIC';
    case 'DNS':
    case 'DNS_ROUND_ROBIN':
      return 'DNS';
    default:
      // Istio's default: NONE (the proxy forwards to the address the client dialed).
      return 'NONE';
  }
}

/** The oldest ServiceEntry defines a host; later ones for the same host add only ports it lacks. */
function addService(services: Map<string, Service>, service: Service): void {
  const existing = services.get(service.hostname);
  if (!existing) {
    services.set(service.hostname, service);
    return;
  }
  for (const p of service.ports) if (!existing.ports.some((e) => e.port === p.port)) existing.ports.push(p);
}

/** The endpoint's port for each service port: by port name, else the port's targetPort, else the port itself. */
function bindingsFor(hosts: string[], ports: Port[], ep: WorkloadEntrySpec): WorkloadServiceBinding[] {
  return hosts.map((hostname) => {
    const mapped: Record<number, number> = {};
    for (const p of ports) mapped[p.number] = (p.name !== undefined ? ep.ports?.[p.name] : undefined) ?? p.targetPort ?? p.number;
    return { hostname, ports: mapped };
  });
}

function mergeBindings(bindings: WorkloadServiceBinding[]): WorkloadServiceBinding[] {
  const byHost = new Map<string, WorkloadServiceBinding>();
  for (const b of bindings) {
    const existing = byHost.get(b.hostname);
    if (existing) Object.assign(existing.ports, { ...b.ports, ...existing.ports });
    else byHost.set(b.hostname, { hostname: b.hostname, ports: { ...b.ports } });
  }
  return [...byHost.values()].sort((a, b) => compare(a.hostname, b.hostname));
}

function toWorkload(name: string, ns: string, spec: WorkloadEntrySpec, metaLabels: Record<string, string>, services: WorkloadServiceBinding[], settings: MeshSettings): Workload {
  const serviceAccount = spec.serviceAccount || DEFAULT_SERVICE_ACCOUNT;
  const workload: Workload = {
    name,
    namespace: ns,
    platform: 'config',
    address: spec.address!,
    labels: { ...metaLabels, ...(spec.labels ?? {}) },
    serviceAccount,
    identity: spiffeId(ns, serviceAccount, settings.trustDomain),
    health: 'healthy',
    services,
  };
  const locality = parseLocality(spec.locality);
  if (locality) workload.locality = locality;
  return workload;
}

/** Istio's `region/zone/subzone` form; any part may be missing at the end. */
export function parseLocality(s: string | undefined): Locality | undefined {
  if (!s) return undefined;
  const [region, zone, subzone] = s.split('/');
  const locality: Locality = {};
  if (region) locality.region = region;
  if (zone) locality.zone = zone;
  if (subzone) locality.subzone = subzone;
  return Object.keys(locality).length ? locality : undefined;
}

/** Spec labels select (metadata labels too, spec wins), as newer Istio does. */
function workloadEntryLabels(we: WorkloadEntry): Record<string, string> {
  return { ...(we.metadata.labels ?? {}), ...(we.spec.labels ?? {}) };
}

function matches(selector: Record<string, string>, labels: Record<string, string>): boolean {
  for (const key in selector) if (labels[key] !== selector[key]) return false;
  return true;
}

function groupByNamespace(workloadEntries: WorkloadEntry[]): Map<string, WorkloadEntry[]> {
  const out = new Map<string, WorkloadEntry[]>();
  for (const we of [...workloadEntries].sort((a, b) => compare(a.metadata.name, b.metadata.name))) {
    const ns = namespaceOf(we);
    let list = out.get(ns);
    if (!list) out.set(ns, (list = []));
    list.push(we);
  }
  return out;
}

function namespaceOf(r: { metadata: { namespace?: string } }): string {
  return r.metadata.namespace ?? DEFAULT_NAMESPACE;
}

/** Oldest first (Istio's conflict order); a missing or unreadable timestamp counts as oldest. */
function compareEntries(a: ServiceEntry, b: ServiceEntry): number {
  const ta = creationTime(a);
  const tb = creationTime(b);
  if (ta !== tb) return ta < tb ? -1 : 1;
  return compare(a.metadata.name, b.metadata.name) || compare(namespaceOf(a), namespaceOf(b));
}

function creationTime(r: ServiceEntry): number {
  const t = r.metadata.creationTimestamp ? Date.parse(r.metadata.creationTimestamp) : NaN;
  return Number.isNaN(t) ? -Infinity : t;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function dedupe(hosts: string[]): string[] {
  return [...new Set(hosts.filter((h) => typeof h === 'string' && h.length > 0))];
}
