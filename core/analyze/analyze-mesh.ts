// `jibe analyze`: what is wrong with the mesh as it runs now, across every
// platform and config store — the problems apply-time validation cannot see
// because they come from the platforms, from time, or from several stores.
// Pure: the control plane hands in its live view; each finding carries the
// same error code apply-time validation would use for the same mistake, the
// resource and field, and what to do.
import type { ConfigStoreConflict } from '../config/config-store-multi.ts';
import { validateReferences } from '../config/validate-references.ts';
import type { ErrorCode } from '../errors/errors.ts';
import { selectorMatches } from '../mesh/mesh-match.ts';
import type { MeshSnapshot } from '../mesh/mesh-snapshot.ts';
import type { DestinationRule, VirtualService } from '../model/networking.ts';
import type { Resource } from '../model/resource.ts';
import { DEFAULT_NAMESPACE, compareStrings, resourceKey } from '../model/resource.ts';
import type { PlatformName } from '../model/service.ts';
import { resolveHost } from '../model/service.ts';
import type { ServiceAlias } from '../model/service-alias.ts';
import type { Workload } from '../model/workload.ts';
import { workloadKey } from '../model/workload.ts';
import type { ServiceConflict } from '../registry/registry-aggregator.ts';
import type { AliasConflict } from '../registry/service-alias-rules.ts';

export type Severity = 'error' | 'warning';

export interface Finding {
  code: ErrorCode;
  severity: Severity;
  message: string;
  /** `Kind/namespace/name` of a rule, `Service/<host>`, or `Workload/<platform>/<ns>/<name>`. */
  resource?: string;
  field?: string;
  hint?: string;
}

export interface AnalyzeInput {
  snapshot: MeshSnapshot;
  /** Every rule, of every kind, as the (merged) config store holds them. */
  resources: readonly Resource[];
  registryConflicts: readonly ServiceConflict[];
  configConflicts: readonly ConfigStoreConflict[];
  aliasConflicts: readonly AliasConflict[];
  /** Whether `platform` itself (before ServiceAliases) has `host`. */
  platformHasService(platform: PlatformName, host: string): boolean;
  /** Agent-managed VM registrations and their last report (ms since the epoch). */
  heartbeats: ReadonlyArray<{ namespace: string; name: string; lastSeen: number }>;
  now: number;
  /** A VM that has not reported for longer than this is stale. */
  staleAfterMs: number;
}

/** Three missed heartbeats of the node agent's default 10 s, plus slack. */
export const DEFAULT_STALE_AFTER_MS = 60_000;

export function analyzeMesh(input: AnalyzeInput): Finding[] {
  const findings: Finding[] = [];
  referenceFindings(input, findings);
  subsetFindings(input, findings);
  serviceConflictFindings(input, findings);
  aliasFindings(input, findings);
  storeConflictFindings(input, findings);
  identityFindings(input, findings);
  staleFindings(input, findings);
  return findings.sort(compareFindings);
}

export function summarize(findings: readonly Finding[]): { errors: number; warnings: number } {
  let errors = 0;
  for (const f of findings) if (f.severity === 'error') errors++;
  return { errors, warnings: findings.length - errors };
}

/** What apply-time validation says about references, re-run against today's registry: hosts gone, subsets undefined. */
function referenceFindings(input: AnalyzeInput, out: Finding[]): void {
  const known = new Set(input.snapshot.services.keys());
  for (const e of validateReferences([...input.resources], known)) {
    out.push({ code: e.code, severity: 'error', message: e.message, resource: e.details.resource, field: e.details.field, hint: e.details.hint });
  }
}

/**
 * Routes to subsets no platform provides: labels that select no endpoint on
 * any platform make that share of traffic answer 503. Subsets no route uses
 * are not reported (Istio's sample rules define v2/v3 subsets ahead of time).
 */
