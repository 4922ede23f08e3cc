// External authorization over HTTP with Envoy ext_authz HTTP semantics: the
// request's method, path and selected headers go to the authorization
// service (path prefixed, no body); a 2xx answer allows (its selected headers are
// added upstream), anything else denies with the service's status, body and
// selected headers. No answer in time denies (fail closed) unless failOpen.
import type { PolicyAdapter, PolicyVerdict } from './policy-adapter.ts';
import type { RequestAttributes } from './request-attributes.ts';

export interface ExtAuthzOptions {
  /** `http://host:port[/prefix]` of the authorization service. */
  url: string;
  timeoutMs?: number;
  /** Allow when the service cannot be reached or times out (Envoy failure_mode_allow). */
  failOpen?: boolean;
  /** Request headers sent to the service besides the always-sent authorization and host (lower case). */
  includeRequestHeaders?: string[];
  /** Service response headers added upstream on allow. */
  headersToUpstream?: string[];
  /** Service response headers sent to the client on deny (default: all but hop-by-hop). */
  headersToDownstream?: string[];
  /** Status answered when the service cannot be reached and failOpen is off (Istio statusOnError, default 403). */
  statusOnError?: number;
}

const ALWAYS_SENT = ['authorization', 'host'];
// Envoy sends the check with the original method and no body; fetch refuses these methods.
const FETCH_FORBIDDEN = new Set(['CONNECT', 'TRACE', 'TRACK']);
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'upgrade', 'te', 'trailer', 'proxy-connection']);

export function createExtAuthzAdapter(name: string, options: ExtAuthzOptions): PolicyAdapter {
  const base = options.url.replace(/\/$/, '');
  const timeoutMs = options.timeoutMs ?? 600;
  const include = [...new Set([...ALWAYS_SENT, ...(options.includeRequestHeaders ?? []).map((h) => h.toLowerCase())])];
  const toUpstream = (options.headersToUpstream ?? []).map((h) => h.toLowerCase());
  const toDownstream = options.headersToDownstream?.map((h) => h.toLowerCase());
  const failure: PolicyVerdict = options.failOpen ? { allow: true } : { allow: false, status: options.statusOnError ?? 403, body: 'RBAC: access denied' };

  return {
    name,
    async check(a: RequestAttributes): Promise<PolicyVerdict> {
      const headers: Record<string, string> = {};
      for (const h of include) {
        const v = h === 'host' ? a.ex.authority : a.header(h);
        if (v !== undefined && v !== '') headers[h === 'host' ? 'x-forwarded-host' : h] = v;
      }
      headers['x-forwarded-for'] = a.sourceIp;
      if (a.sourcePrincipal !== '') headers['x-forwarded-client-cert'] = `By=;URI=spiffe://${a.sourcePrincipal}`;
      let res: Response;
      try {
        res = await fetch(base + a.ex.pathAndQuery(), { method: FETCH_FORBIDDEN.has(a.method) ? 'POST' : a.method, headers, signal: AbortSignal.timeout(timeoutMs) });
      } catch {
        return failure;
      }
      let body: string;
      try {
        body = await res.text();
      } catch {
        return failure;
      }
      if (res.status >= 200 && res.status < 300) {
        const up: Array<[string, string]> = [];
        for (const h of toUpstream) {
          const v = res.headers.get(h);
          if (v !== null) up.push([h, v]);
        }
        return up.length ? { allow: true, headers: up } : { allow: true };
      }
      const down: Array<[string, string]> = [];
      res.headers.forEach((v, k) => {
        if (HOP_BY_HOP.has(k) || k === 'date' || k === 'server' || k === 'content-type') return;
        if (toDownstream === undefined || toDownstream.includes(k)) down.push([k, v]);
      });
      // Envoy answers 403 when the service's status is not an error status it can pass on.
      const status = res.status >= 400 && res.status <= 599 ? res.status : 403;
      return { allow: false, status, body, headers: down };
    },
  };
}
