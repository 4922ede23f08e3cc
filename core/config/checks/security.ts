// What the security kinds' schemas cannot say: Istio's wildcard patterns
// (`*` only at an end), CIDRs that parse, condition keys Istio knows with
// values of the right form, a provider exactly when the action is CUSTOM,
// selector or targetRef but not both, inline JWKS that is a usable key set.
import { createPublicKey } from 'node:crypto';
import type { Report, SpecCheck } from './check-context.ts';
import { asArray, asObject, asString, eachEntry, eachObject } from './check-context.ts';
import { isDns1123Label, isIpOrCidr, LABEL_RULE } from '../names.ts';
import { joinField } from '../field-path.ts';
import { CONDITION_KEYS, parseConditionKey, wildcardProblem } from '../../model/security.ts';

const TARGET_KINDS = ['Gateway', 'Service', 'ServiceEntry', 'GatewayClass'];
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const METHOD = /^[A-Z]+$|^\*$/;
const JWK_TYPES = ['RSA', 'EC', 'OKP'];

export const checkPeerAuthentication: SpecCheck = (spec, report) => {
  const selector = asObject(spec.selector);
  if (spec.portLevelMtls !== undefined && !selector?.matchLabels) {
    report('JIBE_ERR_SCHEMA', 'spec.portLevelMtls', 'portLevelMtls needs a selector: port numbers only mean something for the workloads a selector picks');
  }
  eachEntry(spec.portLevelMtls, 'spec.portLevelMtls', (key, _v, field) => {
    if (!/^\d{1,5}$/.test(key) || Number(key) < 1 || Number(key) > 65535) report('JIBE_ERR_SCHEMA', field, `port ${JSON.stringify(key)} must be a port number (1-65535)`);
  });
  checkSelector(spec.selector, report);
};

export const checkAuthorizationPolicy: SpecCheck = (spec, report) => {
  checkSelector(spec.selector, report);
  checkTargets(spec, report);
  const action = asString(spec.action) ?? 'ALLOW';
  const provider = asObject(spec.provider);
  if (action === 'CUSTOM' && !provider) {
    report('JIBE_ERR_SCHEMA', 'spec.provider', 'action CUSTOM needs provider.name: the policy adapter (extension provider) that decides');
  } else if (action !== 'CUSTOM' && spec.provider !== undefined) {
    report('JIBE_ERR_SCHEMA', 'spec.provider', `provider is used only with action CUSTOM, not ${action}`);
  }
  if (action === 'CUSTOM' && spec.rules === undefined) {
    // Istio: a CUSTOM policy without rules would match nothing; say so instead of silently doing nothing.
    report('JIBE_ERR_SCHEMA', 'spec.rules', 'a CUSTOM policy needs rules saying which requests the provider checks (use rules: [{}] for all)');
  }
  eachObject(spec.rules, 'spec.rules', (rule, field) => {
    eachObject(rule.from, `${field}.from`, (from, f) => checkSource(asObject(from.source), `${f}.source`, report));
    eachObject(rule.to, `${field}.to`, (to, f) => checkOperation(asObject(to.operation), `${f}.operation`, report));
    eachObject(rule.when, `${field}.when`, (cond, f) => checkCondition(cond, f, report));
  });
};

export const checkRequestAuthentication: SpecCheck = (spec, report) => {
  checkSelector(spec.selector, report);
  checkTargets(spec, report);
  const issuers = new Map<string, number>();
  eachObject(spec.jwtRules, 'spec.jwtRules', (rule, field, i) => {
    const issuer = asString(rule.issuer);
    if (issuer !== undefined) {
      const first = issuers.get(issuer);
      if (first !== undefined) report('JIBE_ERR_SCHEMA', `${field}.issuer`, `issuer ${JSON.stringify(issuer)} is also configured at spec.jwtRules[${first}]`);
      else issuers.set(issuer, i);
    }
    if (rule.jwks !== undefined && rule.jwksUri !== undefined) {
      report('JIBE_ERR_SCHEMA', field, 'set one of jwks (inline key set) or jwksUri, not both');
    }
    const uri = asString(rule.jwksUri);
    if (uri !== undefined && !isHttpUrl(uri)) report('JIBE_ERR_SCHEMA', `${field}.jwksUri`, `jwksUri ${JSON.stringify(uri)} must be an http:// or https:// URL`);
    if (rule.jwks === undefined && rule.jwksUri === undefined && issuer !== undefined && !isHttpUrl(issuer)) {
      report('JIBE_ERR_SCHEMA', `${field}.jwksUri`, 'set jwksUri or jwks: the keys are discovered from the issuer only when the issuer is an http(s) URL (OpenID discovery)');
    }
    const jwks = asString(rule.jwks);
    if (jwks !== undefined) {
      const problem = jwksProblem(jwks);
      if (problem) report('JIBE_ERR_SCHEMA', `${field}.jwks`, problem);
    }
    eachObject(rule.fromHeaders, `${field}.fromHeaders`, (h, f) => {
      const name = asString(h.name);
      if (name !== undefined && !HEADER_NAME.test(name)) report('JIBE_ERR_SCHEMA', `${f}.name`, `invalid header name ${JSON.stringify(name)}`);
    });
    eachObject(rule.outputClaimToHeaders, `${field}.outputClaimToHeaders`, (h, f) => {
      const name = asString(h.header);
      if (name !== undefined && !HEADER_NAME.test(name)) report('JIBE_ERR_SCHEMA', `${f}.header`, `invalid header name ${JSON.stringify(name)}`);
    });
    const out = asString(rule.outputPayloadToHeader);
    if (out !== undefined && out !== '' && !HEADER_NAME.test(out)) report('JIBE_ERR_SCHEMA', `${field}.outputPayloadToHeader`, `invalid header name ${JSON.stringify(out)}`);
  });
};

