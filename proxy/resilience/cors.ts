// CORS (Istio's CorsPolicy, Envoy's CORS filter) as a dispatch interceptor.
// A preflight (OPTIONS with Origin and Access-Control-Request-Method) from an
// allowed origin is answered by the proxy itself; an actual request from an
// allowed origin is forwarded and its answer gets the allow-origin, expose
// and credentials headers. Requests from other origins pass through
// untouched (the browser then refuses the answer), as Envoy does.
import type { CorsPolicy } from '../../core/model/proxy-config.ts';
import type { Exchange } from '../http/exchange.ts';
import { sendLocalReply } from '../http/local-reply.ts';
import { compileStringMatcher } from '../router/string-matcher.ts';
import type { StringTest } from '../router/string-matcher.ts';
import type { Dispatch, Interceptor } from '../router/router.ts';

export class CompiledCors {
  private readonly origins: readonly StringTest[];
  /** Preflight answer headers that do not depend on the request. */
  readonly preflightHeaders: readonly string[];
  readonly exposeHeaders: string | undefined;
  readonly allowCredentials: boolean;

  constructor(policy: CorsPolicy) {
    this.origins = policy.allowOrigins.map((m) => compileStringMatcher(m));
    this.allowCredentials = policy.allowCredentials === true;
    this.exposeHeaders = policy.exposeHeaders.length > 0 ? policy.exposeHeaders.join(',') : undefined;
    const h: string[] = [];
    if (policy.allowMethods.length > 0) h.push('access-control-allow-methods', policy.allowMethods.join(','));
    if (policy.allowHeaders.length > 0) h.push('access-control-allow-headers', policy.allowHeaders.join(','));
    if (policy.maxAgeSeconds !== undefined) h.push('access-control-max-age', String(policy.maxAgeSeconds));
    if (this.allowCredentials) h.push('access-control-allow-credentials', 'true');
    this.preflightHeaders = h;
  }

  allows(origin: string): boolean {
    for (let i = 0; i < this.origins.length; i++) if (this.origins[i](origin)) return true;
    return false;
  }
}

export function createCorsInterceptor(): Interceptor {
  return (next: Dispatch): Dispatch =>
    (ex: Exchange): void => {
      const cors = ex.route?.cors;
      if (cors === undefined) {
        next(ex);
        return;
      }
      const origin = ex.header('origin');
      if (origin === undefined || !cors.allows(origin)) {
        next(ex);
        return;
      }
      if (ex.method === 'OPTIONS' && ex.header('access-control-request-method') !== undefined) {
        ex.listener.stats.cors_preflight_answered++;
        sendLocalReply(ex, 200, undefined, 0, ['access-control-allow-origin', origin, ...cors.preflightHeaders]);
        return;
      }
      const extra = (ex.extraResponseHeaders ??= []);
      extra.push('access-control-allow-origin', origin);
      if (cors.allowCredentials) extra.push('access-control-allow-credentials', 'true');
      if (cors.exposeHeaders !== undefined) extra.push('access-control-expose-headers', cors.exposeHeaders);
      next(ex);
    };
}