function subsetFindings(input: AnalyzeInput, out: Finding[]): void {
  const { snapshot } = input;
  const domain = snapshot.settings.domain;
  const subsets = new Map<string, { labels: Record<string, string> | undefined; rule: string }>();
  for (const dr of snapshot.destinationRules as DestinationRule[]) {
    const ns = dr.metadata.namespace ?? DEFAULT_NAMESPACE;
    if (typeof dr.spec?.host !== 'string') continue;
    const host = resolveHost(dr.spec.host, ns, domain);
    (dr.spec.subsets ?? []).forEach((s) => {
      if (!s?.name) return;
      const key = `${host}|${s.name}`;
      if (!subsets.has(key)) subsets.set(key, { labels: s.labels, rule: resourceKey(dr) });
    });
  }
  const empty = new Set<string>();
  for (const [key, subset] of subsets) {
    const host = key.slice(0, key.lastIndexOf('|'));
    if (!snapshot.services.has(host)) continue; // the host itself is missing: reported as a reference problem where routed to
    const endpoints = (snapshot.workloadsByService.get(host) ?? []).filter((w) => selectorMatches(subset.labels, w.labels));
    if (endpoints.length === 0) empty.add(key);
  }
  for (const vs of snapshot.virtualServices as VirtualService[]) {
    const ns = vs.metadata.namespace ?? DEFAULT_NAMESPACE;
    for (const protocol of ['http', 'tcp'] as const) {
      (vs.spec?.[protocol] ?? []).forEach((route, i) => {
        (route?.route ?? []).forEach((d, j) => {
          const dest = d?.destination;
          if (!dest?.subset || typeof dest.host !== 'string') return;
          const key = `${resolveHost(dest.host, ns, domain)}|${dest.subset}`;
          if (!empty.has(key)) return;
          const subset = subsets.get(key)!;
          out.push({
            code: 'JIBE_ERR_REFERENCE',
            severity: 'error',
            message: `subset ${JSON.stringify(dest.subset)} of ${key.split('|')[0]} has no endpoints on any platform (labels ${JSON.stringify(subset.labels ?? {})} in ${subset.rule}); its share of traffic gets 503`,
            resource: resourceKey(vs),
            field: `spec.${protocol}[${i}].route[${j}].destination.subset`,
            hint: 'deploy workloads with those labels on some platform, fix the subset\'s labels, or route elsewhere',
          });
        });
      });
    }
  }
}

function serviceConflictFindings(input: AnalyzeInput, out: Finding[]): void {
  for (const c of input.registryConflicts) {
    out.push({
      code: 'JIBE_ERR_SERVICE_CONFLICT',
      severity: 'error',
      message: `${c.hostname}: ${c.message}`,
      resource: `Service/${c.hostname}`,
      field: c.kind === 'ports' ? 'ports' : `ports[${c.port}].protocol`,
      hint:
        c.kind === 'ports'
          ? 'declare the same service port on every platform (a Kubernetes Service port, Consul Meta jibe-service-port, the VM registration\'s port)'
          : 'declare the same protocol on every platform (Kubernetes port name or appProtocol, Consul Meta protocol, the VM registration\'s protocol); until then the platform first in name order decides',
    });
  }
}

