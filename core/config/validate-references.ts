// Cross-resource checks: every host, subset and gateway a VirtualService names
// (destinations and mirrors) must exist, and so must a RateLimit's host. Hosts come from the platforms' registry (`knownHosts`, canonical
// names) and from ServiceEntries; subsets from DestinationRules; gateways from
// Gateways. A DestinationRule for an unknown host is allowed, as in Istio: the
// service may simply not be deployed yet.
import { JibeError } from '../errors/errors.ts';
import { DEFAULT_NAMESPACE, resourceKey, ROOT_NAMESPACE } from '../model/resource.ts';
import type { Resource, ResourceSource } from '../model/resource.ts';
import { resolveHost } from '../model/service.ts';
import { asArray, asObject, asString, eachObject } from './checks/check-context.ts';
import { closest, MESH_GATEWAY, parseGatewayRef } from './names.ts';

interface Exported {
  namespace: string;
  exportTo: unknown[];
  key: string;
}

interface EntryHost extends Exported {
  /** The host as written and, for a bare name, as resolved in the entry's namespace. */
  hosts: string[];
  ports: number[];
}

interface SubsetSource extends Exported {
  /** The host as written and, when it differs, as resolved in the rule's namespace. */
  hosts: string[];
  subsets: string[];
}

/** What the VirtualServices may refer to, indexed once per call. */
interface Targets {
  knownHosts: Set<string>;
  /** Wildcard names among knownHosts, kept apart so exact lookups stay O(1). */
  knownWildcards: string[];
  entryHosts: EntryHost[];
  subsetSources: SubsetSource[];
  gateways: Set<string>;
}

export function validateReferences(resources: Resource[], knownHosts: Set<string>, sources?: Map<string, ResourceSource>): JibeError[] {
  const targets = indexTargets(resources, knownHosts);
  const errors: JibeError[] = [];
  let providers: string[] | undefined;
  for (const r of resources) {
    if (r?.kind !== 'VirtualService' && r?.kind !== 'RateLimit' && r?.kind !== 'AuthorizationPolicy') continue;
    const spec = asObject(r.spec);
    if (!spec) continue;
    const namespace = namespaceOf(r);
    const key = resourceKey({ kind: r.kind, metadata: { name: String(r.metadata?.name), namespace } });
    const report = (field: string, message: string) => errors.push(new JibeError('JIBE_ERR_REFERENCE', message, { ...sources?.get(key), resource: key, field }));
    if (r.kind === 'AuthorizationPolicy') {
      const name = asString(asObject(spec.provider)?.name);
      if (spec.action !== 'CUSTOM' || name === undefined) continue;
      providers ??= extensionProviderNames(resources);
      if (!providers.includes(name)) {
        const known = providers.length ? `; the MeshConfig defines ${providers.join(', ')}${closest(name, providers) ? ` (did you mean ${JSON.stringify(closest(name, providers))}?)` : ''}` : '; the MeshConfig defines none';
        report('spec.provider.name', `extension provider ${JSON.stringify(name)} is not defined in MeshConfig spec.extensionProviders${known}`);
      }
      continue;
    }
    if (r.kind === 'RateLimit') {
      // Limits are enforced by the host's own sidecars: without the service there is nothing to limit.
      checkDestination({ host: spec.host }, namespace, 'spec', targets, report);
      continue;
    }

    asArray(spec.gateways).forEach((g, i) => checkGateway(g, namespace, `spec.gateways[${i}]`, targets, report));
    for (const protocol of ['http', 'tcp']) {
      eachObject(spec[protocol], `spec.${protocol}`, (route, field) => {
        eachObject(route.match, `${field}.match`, (m, f) => asArray(m.gateways).forEach((g, i) => checkGateway(g, namespace, `${f}.gateways[${i}]`, targets, report)));
        eachObject(route.route, `${field}.route`, (d, f) => checkDestination(d.destination, namespace, `${f}.destination`, targets, report));
        // A mirror is requested like a destination, so it must exist like one.
        checkDestination(route.mirror, namespace, `${field}.mirror`, targets, report);
        eachObject(route.mirrors, `${field}.mirrors`, (m, f) => checkDestination(m.destination, namespace, `${f}.destination`, targets, report));
      });
    }
  }
  return errors;
}

/** Names of the MeshConfig's extension providers (the one in the root namespace). */
function extensionProviderNames(resources: Resource[]): string[] {
  const mesh = resources.find((r) => r?.kind === 'MeshConfig' && r.metadata?.namespace === ROOT_NAMESPACE);
  const names: string[] = [];
  for (const p of asArray(asObject(mesh?.spec)?.extensionProviders)) {
    const name = asString(asObject(p)?.name);
    if (name) names.push(name);
  }
  return names;
}

function namespaceOf(r: Resource): string {
  const ns = r?.metadata?.namespace;
  return typeof ns === 'string' && ns ? ns : DEFAULT_NAMESPACE;
}

