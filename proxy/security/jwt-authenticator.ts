// RequestAuthentication on one listener: finds a token where the rules say
// (headers with prefix, query parameters, cookies), picks the rule of its
// issuer, verifies it and exposes its claims to authorization. A request
// without a token passes (AuthorizationPolicy decides whether one is needed);
// a present but invalid token is refused (401), as Istio.
import type { CompiledJwtRule } from '../../core/model/proxy-config.ts';
import { cookieValue } from '../cluster/load-balancer-ring-hash.ts';
import { decodeJwt, JwtError, parseJwks, verifyClaims, verifySignature } from './jwt-verify.ts';
import type { DecodedJwt, Jwk } from './jwt-verify.ts';
import { discoverJwksUri } from './jwks-cache.ts';
import type { JwksCache } from './jwks-cache.ts';
import type { RequestAttributes } from './request-attributes.ts';

const DEFAULT_TIMEOUT_MS = 5000;

interface RuleState {
  rule: CompiledJwtRule;
  inline: Jwk[] | undefined;
  headers: Array<{ name: string; prefix: string }>;
  jwksUri: string | undefined;
}

/** undefined: passed (with or without a token); a string: refused with this message. */
export type JwtOutcome = string | undefined;

export class JwtAuthenticator {
  private readonly rules: RuleState[];
  // Every rule reading a token location, by header / query parameter / cookie name: Envoy accepts a token there from any of them.
  private readonly byHeader = new Map<string, RuleState[]>();
  private readonly byParam = new Map<string, RuleState[]>();
  private readonly byCookie = new Map<string, RuleState[]>();
  private readonly cache: JwksCache;
  private readonly nowSeconds: () => number;

  /** @throws Error when an inline JWKS is unusable (the config is refused). */
  constructor(rules: readonly CompiledJwtRule[], cache: JwksCache, nowSeconds: () => number = () => Date.now() / 1000) {
    this.cache = cache;
    this.nowSeconds = nowSeconds;
    this.rules = rules.map((rule) => {
      let inline: Jwk[] | undefined;
      if (rule.jwks !== undefined) {
        try {
          inline = parseJwks(rule.jwks);
        } catch (e) {
          throw new Error(`${rule.name}: ${(e as Error).message}`);
        }
      }
      return { rule, inline, headers: rule.fromHeaders.map((h) => ({ name: h.name.toLowerCase(), prefix: h.prefix ?? '' })), jwksUri: rule.jwksUri };
    });
    const add = (at: Map<string, RuleState[]>, name: string, state: RuleState) => {
      const list = at.get(name);
      if (list === undefined) at.set(name, [state]);
      else if (!list.includes(state)) list.push(state);
    };
    for (const state of this.rules) {
      for (const h of state.headers) add(this.byHeader, h.name, state);
      for (const p of state.rule.fromParams) add(this.byParam, p, state);
      for (const c of state.rule.fromCookies ?? []) add(this.byCookie, c, state);
    }
  }

  authenticate(a: RequestAttributes): JwtOutcome | Promise<JwtOutcome> {
    const found = this.findToken(a);
    if (found === undefined) return undefined;
    let jwt: DecodedJwt;
    try {
      jwt = decodeJwt(found.token);
    } catch (e) {
      return (e as Error).message;
    }
    const state = this.rules.find((r) => r.rule.issuer === jwt.payload.iss && found.rules.includes(r));
    if (state === undefined) return 'Jwt issuer is not configured';
    try {
      verifyClaims(jwt.payload, state.rule.issuer, state.rule.audiences, this.nowSeconds());
    } catch (e) {
      return (e as Error).message;
    }
    const keys = state.inline ?? (state.jwksUri !== undefined ? this.cache.peek(state.jwksUri) : undefined);
    if (keys !== undefined && (state.inline !== undefined || hasKid(keys, jwt))) return this.finish(a, state, jwt, found, keys);
    return this.fetchAndFinish(a, state, jwt, found, keys !== undefined);
  }

  private async fetchAndFinish(a: RequestAttributes, state: RuleState, jwt: DecodedJwt, found: FoundToken, missingKid: boolean): Promise<JwtOutcome> {
    const timeout = state.rule.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    try {
      state.jwksUri ??= await discoverJwksUri(state.rule.issuer, timeout);
      const keys = await this.cache.get(state.jwksUri, timeout, missingKid);
      return this.finish(a, state, jwt, found, keys);
    } catch (e) {
      return e instanceof JwtError ? e.message : 'Jwks remote fetch is failed';
    }
  }

  private finish(a: RequestAttributes, state: RuleState, jwt: DecodedJwt, found: FoundToken, keys: Jwk[]): JwtOutcome {
    try {
      verifySignature(jwt, keys);
    } catch (e) {
      return (e as Error).message;
    }
    const p = jwt.payload;
    a.claims = p;
    a.requestPrincipal = `${String(p.iss)}/${typeof p.sub === 'string' ? p.sub : ''}`;
    const raw = a.ex.down.rawHeaders;
    if (!state.rule.forwardOriginalToken && found.header !== undefined) removeHeader(raw, found.header);
    if (state.rule.outputPayloadToHeader !== undefined) setHeader(raw, state.rule.outputPayloadToHeader, jwt.payloadSegment);
    for (const h of state.rule.outputClaimToHeaders ?? []) {
      const v = p[h.claim];
      if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') setHeader(raw, h.header, String(v));
    }
    return undefined;
  }

  /** The first token in rule order; `rules` lists every rule reading that location (Envoy accepts any of them). */
  private findToken(a: RequestAttributes): FoundToken | undefined {
    for (const s of this.rules) {
      for (const h of s.headers) {
        const v = a.header(h.name);
        if (v === undefined) continue;
        if (h.prefix !== '' && !v.startsWith(h.prefix)) continue;
        const token = v.slice(h.prefix.length).trim();
        return { token, header: h.name, rules: this.byHeader.get(h.name)! };
      }
      for (const param of s.rule.fromParams) {
        const v = a.ex.queryParam(param);
        if (v !== undefined && v !== '') return { token: v, header: undefined, rules: this.byParam.get(param)! };
      }
      for (const cookie of s.rule.fromCookies ?? []) {
        const v = cookieValue(a.header('cookie'), cookie);
        if (v !== undefined && v !== '') return { token: v, header: undefined, rules: this.byCookie.get(cookie)! };
      }
    }
    return undefined;
  }
}

interface FoundToken {
  token: string;
  header: string | undefined;
  rules: RuleState[];
}

function hasKid(keys: Jwk[], jwt: DecodedJwt): boolean {
  const kid = jwt.header.kid;
  return typeof kid !== 'string' || keys.some((k) => k.kid === kid);
}

function removeHeader(raw: string[], lowerName: string): void {
  for (let i = raw.length - 2; i >= 0; i -= 2) if (raw[i].toLowerCase() === lowerName) raw.splice(i, 2);
}

function setHeader(raw: string[], name: string, value: string): void {
  removeHeader(raw, name.toLowerCase());
  raw.push(name, value);
}
