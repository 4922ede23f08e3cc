// AuthorizationPolicy evaluation with Istio's semantics, compiled once per
// config into closures: a policy matches when any rule does; a rule when every
// part it sets does (any `from`, any `to`, all `when`); a field when any value
// matches and its `not…` form matches none. Strings use Istio's patterns:
// exact, `pre*`, `*suf`, `*` (present). Order: CUSTOM, DENY, ALLOW; with no
// ALLOW policy the request is allowed, with some, one must match.
// On TCP (`compileAuthzL4`) only L4 attributes exist, and Istio's rule for
// HTTP-only fields applies: an ALLOW rule using one is dropped (matches
// nothing), a DENY or AUDIT rule ignores those parts (matches more broadly).
import { BlockList, isIP } from 'node:net';
import type { CompiledAuthorization, CompiledAuthzPolicy } from '../../core/model/proxy-config.ts';
import { parseConditionKey } from '../../core/model/security.ts';

/**
 * What policies read: RequestAttributes for HTTP, ConnectionAttributes for TCP
 * (where the HTTP-only fields are empty and, compiled by compileAuthzL4, never read).
 */
export interface AuthzAttributes {
  readonly sourceIp: string;
  /** Peer SPIFFE ID without `spiffe://`; '' without mTLS. */
  readonly sourcePrincipal: string;
  readonly sourceNamespace: string;
  readonly destinationPort: number;
  readonly requestPrincipal: string;
  readonly method: string;
  readonly path: string;
  readonly host: string;
  values(base: string, args: readonly string[]): string[];
}

type Predicate = (a: AuthzAttributes) => boolean;
type Rule = CompiledAuthzPolicy['rules'][number];
/** How a rule is read: as written (HTTP), or its L4 view with HTTP-only parts dropping the rule (ALLOW) or ignored (DENY, AUDIT). */
type View = 'http' | 'l4-drop' | 'l4-ignore';
type StringTest = (value: string) => boolean;

export interface CompiledPolicy {
  name: string;
  provider: string | undefined;
  matches: Predicate;
}

export interface AuthzEngine {
  custom: CompiledPolicy[];
  deny: CompiledPolicy[];
  allow: CompiledPolicy[];
  audit: CompiledPolicy[];
}

export type AuthzDecision =
  | { allowed: true; policy: string | undefined }
  | { allowed: false; policy: string | undefined; reason: 'deny' | 'no-allow-match' };

/** @throws Error naming the policy and field when a rule cannot be compiled (bad CIDR, unknown key). */
export function compileAuthz(c: CompiledAuthorization): AuthzEngine {
  const http = (p: CompiledAuthzPolicy) => compilePolicy(p, 'http');
  return { custom: c.custom.map(http), deny: c.deny.map(http), allow: c.allow.map(http), audit: c.audit.map(http) };
}

/**
 * The same policies as a TCP connection sees them (Istio's TCP RBAC filter).
 * CUSTOM policies are left out: Istio runs CUSTOM on TCP only through an
 * ext_authz gRPC provider, and Jibe's adapters judge HTTP requests — the
 * caller reports them as skipped (`engine.custom` stays empty).
 * @throws Error naming the policy and field when a rule cannot be compiled.
 */
export function compileAuthzL4(c: CompiledAuthorization): AuthzEngine {
  const drop = (p: CompiledAuthzPolicy) => compilePolicy(p, 'l4-drop');
  const ignore = (p: CompiledAuthzPolicy) => compilePolicy(p, 'l4-ignore');
  return { custom: [], deny: c.deny.map(ignore), allow: c.allow.map(drop), audit: c.audit.map(ignore) };
}

/** DENY then ALLOW (CUSTOM is asked by the caller first, since its provider may answer asynchronously). */
export function evaluateAuthz(engine: AuthzEngine, a: AuthzAttributes): AuthzDecision {
  for (const p of engine.deny) if (p.matches(a)) return { allowed: false, policy: p.name, reason: 'deny' };
  if (engine.allow.length === 0) return { allowed: true, policy: undefined };
  for (const p of engine.allow) if (p.matches(a)) return { allowed: true, policy: p.name };
  return { allowed: false, policy: undefined, reason: 'no-allow-match' };
}

/** The first CUSTOM policy whose rules match: its provider decides. */
export function matchingCustom(engine: AuthzEngine, a: AuthzAttributes): CompiledPolicy | undefined {
  for (const p of engine.custom) if (p.matches(a)) return p;
  return undefined;
}