function aliasFindings(input: AnalyzeInput, out: Finding[]): void {
  for (const c of input.aliasConflicts) {
    out.push({
      code: 'JIBE_ERR_SERVICE_CONFLICT',
      severity: 'error',
      message: `${c.platform} service ${c.from}${c.datacenter ? ` (datacenter ${c.datacenter})` : ''} is claimed for ${c.kept.to} by ${c.kept.rule} and for ${c.dropped.to} by ${c.dropped.rule}; ${c.kept.rule} (the older) wins`,
      resource: c.dropped.rule,
      field: 'spec.aliases',
      hint: 'keep one ServiceAlias per platform service',
    });
  }
  const domain = input.snapshot.settings.domain;
  for (const r of input.resources) {
    if (r.kind !== 'ServiceAlias') continue;
    const alias = r as ServiceAlias;
    const ns = alias.metadata.namespace ?? DEFAULT_NAMESPACE;
    (alias.spec?.aliases ?? []).forEach((a, i) => {
      if (!a?.name) return;
      const host = resolveHost(`${a.name}.${a.namespace ?? ns}`, ns, domain);
      if (input.platformHasService(a.platform as PlatformName, host)) return;
      out.push({
        code: 'JIBE_ERR_REFERENCE',
        severity: 'warning',
        message: `the ${a.platform} platform has no service ${host} to alias (not registered yet, or the platform is not enabled)`,
        resource: resourceKey(alias),
        field: `spec.aliases[${i}].name`,
        hint: `check the name and namespace as the ${a.platform} platform reports them (jibe get services)`,
      });
    });
  }
}

function storeConflictFindings(input: AnalyzeInput, out: Finding[]): void {
  for (const c of input.configConflicts) {
    out.push({ code: 'JIBE_ERR_STORE_CONFLICT', severity: 'error', message: c.message, resource: c.resource, hint: `keep the rule in one store; delete the ${c.stores.slice(1).join(' and ')} copy, or make them equal` });
  }
}

/** Every endpoint proves an identity over mTLS; one without a service account has none authorization policies can name. */
function identityFindings(input: AnalyzeInput, out: Finding[]): void {
  for (const w of input.snapshot.workloads) {
    if (w.platform === 'config') continue; // ServiceEntry endpoints are outside the mesh
    const resource = `Workload/${workloadKey(w)}`;
    if (!w.serviceAccount || !w.identity) {
      out.push({
        code: 'JIBE_ERR_WORKLOAD_INVALID',
        severity: 'error',
        message: `workload ${workloadKey(w)} has no identity (no service account), so peers cannot verify it and no authorization policy can name it`,
        resource,
        field: 'serviceAccount',
        hint: identityHint(w),
      });
    } else if (w.serviceAccount === 'default') {
      out.push({
        code: 'JIBE_ERR_WORKLOAD_INVALID',
        severity: 'warning',
        message: `workload ${workloadKey(w)} runs as the namespace's default service account (${w.identity}): authorization policies cannot tell it from other workloads without one`,
        resource,
        field: 'serviceAccount',
        hint: identityHint(w),
      });
    }
  }
}

function identityHint(w: Workload): string {
  switch (w.platform) {
    case 'kubernetes':
      return 'give the pod its own serviceAccountName';
    case 'consul':
      return 'set Meta jibe-service-account on the Consul registration';
    default:
      return 'join the VM with a token made for its own service account (jibe vm token create --service-account …)';
  }
}

function staleFindings(input: AnalyzeInput, out: Finding[]): void {
  for (const h of input.heartbeats) {
    const silentMs = input.now - h.lastSeen;
    if (silentMs <= input.staleAfterMs) continue;
    out.push({
      code: 'JIBE_ERR_WORKLOAD_STALE',
      severity: 'error',
      message: `VM workload ${h.namespace}/${h.name} last reported ${Math.round(silentMs / 1000)}s ago (limit ${Math.round(input.staleAfterMs / 1000)}s); it stays an endpoint until it reports or is removed`,
      resource: `Workload/vm/${h.namespace}/${h.name}`,
      hint: `check jibe agent on the VM (jibe agent status); if the VM is gone: jibe workload deregister ${h.name} --namespace ${h.namespace}`,
    });
  }
}

const SEVERITY_ORDER: Record<Severity, number> = { error: 0, warning: 1 };

function compareFindings(a: Finding, b: Finding): number {
  return SEVERITY_ORDER[a.severity] - SEVERITY_ORDER[b.severity] || compareStrings(a.resource ?? '', b.resource ?? '') || compareStrings(a.field ?? '', b.field ?? '') || compareStrings(a.message, b.message);
}
