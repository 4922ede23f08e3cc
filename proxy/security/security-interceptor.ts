// Security on the inbound path, as one interceptor: RequestAuthentication
// (a present but invalid JWT → 401), then AuthorizationPolicy in Istio's
// order — CUSTOM (a policy adapter decides), DENY, ALLOW — with 403
// `RBAC: access denied` (gRPC clients get UNAUTHENTICATED / PERMISSION_DENIED
// from the local reply). AUDIT policies only mark the record. Listeners
// without policies pay one map lookup and two field reads per request.
import type { ListenerResource } from '../../core/model/proxy-config.ts';
import type { Exchange } from '../http/exchange.ts';
import { sendLocalReply } from '../http/local-reply.ts';
import type { Dispatch, Interceptor } from '../router/router.ts';
import { compileAuthz, evaluateAuthz, matchingAudit, matchingCustom } from './authz-evaluator.ts';
import type { AuthzEngine } from './authz-evaluator.ts';
import { JwksCache } from './jwks-cache.ts';
import { JwtAuthenticator } from './jwt-authenticator.ts';
import type { PolicyAdapterRegistry, PolicyVerdict } from './policy-adapter.ts';
import { RequestAttributes } from './request-attributes.ts';

export const BODY_RBAC_DENIED = Buffer.from('RBAC: access denied');

export interface SecurityDeps {
  adapters: PolicyAdapterRegistry;
  jwks: JwksCache;
}

export interface ListenerSecurity {
  destinationPort: number;
  engine: AuthzEngine | undefined;
  jwt: JwtAuthenticator | undefined;
}

/** What decided a request, for the access record (`authzRecord`). */
export interface AuthzRecord {
  /** `AuthorizationPolicy/ns/name` (or the CUSTOM provider's policy) that decided; undefined when no policy did. */
  policy: string | undefined;
  result: 'allowed' | 'denied' | 'unauthenticated';
  /** Matching AUDIT policy. */
  audit?: string;
  /** 401: why the token was refused (Envoy's words). */
  reason?: string;
}

const compiled = new WeakMap<ListenerResource, ListenerSecurity>();
const records = new WeakMap<Exchange, AuthzRecord>();

/** The decision recorded for an exchange on a listener with policies. */
export function authzRecord(ex: Exchange): AuthzRecord | undefined {
  return records.get(ex);
}

/**
 * Compiles (once per listener resource) what the interceptor evaluates.
 * @throws Error naming the policy when it cannot be compiled or names an unknown provider — the config is then refused.
 */
export function listenerSecurity(r: ListenerResource, deps: SecurityDeps): ListenerSecurity {
  let s = compiled.get(r);
  if (s === undefined) {
    const engine = r.authz !== undefined ? compileAuthz(r.authz) : undefined;
    checkProviders(r, deps.adapters);
    const jwt = r.jwt?.length ? new JwtAuthenticator(r.jwt, deps.jwks) : undefined;
    s = { destinationPort: r.authz?.destinationPort ?? r.port, engine, jwt };
    compiled.set(r, s);
  }
  return s;
}

/** @throws Error naming the first CUSTOM policy of `r` whose provider is not a registered policy adapter. */
export function checkProviders(r: ListenerResource, adapters: PolicyAdapterRegistry): void {
  for (const p of r.authz?.custom ?? []) {
    if (p.provider === undefined || !adapters.has(p.provider)) {
      throw new Error(`${p.name}: provider ${JSON.stringify(p.provider)} is not a registered policy adapter (registered: ${adapters.names().join(', ') || 'none'})`);
    }
  }
}

