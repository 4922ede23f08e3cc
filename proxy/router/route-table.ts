// A route config compiled for the request path: virtual hosts in a lookup
// table, routes with compiled matches, weighted clusters with cumulative
// weights, and header mutations merged per weighted cluster. Compiled once per
// change of the route resource; routes name their clusters and the request
// resolves them against the state it started with, so an endpoint change never
// recompiles routes.
import type { FaultPolicy, RouteAction, RouteConfigResource, Route, VirtualHost } from '../../core/model/proxy-config.ts';
import { compileHeaderMutations } from '../http/header-mutation.ts';
import type { CompiledHeaderMutation } from '../http/header-mutation.ts';
import { CompiledCors } from '../resilience/cors.ts';
import { CompiledRetryPolicy } from '../resilience/retry-policy.ts';
import { CompiledMatch } from './route-matcher.ts';
import { VirtualHostTable } from './virtual-host-table.ts';

export const ROUTE_CLUSTER = 0;
export const ROUTE_REDIRECT = 1;
export const ROUTE_DIRECT = 2;

export interface CompiledRedirect {
  code: number;
  scheme: string | undefined;
  authority: string | undefined;
  port: number | undefined;
  uri: string | undefined;
}

export class CompiledRoute {
  readonly name: string;
  readonly virtualHost: string;
  readonly matches: readonly CompiledMatch[];
  readonly kind: 0 | 1 | 2;
  /** Weighted clusters: names, cumulative weights, merged header mutations (parallel arrays). */
  readonly clusters: readonly string[];
  private readonly cumulative: Float64Array;
  private readonly totalWeight: number;
  readonly requestHeaders: readonly CompiledHeaderMutation[];
  readonly responseHeaders: readonly CompiledHeaderMutation[];
  readonly redirect: CompiledRedirect | undefined;
  readonly directStatus: number;
  readonly directBody: Buffer | undefined;
  readonly rewriteUri: string | undefined;
  readonly rewriteAuthority: string | undefined;
  readonly timeoutMs: number;
  /** Resilience features of the route; undefined when the route has none (their interceptors pass through). */
  readonly retry: CompiledRetryPolicy | undefined;
  readonly fault: FaultPolicy | undefined;
  readonly mirror: { cluster: string; percentage: number } | undefined;
  readonly cors: CompiledCors | undefined;

  constructor(route: Route, virtualHost: string) {
    this.name = route.name;
    this.virtualHost = virtualHost;
    this.matches = route.match.map((m) => new CompiledMatch(m));
    const a: RouteAction = route.action;
    this.kind = a.directResponse ? ROUTE_DIRECT : a.redirect ? ROUTE_REDIRECT : ROUTE_CLUSTER;
    const weighted = a.clusters ?? [];
    this.clusters = weighted.map((c) => c.cluster);
    this.cumulative = new Float64Array(weighted.length);
    let sum = 0;
    weighted.forEach((c, i) => (this.cumulative[i] = sum += c.weight));
    this.totalWeight = sum;
    // Redirects and direct responses have no cluster but may still set response headers.
    this.requestHeaders =
      weighted.length > 0 ? weighted.map((c) => compileHeaderMutations(a.requestHeaders, c.requestHeaders)) : [compileHeaderMutations(a.requestHeaders)];
    this.responseHeaders =
      weighted.length > 0 ? weighted.map((c) => compileHeaderMutations(a.responseHeaders, c.responseHeaders)) : [compileHeaderMutations(a.responseHeaders)];
    this.redirect = a.redirect
      ? { code: a.redirect.code, scheme: a.redirect.scheme, authority: a.redirect.authority, port: a.redirect.port, uri: a.redirect.uri }
      : undefined;
    this.directStatus = a.directResponse?.status ?? 0;
    this.directBody = a.directResponse?.body !== undefined ? Buffer.from(a.directResponse.body) : undefined;
    this.rewriteUri = a.rewrite?.uri;
    this.rewriteAuthority = a.rewrite?.authority;
    this.timeoutMs = a.timeoutMs ?? 0;
    this.retry = a.retry !== undefined ? new CompiledRetryPolicy(a.retry) : undefined;
    this.fault = a.fault !== undefined && (a.fault.delay !== undefined || a.fault.abort !== undefined) ? a.fault : undefined;
    this.mirror = a.mirror;
    this.cors = a.cors !== undefined ? new CompiledCors(a.cors) : undefined;
  }

  /** Index of the weighted cluster to use; `r` is one random number in [0, 1). */
  pickCluster(r: number): number {
    const n = this.cumulative.length;
    if (n <= 1) return 0;
    const target = r * this.totalWeight;
    for (let i = 0; i < n - 1; i++) if (target < this.cumulative[i]) return i;
    return n - 1;
  }
}

export class CompiledVirtualHost {
  readonly name: string;
  readonly routes: readonly CompiledRoute[];

  constructor(vh: VirtualHost) {
    this.name = vh.name;
    this.routes = vh.routes.map((r) => new CompiledRoute(r, vh.name));
  }
}

export class RouteTable {
  readonly name: string;
  readonly resource: RouteConfigResource;
  readonly virtualHosts: VirtualHostTable<CompiledVirtualHost>;

  /** Expects a validated resource (domains unique, matchers compile). */
  constructor(resource: RouteConfigResource) {
    this.name = resource.name;
    this.resource = resource;
    this.virtualHosts = new VirtualHostTable();
    for (const vh of resource.virtualHosts) {
      const compiled = new CompiledVirtualHost(vh);
      for (const domain of vh.domains) this.virtualHosts.add(domain, compiled);
    }
  }
}
