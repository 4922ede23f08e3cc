// Shape checks of a listener's security fields as they come off the wire
// (untrusted JSON), and the compile check run before a config is swapped in:
// every policy compiles and every CUSTOM provider is a registered adapter, so
// a bad policy NACKs the push instead of failing requests.
import { JibeError } from '../../core/errors/errors.ts';
import type { ProxyResource } from '../../core/model/proxy-config.ts';
import type { SecurityDeps } from './security-interceptor.ts';
import { checkProviders, listenerSecurity } from './security-interceptor.ts';

type Obj = Record<string, unknown>;
type Add = (resource: string, field: string, message: string) => void;

const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);
const isStringList = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');
const ACTIONS = ['custom', 'deny', 'allow', 'audit'] as const;
const MTLS = ['STRICT', 'PERMISSIVE', 'DISABLE'];

export function checkListenerSecurityShape(r: Obj, label: string, problems: { add: Add }): void {
  const add = (field: string, message: string) => problems.add(label, field, message);
  if (r.mtls !== undefined && !MTLS.includes(r.mtls as string)) add('mtls', `mtls must be one of ${MTLS.join(', ')}, not ${JSON.stringify(r.mtls)}`);
  if (r.authz !== undefined) {
    const z = r.authz;
    if (!isObj(z)) return add('authz', 'authz must be an object');
    if (!Number.isInteger(z.destinationPort) || (z.destinationPort as number) < 1 || (z.destinationPort as number) > 65535) add('authz.destinationPort', 'destinationPort must be a port number');
    for (const action of ACTIONS) {
      const list = z[action];
      if (!Array.isArray(list)) {
        add(`authz.${action}`, `${action} must be a list of policies`);
        continue;
      }
      list.forEach((p: unknown, i: number) => checkPolicy(p, `authz.${action}[${i}]`, action === 'custom', add));
    }
  }
  if (r.jwt !== undefined) {
    if (!Array.isArray(r.jwt)) return add('jwt', 'jwt must be a list of rules');
    r.jwt.forEach((j: unknown, i: number) => {
      const at = `jwt[${i}]`;
      if (!isObj(j)) return add(at, 'a jwt rule must be an object');
      if (typeof j.name !== 'string' || typeof j.issuer !== 'string' || j.issuer === '') add(at, 'a jwt rule needs a name and an issuer');
      if (!isStringList(j.audiences) || !isStringList(j.fromParams)) add(at, 'audiences and fromParams must be lists of strings');
      if (j.fromCookies !== undefined && !isStringList(j.fromCookies)) add(`${at}.fromCookies`, 'fromCookies must be a list of strings');
      if (!Array.isArray(j.fromHeaders) || !j.fromHeaders.every((h: unknown) => isObj(h) && typeof h.name === 'string' && h.name !== '' && (h.prefix === undefined || typeof h.prefix === 'string'))) {
        add(`${at}.fromHeaders`, 'fromHeaders must be a list of {name, prefix?}');
      }
      if (typeof j.forwardOriginalToken !== 'boolean') add(`${at}.forwardOriginalToken`, 'forwardOriginalToken must be a boolean');
      if (j.jwks !== undefined && typeof j.jwks !== 'string') add(`${at}.jwks`, 'jwks must be a JSON string');
      if (j.jwksUri !== undefined && (typeof j.jwksUri !== 'string' || !/^https?:\/\//.test(j.jwksUri))) add(`${at}.jwksUri`, 'jwksUri must be an http(s) URL');
      if (j.timeoutMs !== undefined && !(typeof j.timeoutMs === 'number' && j.timeoutMs > 0)) add(`${at}.timeoutMs`, 'timeoutMs must be a positive number');
    });
  }
}

function checkPolicy(p: unknown, at: string, custom: boolean, add: (field: string, message: string) => void): void {
  if (!isObj(p)) return add(at, 'a policy must be an object');
  if (typeof p.name !== 'string' || p.name === '') add(`${at}.name`, 'a policy needs a name');
  if (custom && typeof p.provider !== 'string') add(`${at}.provider`, 'a CUSTOM policy needs a provider');
  if (!Array.isArray(p.rules)) return add(`${at}.rules`, 'rules must be a list');
  p.rules.forEach((rule: unknown, i: number) => {
    const rat = `${at}.rules[${i}]`;
    if (!isObj(rule)) return add(rat, 'a rule must be an object');
    for (const [part, inner] of [['from', 'source'], ['to', 'operation']] as const) {
      if (rule[part] === undefined) continue;
      if (!Array.isArray(rule[part]) || !rule[part].every((e: unknown) => isObj(e) && isObj(e[inner]) && Object.values(e[inner]).every(isStringList))) {
        add(`${rat}.${part}`, `${part} must be a list of {${inner}: {field: [strings]}}`);
      }
    }
    if (rule.when !== undefined) {
      if (!Array.isArray(rule.when) || !rule.when.every((c: unknown) => isObj(c) && typeof c.key === 'string' && (c.values === undefined || isStringList(c.values)) && (c.notValues === undefined || isStringList(c.notValues)))) {
        add(`${rat}.when`, 'when must be a list of {key, values?, notValues?}');
      }
    }
  });
}

/** Compiles every listener's security; @throws JibeError JIBE_ERR_CONFIG_REJECTED naming each listener that cannot be enforced. */
export function compileSecurity(resources: Iterable<ProxyResource>, version: string, deps: SecurityDeps): void {
  const causes: JibeError[] = [];
  for (const r of resources) {
    if (r.type !== 'listener' || (r.authz === undefined && r.jwt === undefined)) continue;
    try {
      listenerSecurity(r, deps);
      // Checked on every update, not only when the listener compiles: the adapters may change under an unchanged listener.
      checkProviders(r, deps.adapters);
    } catch (e) {
      causes.push(new JibeError('JIBE_ERR_CONFIG_REJECTED', (e as Error).message, { resource: `listener/${r.name}` }));
    }
  }
  if (causes.length) {
    throw new JibeError('JIBE_ERR_CONFIG_REJECTED', `config version ${version} rejected: ${causes.map((c) => `${c.details.resource}: ${c.message}`).join('; ')}`, {
      causes,
      hint: 'the proxy keeps serving its previous config',
    });
  }
}