export function createSecurityInterceptor(deps: SecurityDeps): Interceptor {
  return (next: Dispatch): Dispatch =>
    (ex: Exchange) => {
      if (ex.listener.kind === 'outbound') return next(ex);
      const r = ex.state.listenersByPort.get(ex.listenerPort)?.resource;
      if (r === undefined || (r.authz === undefined && r.jwt === undefined)) return next(ex);
      const sec = listenerSecurity(r, deps);
      const a = new RequestAttributes(ex, sec.destinationPort);
      a.destinationIp = r.address;
      if (sec.jwt === undefined) return authorize(ex, a, sec.engine, deps, next);
      const outcome = sec.jwt.authenticate(a);
      if (typeof outcome === 'object') {
        outcome.then(
          (o) => afterJwt(ex, a, o, sec, deps, next),
          () => afterJwt(ex, a, 'Jwt verification fails', sec, deps, next),
        );
      } else {
        afterJwt(ex, a, outcome, sec, deps, next);
      }
    };
}

function afterJwt(ex: Exchange, a: RequestAttributes, failure: string | undefined, sec: ListenerSecurity, deps: SecurityDeps, next: Dispatch): void {
  if (ex.done) return;
  if (failure !== undefined) {
    records.set(ex, { policy: undefined, result: 'unauthenticated', reason: failure });
    ex.listener.logger.info({ listener: ex.state.listenersByPort.get(ex.listenerPort)?.resource.name, path: ex.path, reason: failure }, 'jwt rejected');
    // Envoy's jwt_authn answers 401 with the reason and a Bearer challenge.
    sendLocalReply(ex, 401, Buffer.from(failure), 0, ['www-authenticate', `Bearer realm="${ex.scheme}://${ex.authority}${ex.path}", error="invalid_token"`]);
    return;
  }
  authorize(ex, a, sec.engine, deps, next);
}

function authorize(ex: Exchange, a: RequestAttributes, engine: AuthzEngine | undefined, deps: SecurityDeps, next: Dispatch): void {
  if (engine === undefined) return next(ex);
  const custom = matchingCustom(engine, a);
  if (custom !== undefined) {
    let verdict: PolicyVerdict | Promise<PolicyVerdict>;
    try {
      verdict = deps.adapters.get(custom.provider!).check(a);
    } catch {
      verdict = { allow: false };
    }
    const onVerdict = (v: PolicyVerdict) => {
      if (ex.done) return;
      if (!v.allow) return deny(ex, a, custom.name, v.status ?? 403, v.body === undefined ? BODY_RBAC_DENIED : Buffer.from(v.body), v.headers);
      if (v.headers !== undefined) for (const [k, val] of v.headers) ex.down.rawHeaders.push(k, val);
      decide(ex, a, engine, next);
    };
    if (verdict instanceof Promise) verdict.then(onVerdict, () => onVerdict({ allow: false }));
    else onVerdict(verdict);
    return;
  }
  decide(ex, a, engine, next);
}

function decide(ex: Exchange, a: RequestAttributes, engine: AuthzEngine, next: Dispatch): void {
  const d = evaluateAuthz(engine, a);
  const audit = engine.audit.length ? matchingAudit(engine, a) : undefined;
  if (!d.allowed) return deny(ex, a, d.policy, 403, BODY_RBAC_DENIED, undefined, audit);
  if (d.policy !== undefined || audit !== undefined) records.set(ex, { policy: d.policy, result: 'allowed', ...(audit ? { audit } : {}) });
  if (audit !== undefined) ex.listener.logger.info({ path: ex.path, method: ex.method, sourceIp: a.sourceIp, audit, policy: d.policy }, 'authz audit');
  next(ex);
}

function deny(ex: Exchange, a: RequestAttributes, policy: string | undefined, status: number, body: Buffer, headers: Array<[string, string]> | undefined, audit?: string): void {
  records.set(ex, { policy, result: 'denied', ...(audit ? { audit } : {}) });
  ex.listener.logger.info({ path: ex.path, method: ex.method, sourceIp: a.sourceIp, policy: policy ?? '-', status }, 'rbac access denied');
  sendLocalReply(ex, status, body, 0, headers?.flat());
}

/** The shared JWKS cache and adapter registry a proxy's listeners use. */
export function securityDeps(adapters: PolicyAdapterRegistry): SecurityDeps {
  return { adapters, jwks: new JwksCache() };
}