/** AUDIT policies that match (they only mark the request for the access log). */
export function matchingAudit(engine: AuthzEngine, a: AuthzAttributes): string | undefined {
  for (const p of engine.audit) if (p.matches(a)) return p.name;
  return undefined;
}

function compilePolicy(p: CompiledAuthzPolicy, view: View): CompiledPolicy {
  const rules: Predicate[] = [];
  for (const [i, r] of p.rules.entries()) {
    try {
      const rule = view === 'http' ? r : l4Rule(r, view === 'l4-ignore');
      if (rule !== undefined) rules.push(compileRule(rule));
    } catch (e) {
      throw new Error(`${p.name} rules[${i}]: ${(e as Error).message}`);
    }
  }
  const matches: Predicate = rules.length === 0 ? () => false : rules.length === 1 ? rules[0] : (a) => rules.some((r) => r(a));
  return { name: p.name, provider: p.provider, matches };
}

const HTTP_SOURCE_FIELDS = new Set(['requestPrincipals', 'notRequestPrincipals']);
const HTTP_OPERATION_FIELDS = new Set(['hosts', 'notHosts', 'methods', 'notMethods', 'paths', 'notPaths']);
/** Condition keys a TCP connection has (Istio's "HTTP, TCP" keys). */
const L4_CONDITION_KEYS = new Set(['source.ip', 'remote.ip', 'source.namespace', 'source.principal', 'destination.ip', 'destination.port', 'connection.sni']);

/**
 * A rule's L4 view: undefined when it uses an HTTP-only field and `ignore` is
 * off (Istio drops such ALLOW rules on TCP), else the rule without those fields
 * (so a DENY `to: [{operation: {methods: [GET]}}]` denies every connection).
 */
function l4Rule(rule: Rule, ignore: boolean): Rule | undefined {
  let http = false;
  const strip = (fields: Record<string, string[]>, httpOnly: Set<string>): Record<string, string[]> => {
    const out: Record<string, string[]> = {};
    for (const [k, v] of Object.entries(fields)) {
      if (httpOnly.has(k)) http = true;
      else out[k] = v;
    }
    return out;
  };
  const from = rule.from?.map((f) => ({ source: strip(f.source ?? {}, HTTP_SOURCE_FIELDS) }));
  const to = rule.to?.map((t) => ({ operation: strip(t.operation ?? {}, HTTP_OPERATION_FIELDS) }));
  const when = rule.when?.filter((c) => {
    const key = parseConditionKey(c.key);
    // Unknown keys stay, so compiling them fails as it does for HTTP.
    if (key === undefined || L4_CONDITION_KEYS.has(key.base)) return true;
    http = true;
    return false;
  });
  if (http && !ignore) return undefined;
  return { ...(from ? { from } : {}), ...(to ? { to } : {}), ...(when ? { when } : {}) };
}

function compileRule(rule: Rule): Predicate {
  const parts: Predicate[] = [];
  if (rule.from?.length) parts.push(any(rule.from.map((f) => compileSource(f.source))));
  if (rule.to?.length) parts.push(any(rule.to.map((t) => compileOperation(t.operation))));
  for (const c of rule.when ?? []) parts.push(compileCondition(c));
  return all(parts);
}

function any(list: Predicate[]): Predicate {
  return list.length === 1 ? list[0] : (a) => list.some((p) => p(a));
}

function all(list: Predicate[]): Predicate {
  if (list.length === 0) return () => true;
  if (list.length === 1) return list[0];
  return (a) => list.every((p) => p(a));
}

/** A field and its not-form over one attribute. */
function field(values: string[] | undefined, notValues: string[] | undefined, test: (list: string[]) => (v: string) => boolean, get: (a: AuthzAttributes) => string): Predicate[] {
  const out: Predicate[] = [];
  if (values !== undefined) {
    const t = test(values);
    out.push((a) => t(get(a)));
  }
  if (notValues !== undefined) {
    const t = test(notValues);
    out.push((a) => !t(get(a)));
  }
  return out;
}

function compileSource(s: Record<string, string[]>): Predicate {
  const parts: Predicate[] = [
    ...field(s.principals, s.notPrincipals, stringTest, (a) => a.sourcePrincipal),
    ...field(s.requestPrincipals, s.notRequestPrincipals, stringTest, (a) => a.requestPrincipal),
    ...field(s.namespaces, s.notNamespaces, stringTest, (a) => a.sourceNamespace),
    ...field(s.ipBlocks, s.notIpBlocks, ipTest, (a) => a.sourceIp),
    ...field(s.remoteIpBlocks, s.notRemoteIpBlocks, ipTest, (a) => a.sourceIp),
  ];
  return all(parts);
}

