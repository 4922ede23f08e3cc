// Istio's security API (security.istio.io/v1) as TypeScript types: who may
// talk to a workload (PeerAuthentication, AuthorizationPolicy) and which end
// user tokens it accepts (RequestAuthentication). Field names are Istio's so
// that users' YAML maps one to one.
import type { Resource } from './resource.ts';

/** Istio's WorkloadSelector: the workloads (or gateways) in the policy's namespace whose labels include these. */
export interface WorkloadSelector {
  matchLabels?: Record<string, string>;
}

/** Istio's PolicyTargetReference (Gateway API style); only Gateway/Service kinds are meaningful. */
export interface PolicyTargetReference {
  group?: string;
  kind: string;
  name: string;
  namespace?: string;
}

export type MtlsMode = 'UNSET' | 'DISABLE' | 'PERMISSIVE' | 'STRICT';

export interface PeerAuthenticationSpec {
  selector?: WorkloadSelector;
  mtls?: { mode?: MtlsMode };
  /** Workload (target) port → mode; only with a selector, as Istio. */
  portLevelMtls?: Record<string, { mode?: MtlsMode }>;
}

export type AuthorizationAction = 'ALLOW' | 'DENY' | 'AUDIT' | 'CUSTOM';

export interface AuthorizationSource {
  principals?: string[];
  notPrincipals?: string[];
  requestPrincipals?: string[];
  notRequestPrincipals?: string[];
  namespaces?: string[];
  notNamespaces?: string[];
  ipBlocks?: string[];
  notIpBlocks?: string[];
  remoteIpBlocks?: string[];
  notRemoteIpBlocks?: string[];
}

export interface AuthorizationOperation {
  hosts?: string[];
  notHosts?: string[];
  ports?: string[];
  notPorts?: string[];
  methods?: string[];
  notMethods?: string[];
  paths?: string[];
  notPaths?: string[];
}

export interface AuthorizationCondition {
  key: string;
  values?: string[];
  notValues?: string[];
}

export interface AuthorizationRule {
  from?: Array<{ source: AuthorizationSource }>;
  to?: Array<{ operation: AuthorizationOperation }>;
  when?: AuthorizationCondition[];
}

export interface AuthorizationPolicySpec {
  selector?: WorkloadSelector;
  targetRef?: PolicyTargetReference;
  targetRefs?: PolicyTargetReference[];
  action?: AuthorizationAction;
  /** CUSTOM only: the extension provider (a registered policy adapter) that decides. */
  provider?: { name: string };
  rules?: AuthorizationRule[];
}

export interface JwtHeader {
  name: string;
  /** Stripped from the value before the token is read, e.g. `Bearer `. */
  prefix?: string;
}

export interface JwtRule {
  issuer: string;
  audiences?: string[];
  jwksUri?: string;
  /** Inline JSON Web Key Set (a JSON document as a string). */
  jwks?: string;
  fromHeaders?: JwtHeader[];
  fromParams?: string[];
  fromCookies?: string[];
  outputPayloadToHeader?: string;
  forwardOriginalToken?: boolean;
  outputClaimToHeaders?: Array<{ header: string; claim: string }>;
  timeout?: string;
}

export interface RequestAuthenticationSpec {
  selector?: WorkloadSelector;
  targetRef?: PolicyTargetReference;
  targetRefs?: PolicyTargetReference[];
  jwtRules?: JwtRule[];
}

export type PeerAuthentication = Resource<'PeerAuthentication', PeerAuthenticationSpec>;
export type AuthorizationPolicy = Resource<'AuthorizationPolicy', AuthorizationPolicySpec>;
export type RequestAuthentication = Resource<'RequestAuthentication', RequestAuthenticationSpec>;

/**
 * Condition keys Istio's AuthorizationPolicy understands (`when[].key`);
 * the bracketed ones take a name: `request.headers[x-token]`.
 */
export const CONDITION_KEYS = [
  'request.headers',
  'source.ip',
  'remote.ip',
  'source.namespace',
  'source.principal',
  'request.auth.principal',
  'request.auth.audiences',
  'request.auth.presenter',
  'request.auth.claims',
  'destination.ip',
  'destination.port',
  'connection.sni',
] as const;

/** Keys written `key[name]`. */
export const BRACKETED_CONDITION_KEYS: ReadonlySet<string> = new Set(['request.headers', 'request.auth.claims']);

/** A parsed `when[].key`: its base and the bracketed names (`request.auth.claims[groups]` → ['groups']). */
export interface ConditionKey {
  base: string;
  args: string[];
}

const KEY_SHAPE = /^([a-z.]+)((?:\[[^[\]]+\])*)$/;

/** Parses a condition key; undefined when it is not one Istio knows (or lacks/has a stray `[name]`). */
export function parseConditionKey(key: string): ConditionKey | undefined {
  const m = KEY_SHAPE.exec(key);
  if (m === null) return undefined;
  const base = m[1];
  if (!(CONDITION_KEYS as readonly string[]).includes(base)) return undefined;
  const args = m[2] === '' ? [] : m[2].slice(1, -1).split('][');
  if (BRACKETED_CONDITION_KEYS.has(base) !== (args.length > 0)) return undefined;
  if (base === 'request.headers' && args.length !== 1) return undefined;
  return { base, args };
}

/** Istio's string pattern check: `*` alone, or one `*` at the start or end (suffix / prefix match). */
export function wildcardProblem(value: string): string | undefined {
  if (value === '') return 'must not be empty';
  const star = value.indexOf('*');
  if (star < 0 || value === '*') return undefined;
  if (value.indexOf('*', star + 1) >= 0) return 'may hold only one "*"';
  if (star !== 0 && star !== value.length - 1) return '"*" may appear only at the start (suffix match) or the end (prefix match)';
  return undefined;
}