function checkSelector(value: unknown, report: Report): void {
  eachEntry(asObject(value)?.matchLabels, 'spec.selector.matchLabels', (key, _v, field) => {
    if (key === '') report('JIBE_ERR_SCHEMA', field, 'label keys must not be empty');
  });
}

/** Istio: a policy picks workloads by selector or attaches to resources by targetRef(s), never both. */
function checkTargets(spec: Record<string, unknown>, report: Report): void {
  if (spec.targetRef !== undefined && spec.targetRefs !== undefined) report('JIBE_ERR_SCHEMA', 'spec.targetRefs', 'set targetRef or targetRefs, not both');
  if (spec.selector !== undefined && (spec.targetRef !== undefined || spec.targetRefs !== undefined)) {
    report('JIBE_ERR_SCHEMA', 'spec.selector', 'selector and targetRef are mutually exclusive: pick workloads by labels or attach to a Gateway/Service, not both');
  }
  const refs = spec.targetRef !== undefined ? [['spec.targetRef', spec.targetRef]] : asArray(spec.targetRefs).map((r, i) => [`spec.targetRefs[${i}]`, r]);
  for (const [field, ref] of refs as Array<[string, unknown]>) {
    const kind = asString(asObject(ref)?.kind);
    if (kind !== undefined && !TARGET_KINDS.includes(kind)) report('JIBE_ERR_SCHEMA', `${field}.kind`, `targetRef kind ${JSON.stringify(kind)} is not supported (use one of: ${TARGET_KINDS.join(', ')})`);
  }
}

function checkPatterns(list: unknown, field: string, report: Report, what: string): void {
  asArray(list).forEach((v, i) => {
    if (typeof v !== 'string') return;
    const problem = wildcardProblem(v);
    if (problem) report('JIBE_ERR_SCHEMA', `${field}[${i}]`, `invalid ${what} ${JSON.stringify(v)}: ${problem}`);
  });
}

function checkIpBlocks(list: unknown, field: string, report: Report): void {
  asArray(list).forEach((v, i) => {
    if (typeof v === 'string' && !isIpOrCidr(v)) report('JIBE_ERR_SCHEMA', `${field}[${i}]`, `invalid IP block ${JSON.stringify(v)} (use an address like 10.1.2.3 or a CIDR like 10.0.0.0/16)`);
  });
}

function checkPorts(list: unknown, field: string, report: Report): void {
  asArray(list).forEach((v, i) => {
    if (typeof v === 'string' && !isPortString(v)) report('JIBE_ERR_SCHEMA', `${field}[${i}]`, `invalid port ${JSON.stringify(v)} (a port number 1-65535, as a string)`);
  });
}

function checkSource(source: Record<string, unknown> | undefined, field: string, report: Report): void {
  if (!source) return;
  if (Object.keys(source).length === 0) report('JIBE_ERR_SCHEMA', field, 'source must set at least one field (leave out `from` to match any source)');
  for (const k of ['principals', 'notPrincipals', 'requestPrincipals', 'notRequestPrincipals']) checkPatterns(source[k], `${field}.${k}`, report, 'principal');
  for (const k of ['namespaces', 'notNamespaces']) {
    checkPatterns(source[k], `${field}.${k}`, report, 'namespace');
    asArray(source[k]).forEach((v, i) => {
      if (typeof v === 'string' && !v.includes('*') && !isDns1123Label(v)) report('JIBE_ERR_SCHEMA', `${field}.${k}[${i}]`, `invalid namespace ${JSON.stringify(v)}: use ${LABEL_RULE}`);
    });
  }
  for (const k of ['ipBlocks', 'notIpBlocks', 'remoteIpBlocks', 'notRemoteIpBlocks']) checkIpBlocks(source[k], `${field}.${k}`, report);
}

