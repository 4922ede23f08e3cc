// Security policies compiled into a proxy's listeners, with Istio's scoping:
// AuthorizationPolicy and RequestAuthentication add up (root namespace, then
// the workload's namespace, then selectors); PeerAuthentication is decided by
// the most specific policy (workload selector > namespace > mesh), a mode of
// UNSET inheriting from the level above and portLevelMtls overriding per port.
import type { MeshSnapshot } from './mesh-snapshot.ts';
import { compareByAge, namespaceOf, selectorMatches } from './mesh-match.ts';
import type {
  CompiledAuthorization,
  CompiledAuthzPolicy,
  CompiledJwtRule,
  ListenerResource,
  ProxyNode,
  ProxyResource,
} from '../model/proxy-config.ts';
import { canonicalHost } from '../model/service.ts';
import type {
  AuthorizationPolicy,
  AuthorizationRule,
  MtlsMode,
  PeerAuthentication,
  PolicyTargetReference,
  RequestAuthentication,
  WorkloadSelector,
} from '../model/security.ts';
import type { Workload } from '../model/workload.ts';
import { tryParseDuration } from '../config/duration.ts';

/** Who the listeners belong to, as policies select it. */
export interface SecuritySubject {
  namespace: string;
  labels: Readonly<Record<string, string>>;
  /** Canonical hosts of the services the workload serves (targetRef kind Service). */
  serviceHosts: readonly string[];
  /** `ns/name` of the Gateways that select a gateway proxy (targetRef kind Gateway). */
  gateways: readonly string[];
}

type Resolved = 'STRICT' | 'PERMISSIVE' | 'DISABLE';

/**
 * Returns `resources` with each inbound/gateway listener carrying the policies
 * that select `subject`. `portOf` gives the workload port a listener stands for
 * (what `destination.port` and portLevelMtls mean).
 */
export function applyListenerSecurity(
  snapshot: MeshSnapshot,
  subject: SecuritySubject,
  resources: ProxyResource[],
  portOf: (l: ListenerResource) => number,
): ProxyResource[] {
  const root = snapshot.settings.rootNamespace;
  const domain = snapshot.settings.domain;
  const authz = (snapshot.authorizationPolicies ?? []).filter((p) => applies(p, subject, root, domain)).sort(compareByAge);
  const jwt = compileJwtRules((snapshot.requestAuthentications ?? []).filter((p) => applies(p, subject, root, domain)).sort(compareByAge));
  const peer = (snapshot.peerAuthentications ?? []).filter((p) => namespaceOf(p) === root || namespaceOf(p) === subject.namespace);
  return resources.map((r) => {
    if (r.type !== 'listener' || r.direction === 'outbound') return r;
    const port = portOf(r);
    const out: ListenerResource = { ...r };
    if (authz.length) out.authz = compileAuthorization(authz, port);
    if (jwt.length) out.jwt = jwt;
    const mtls = resolveMtls(peer, subject, root, port);
    if (mtls !== undefined) out.mtls = mtls;
    return out;
  });
}

/** Istio: root-namespace policies apply mesh-wide (their selector across namespaces); others only in their namespace. */
function applies(
  p: { metadata: { namespace?: string }; spec: { selector?: WorkloadSelector; targetRef?: PolicyTargetReference; targetRefs?: PolicyTargetReference[] } },
  subject: SecuritySubject,
  root: string,
  domain: string,
): boolean {
  const ns = namespaceOf(p as never);
  const spec = p.spec ?? {};
  const refs = spec.targetRef ? [spec.targetRef] : spec.targetRefs;
  // A targetRef names its target (in the policy's namespace), wherever the proxy serving it runs.
  if (refs?.length) return refs.some((ref) => targetMatches(ref, ns, subject, domain));
  if (ns !== root && ns !== subject.namespace) return false;
  return selectorMatches(spec.selector?.matchLabels, subject.labels);
}

function targetMatches(ref: PolicyTargetReference, policyNamespace: string, subject: SecuritySubject, domain: string): boolean {
  const ns = ref.namespace || policyNamespace;
  if (ref.kind === 'Gateway') return subject.gateways.includes(`${ns}/${ref.name}`);
  if (ref.kind === 'Service' || ref.kind === 'ServiceEntry') return subject.serviceHosts.includes(canonicalHost(ref.name, ns, domain));
  return false;
}

function compileAuthorization(policies: AuthorizationPolicy[], port: number): CompiledAuthorization {
  const out: CompiledAuthorization = { destinationPort: port, custom: [], deny: [], allow: [], audit: [] };
  for (const p of policies) {
    const compiled: CompiledAuthzPolicy = { name: `AuthorizationPolicy/${namespaceOf(p)}/${p.metadata.name}`, rules: (p.spec.rules ?? []).map(copyRule) };
    switch (p.spec.action ?? 'ALLOW') {
      case 'CUSTOM':
        compiled.provider = p.spec.provider?.name;
        out.custom.push(compiled);
        break;
      case 'DENY':
        out.deny.push(compiled);
        break;
      case 'AUDIT':
        out.audit.push(compiled);
        break;
      default:
        out.allow.push(compiled);
    }
  }
  return out;
}