function indexTargets(resources: Resource[], knownHosts: Set<string>): Targets {
  const knownWildcards = [...knownHosts].filter((h) => h.includes('*'));
  const targets: Targets = { knownHosts, knownWildcards, entryHosts: [], subsetSources: [], gateways: new Set() };
  for (const r of resources) {
    const spec = asObject(r?.spec);
    const name = asString(r?.metadata?.name);
    if (!spec || !name) continue;
    const namespace = namespaceOf(r);
    const exported = { namespace, exportTo: asArray(spec.exportTo), key: resourceKey({ kind: r.kind, metadata: { name, namespace } }) };
    if (r.kind === 'ServiceEntry') {
      const ports = asArray(spec.ports).map((p) => asObject(p)?.number).filter((n): n is number => typeof n === 'number');
      for (const host of asArray(spec.hosts)) {
        // Entry hosts are meant as written (`api.example.com`); only a bare name is a short name.
        if (typeof host === 'string') targets.entryHosts.push({ ...exported, hosts: host.includes('.') || host.includes('*') ? [host] : [host, resolveHost(host, namespace)], ports });
      }
    } else if (r.kind === 'DestinationRule') {
      const host = asString(spec.host);
      if (!host) continue;
      const subsets = asArray(spec.subsets).map((s) => asObject(s)?.name).filter((n): n is string => typeof n === 'string');
      targets.subsetSources.push({ ...exported, hosts: [...new Set([host, resolveHost(host, namespace)])], subsets });
    } else if (r.kind === 'Gateway') {
      targets.gateways.add(`${namespace}/${name}`);
    }
  }
  return targets;
}

/** Istio's exportTo: absent means everywhere; `.` this namespace; `*` all; `~` none. */
function visibleFrom(target: Exported, namespace: string): boolean {
  if (target.exportTo.length === 0) return true;
  return target.exportTo.some((e) => e === '*' || e === namespace || (e === '.' && target.namespace === namespace));
}

/** `*.example.com` covers `a.example.com` and `a.b.example.com`; `*` covers all. */
function hostCovers(pattern: string, host: string): boolean {
  return pattern === host || pattern === '*' || (pattern.startsWith('*.') && host.endsWith(pattern.slice(1)));
}

function checkGateway(ref: unknown, namespace: string, field: string, targets: Targets, report: (field: string, message: string) => void): void {
  if (typeof ref !== 'string') return;
  const parsed = parseGatewayRef(ref, namespace);
  if (parsed === MESH_GATEWAY || parsed === undefined) return; // malformed refs are validate-resource's to report
  const wanted = `${parsed.namespace}/${parsed.name}`;
  if (targets.gateways.has(wanted)) return;
  const existing = [...targets.gateways].sort();
  const guess = existing.find((g) => g.endsWith(`/${parsed.name}`)) ?? closest(wanted, existing);
  const options = existing.length ? `, or bind to one of: ${existing.slice(0, 10).join(', ')}${existing.length > 10 ? ', …' : ''}` : '';
  report(
    field,
    `gateway ${JSON.stringify(ref)} does not exist: no Gateway ${parsed.name} in namespace ${parsed.namespace}${guess ? ` (did you mean ${guess}?)` : ''} (create that Gateway${options}; "mesh" means the sidecars)`,
  );
}

function checkDestination(value: unknown, namespace: string, field: string, targets: Targets, report: (field: string, message: string) => void): void {
  const dest = asObject(value);
  const written = asString(dest?.host);
  if (!dest || !written) return;
  // `httpbin.org` reads as service httpbin in namespace org, as DNS search
  // paths would try first; when no such service exists, the name as written.
  const candidates = [...new Set([resolveHost(written, namespace), written])];
  let host = candidates[0];
  let fromRegistry = false;
  let entries: EntryHost[] = [];
  for (const candidate of candidates) {
    fromRegistry = targets.knownHosts.has(candidate) || targets.knownWildcards.some((k) => hostCovers(k, candidate));
    entries = targets.entryHosts.filter((e) => visibleFrom(e, namespace) && e.hosts.some((h) => hostCovers(h, candidate)));
    if (fromRegistry || entries.length) {
      host = candidate;
      break;
    }
  }
  if (!fromRegistry && entries.length === 0) {
    const looked = candidates.filter((c) => c !== written);
    const shown = looked.length ? `${JSON.stringify(written)} (${looked.join(' or ')})` : JSON.stringify(written);
    const guess = closest(host, [...targets.knownHosts, ...targets.entryHosts.flatMap((e) => e.hosts)]);
    report(
      `${field}.host`,
      `host ${shown} is not a known service${guess ? ` (did you mean ${guess}?)` : ''} (deploy the service, fix the name, or add a ServiceEntry for an external host)`,
    );
    return;
  }

  const subset = asString(dest.subset);
  if (subset !== undefined) {
    const defined = new Set<string>();
    for (const s of targets.subsetSources) if (visibleFrom(s, namespace) && s.hosts.some((h) => hostCovers(h, host))) for (const n of s.subsets) defined.add(n);
    if (!defined.has(subset)) {
      const action = defined.size
        ? `define it in a DestinationRule's spec.subsets, or route to one of: ${[...defined].sort().join(', ')}`
        : `no DestinationRule defines subsets for this host; add one with host: ${host} and spec.subsets`;
      report(`${field}.subset`, `subset ${JSON.stringify(subset)} is not defined for host ${host} (${action})`);
    }
  }

  const port = asObject(dest.port)?.number;
  if (typeof port === 'number' && !fromRegistry) {
    // Only a ServiceEntry tells us ports here; registry hosts come as bare names.
    const exact = entries.filter((e) => e.hosts.includes(host) && e.ports.length > 0);
    if (exact.length && !exact.some((e) => e.ports.includes(port))) {
      const declared = [...new Set(exact.flatMap((e) => e.ports))].sort((a, b) => a - b);
      report(`${field}.port.number`, `port ${port} is not a port of host ${host} (${exact[0].key} declares ${declared.join(', ')}; use one of those or add the port to the ServiceEntry)`);
    }
  }
}