function checkOperation(op: Record<string, unknown> | undefined, field: string, report: Report): void {
  if (!op) return;
  if (Object.keys(op).length === 0) report('JIBE_ERR_SCHEMA', field, 'operation must set at least one field (leave out `to` to match any operation)');
  for (const k of ['hosts', 'notHosts']) checkPatterns(op[k], `${field}.${k}`, report, 'host');
  for (const k of ['ports', 'notPorts']) checkPorts(op[k], `${field}.${k}`, report);
  for (const k of ['methods', 'notMethods']) {
    asArray(op[k]).forEach((v, i) => {
      if (typeof v === 'string' && !METHOD.test(v)) report('JIBE_ERR_SCHEMA', `${field}.${k}[${i}]`, `invalid method ${JSON.stringify(v)} (an upper-case HTTP method such as GET)`);
    });
  }
  for (const k of ['paths', 'notPaths']) {
    asArray(op[k]).forEach((v, i) => {
      if (typeof v !== 'string') return;
      const problem = v.includes('{') ? pathTemplateProblem(v) : wildcardProblem(v);
      if (problem) report('JIBE_ERR_SCHEMA', `${field}.${k}[${i}]`, `invalid path ${JSON.stringify(v)}: ${problem}`);
    });
  }
}

function checkCondition(cond: Record<string, unknown>, field: string, report: Report): void {
  const key = asString(cond.key);
  if (cond.values === undefined && cond.notValues === undefined) report('JIBE_ERR_SCHEMA', field, 'a condition needs values or notValues');
  if (key === undefined) return;
  const parsed = parseConditionKey(key);
  if (!parsed) {
    report('JIBE_ERR_SCHEMA', `${field}.key`, `unknown condition key ${JSON.stringify(key)} (Istio's keys: ${CONDITION_KEYS.map((k) => (k === 'request.headers' || k === 'request.auth.claims' ? `${k}[name]` : k)).join(', ')})`);
    return;
  }
  for (const list of ['values', 'notValues']) {
    asArray(cond[list]).forEach((v, i) => {
      if (typeof v !== 'string') return;
      const f = joinField(`${field}.${list}`, i);
      switch (parsed.base) {
        case 'source.ip':
        case 'remote.ip':
        case 'destination.ip':
          if (!isIpOrCidr(v)) report('JIBE_ERR_SCHEMA', f, `invalid IP block ${JSON.stringify(v)} for ${key}`);
          break;
        case 'destination.port':
          if (!isPortString(v)) report('JIBE_ERR_SCHEMA', f, `invalid port ${JSON.stringify(v)} for ${key}`);
          break;
        default: {
          const problem = wildcardProblem(v);
          if (problem) report('JIBE_ERR_SCHEMA', f, `invalid value ${JSON.stringify(v)} for ${key}: ${problem}`);
        }
      }
    });
  }
}

function isPortString(v: string): boolean {
  return /^\d{1,5}$/.test(v) && Number(v) >= 1 && Number(v) <= 65535;
}

function isHttpUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '';
  } catch {
    return false;
  }
}

/** Istio path templates: `{*}` is one segment, `{**}` any rest and must come last; each operator fills a whole segment. */
export function pathTemplateProblem(path: string): string | undefined {
  if (!path.startsWith('/')) return 'a path template must start with "/"';
  const segments = path.slice(1).split('/');
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i];
    if (!s.includes('{') && !s.includes('}')) continue;
    if (s !== '{*}' && s !== '{**}') return `segment ${JSON.stringify(s)}: an operator ({*} or {**}) must be a whole segment`;
    if (s === '{**}' && i !== segments.length - 1) return '{**} may only be the last segment';
  }
  if (path.replace(/\{\*\*?\}/g, '').includes('*')) return 'a path template cannot also use a bare "*"';
  return undefined;
}

function jwksProblem(text: string): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    return `jwks is not valid JSON: ${(e as Error).message}`;
  }
  const keys = asObject(parsed)?.keys;
  if (!Array.isArray(keys) || keys.length === 0) return 'jwks must be a JSON Web Key Set: an object with a non-empty "keys" list';
  for (let i = 0; i < keys.length; i++) {
    const jwk = asObject(keys[i]);
    if (!jwk) return `jwks keys[${i}] is not an object`;
    if (!JWK_TYPES.includes(String(jwk.kty))) return `jwks keys[${i}]: kty ${JSON.stringify(jwk.kty)} is not one of ${JWK_TYPES.join(', ')}`;
    if (jwk.d !== undefined) return `jwks keys[${i}] holds a private key ("d"); publish only public keys`;
    try {
      createPublicKey({ key: jwk as never, format: 'jwk' });
    } catch (e) {
      return `jwks keys[${i}] is not a usable public key: ${(e as Error).message}`;
    }
  }
  return undefined;
}