/** A plain copy without absent fields, so the resource diff compares equal policies as equal. */
function copyRule(rule: AuthorizationRule): CompiledAuthzPolicy['rules'][number] {
  const out: CompiledAuthzPolicy['rules'][number] = {};
  if (rule.from) out.from = rule.from.map((f) => ({ source: pickLists(f.source as Record<string, unknown>) }));
  if (rule.to) out.to = rule.to.map((t) => ({ operation: pickLists(t.operation as Record<string, unknown>) }));
  if (rule.when) {
    out.when = rule.when.map((c) => ({ key: c.key, ...(c.values ? { values: [...c.values] } : {}), ...(c.notValues ? { notValues: [...c.notValues] } : {}) }));
  }
  return out;
}

function pickLists(o: Record<string, unknown> | undefined): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(o ?? {})) if (Array.isArray(v)) out[k] = v.map(String);
  return out;
}

function compileJwtRules(policies: RequestAuthentication[]): CompiledJwtRule[] {
  const out: CompiledJwtRule[] = [];
  for (const p of policies) {
    (p.spec.jwtRules ?? []).forEach((r, i) => {
      const rule: CompiledJwtRule = {
        name: `RequestAuthentication/${namespaceOf(p)}/${p.metadata.name}#${i}`,
        issuer: r.issuer,
        audiences: r.audiences ?? [],
        // Istio's default locations apply only when the rule names none.
        fromHeaders: r.fromHeaders ?? (r.fromParams || r.fromCookies ? [] : [{ name: 'authorization', prefix: 'Bearer ' }]),
        fromParams: r.fromParams ?? (r.fromHeaders || r.fromCookies ? [] : ['access_token']),
        forwardOriginalToken: r.forwardOriginalToken ?? false,
      };
      if (r.jwks !== undefined) rule.jwks = r.jwks;
      else if (r.jwksUri !== undefined) rule.jwksUri = r.jwksUri;
      if (r.fromCookies?.length) rule.fromCookies = r.fromCookies;
      if (r.outputPayloadToHeader) rule.outputPayloadToHeader = r.outputPayloadToHeader;
      if (r.outputClaimToHeaders?.length) rule.outputClaimToHeaders = r.outputClaimToHeaders.map((h) => ({ header: h.header, claim: h.claim }));
      const timeout = r.timeout !== undefined ? tryParseDuration(r.timeout) : undefined;
      if (timeout !== undefined) rule.timeoutMs = timeout;
      out.push(rule);
    });
  }
  return out;
}

/** Most specific level wins; UNSET (or no mtls) defers to the level above; absent everywhere = no field (PERMISSIVE). */
function resolveMtls(policies: PeerAuthentication[], subject: SecuritySubject, root: string, port: number): Resolved | undefined {
  const sorted = [...policies].sort(compareByAge);
  const workload = sorted.find((p) => namespaceOf(p) === subject.namespace && p.spec.selector?.matchLabels && selectorMatches(p.spec.selector.matchLabels, subject.labels));
  const namespace = sorted.find((p) => namespaceOf(p) === subject.namespace && !p.spec.selector?.matchLabels);
  const mesh = sorted.find((p) => namespaceOf(p) === root && !p.spec.selector?.matchLabels);
  const portMode = workload?.spec.portLevelMtls?.[String(port)]?.mode;
  for (const mode of [portMode, workload?.spec.mtls?.mode, namespace?.spec.mtls?.mode, mesh?.spec.mtls?.mode]) {
    if (mode !== undefined && mode !== 'UNSET') return mode as Exclude<MtlsMode, 'UNSET'>;
  }
  return undefined;
}

/** A sidecar's inbound listeners (named `inbound|<appPort>`) with the policies selecting its workload. */
export function inboundWithSecurity(snapshot: MeshSnapshot, workload: Workload, resources: ProxyResource[]): ProxyResource[] {
  const subject: SecuritySubject = { namespace: workload.namespace, labels: workload.labels, serviceHosts: workload.services.map((s) => s.hostname), gateways: [] };
  return applyListenerSecurity(snapshot, subject, resources, (l) => Number(l.name.slice(l.name.indexOf('|') + 1)) || l.port);
}

/** A gateway's listeners with the policies selecting the gateway proxy (by its labels, or the Gateways it serves by targetRef). */
export function gatewayWithSecurity(snapshot: MeshSnapshot, node: ProxyNode, resources: ProxyResource[], gateways: string[]): ProxyResource[] {
  const subject: SecuritySubject = { namespace: node.namespace, labels: node.labels ?? {}, serviceHosts: [], gateways };
  return applyListenerSecurity(snapshot, subject, resources, (l) => l.port);
}