function compileOperation(o: Record<string, string[]>): Predicate {
  const lower = (l: string[] | undefined) => l?.map((h) => h.toLowerCase());
  return all([
    ...field(lower(o.hosts), lower(o.notHosts), hostTest, (a) => a.host),
    ...field(o.ports, o.notPorts, stringTest, (a) => String(a.destinationPort)),
    ...field(o.methods, o.notMethods, stringTest, (a) => a.method),
    ...field(o.paths, o.notPaths, pathTest, (a) => a.path),
  ]);
}

function compileCondition(c: { key: string; values?: string[]; notValues?: string[] }): Predicate {
  const key = parseConditionKey(c.key);
  if (key === undefined) throw new Error(`unknown condition key ${JSON.stringify(c.key)}`);
  const ip = key.base === 'source.ip' || key.base === 'remote.ip' || key.base === 'destination.ip';
  const make = ip ? ipTest : stringTest;
  const parts: Predicate[] = [];
  // Multi-valued attributes (claims lists, audiences) match when any of their values does.
  if (c.values !== undefined) {
    const t = make(c.values);
    parts.push((a) => a.values(key.base, key.args).some(t));
  }
  if (c.notValues !== undefined) {
    const t = make(c.notValues);
    parts.push((a) => !a.values(key.base, key.args).some(t));
  }
  return all(parts);
}

/** Istio string patterns: exact, `prefix*`, `*suffix`, and `*` = any non-empty value. */
export function stringTest(patterns: string[]): StringTest {
  const exact = new Set<string>();
  const prefixes: string[] = [];
  const suffixes: string[] = [];
  let presence = false;
  for (const p of patterns) {
    if (p === '*') presence = true;
    else if (p.endsWith('*')) prefixes.push(p.slice(0, -1));
    else if (p.startsWith('*')) suffixes.push(p.slice(1));
    else exact.add(p);
  }
  return (v) => {
    if (presence && v !== '') return true;
    if (exact.has(v)) return true;
    for (let i = 0; i < prefixes.length; i++) if (v.startsWith(prefixes[i])) return true;
    for (let i = 0; i < suffixes.length; i++) if (v.endsWith(suffixes[i])) return true;
    return false;
  };
}

/** Hosts as Istio generates them: a pattern without a port also matches the authority with any port (already stripped). */
function hostTest(patterns: string[]): StringTest {
  return stringTest(patterns.map((p) => (p.endsWith(':*') ? p.slice(0, -2) : p)));
}

/** Paths: Istio patterns, plus templates `{*}` (one segment) and `{**}` (the rest). */
function pathTest(patterns: string[]): StringTest {
  const plain = patterns.filter((p) => !p.includes('{'));
  const templates = patterns.filter((p) => p.includes('{')).map(templateRegex);
  const t = stringTest(plain);
  if (templates.length === 0) return t;
  return (v) => t(v) || templates.some((r) => r.test(v));
}

function templateRegex(template: string): RegExp {
  const body = template
    .split('/')
    .map((seg) => (seg === '{*}' ? '[^/]+' : seg === '{**}' ? '.*' : seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    .join('/');
  return new RegExp(`^${body}$`);
}

/** CIDR or single-address blocks (IPv4 and IPv6), through node's BlockList. */
export function ipTest(blocks: string[]): StringTest {
  const list = new BlockList();
  for (const b of blocks) {
    const slash = b.indexOf('/');
    const address = slash < 0 ? b : b.slice(0, slash);
    const family = isIP(address);
    if (family === 0) throw new Error(`invalid IP block ${JSON.stringify(b)}`);
    const type = family === 4 ? 'ipv4' : 'ipv6';
    const prefix = slash < 0 ? (family === 4 ? 32 : 128) : Number(b.slice(slash + 1));
    if (!Number.isInteger(prefix) || prefix < 0 || prefix > (family === 4 ? 32 : 128)) throw new Error(`invalid IP block ${JSON.stringify(b)}`);
    list.addSubnet(address, prefix, type);
  }
  return (v) => {
    const family = isIP(v);
    return family !== 0 && list.check(v, family === 4 ? 'ipv4' : 'ipv6');
  };
}
