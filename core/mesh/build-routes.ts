// VirtualService HTTP routes → the proxy's plain routes. Everything the proxy
// would otherwise have to interpret per request (which match entries apply to
// this proxy, which host and port a destination means, durations) is decided
// here, once per push.
import type { BuildContext } from './build-context.ts';
import { resolveGatewayRef, visibleService } from './build-context.ts';
import type { IndexedVirtualService } from './build-context.ts';
import { requestCluster } from './build-clusters.ts';
import { compileCors, compileFault, compileRetry, defaultRetryPolicy, percentage } from './build-route-policies.ts';
import { compareStrings, selectorMatches, stringMatcher } from './mesh-match.ts';
import { tryParseDuration } from '../config/duration.ts';
import type { HeaderOperations, HTTPDirectResponse, HTTPMatchRequest, HTTPRoute, HTTPRouteDestination, StringMatch } from '../model/networking.ts';
import type { HeaderMatcher, HeaderMutation, Route, RouteAction, RouteMatch, StringMatcher, WeightedCluster } from '../model/proxy-config.ts';
import { resolveHost } from '../model/service.ts';

/** Where the routes being compiled will run. */
export interface RouteScope {
  /** The service port (sidecar virtual host) or the listener port (gateway). */
  port: number;
  /** `mesh` for a sidecar; the `ns/name` keys of the gateways this route config serves. */
  gateways: ReadonlySet<string>;
}

/** Istio's redirect default (Moved Permanently). */
const DEFAULT_REDIRECT_CODE = 301;

/** Compiles the `http` routes of one VirtualService for one scope, in order. */
export function compileHttpRoutes(ctx: BuildContext, ivs: IndexedVirtualService, scope: RouteScope): Route[] {
  const routes: Route[] = [];
  const http = ivs.vs.spec.http ?? [];
  for (let i = 0; i < http.length; i++) {
    const route = http[i];
    if (!route) continue;
    const match = compileMatches(ctx, ivs, route.match, scope);
    if (match === null) continue;
    routes.push({ name: route.name ?? `${ivs.namespace}/${ivs.vs.metadata.name}#${i}`, match, action: compileAction(ctx, ivs, route, scope) });
  }
  return routes;
}

/** The route a virtual host ends with: everything else goes to the service itself. */
export function defaultRoute(ctx: BuildContext, host: string, port: number): Route {
  // Istio gives the default route its default retry policy too.
  return { name: 'default', match: [], action: { clusters: [{ cluster: requestCluster(ctx, host, port), weight: 100 }], retry: defaultRetryPolicy() } };
}

/**
 * The match entries that apply to this proxy, compiled; `[]` matches everything;
 * null means every entry was for some other proxy, so the route is skipped.
 */
function compileMatches(ctx: BuildContext, ivs: IndexedVirtualService, matches: HTTPMatchRequest[] | undefined, scope: RouteScope): RouteMatch[] | null {
  if (!matches || matches.length === 0) return [];
  const out: RouteMatch[] = [];
  for (const m of matches) {
    if (!m || !matchApplies(ctx, ivs, m, scope)) continue;
    const compiled = compileMatch(m);
    // An entry left with no condition (it only chose this proxy) matches everything: say so canonically.
    if (!hasCondition(compiled)) return [];
    out.push(compiled);
  }
  return out.length ? out : null;
}

function matchApplies(ctx: BuildContext, ivs: IndexedVirtualService, m: HTTPMatchRequest, scope: RouteScope): boolean {
  if (m.sourceLabels && !selectorMatches(m.sourceLabels, ctx.node.labels ?? {})) return false;
  if (m.sourceNamespace !== undefined && m.sourceNamespace !== ctx.node.namespace) return false;
  if (m.port !== undefined && m.port !== scope.port) return false;
  // A match without `gateways` inherits the VirtualService's.
  const gateways = m.gateways?.length ? m.gateways.map((g) => resolveGatewayRef(g, ivs.namespace)) : ivs.gateways;
  return gateways.some((g) => scope.gateways.has(g));
}

function compileMatch(m: HTTPMatchRequest): RouteMatch {
  const out: RouteMatch = {};
  const uri = stringMatcher(m.uri);
  if (uri) out.uri = uri;
  const method = stringMatcher(m.method);
  if (method) out.method = method;
  const authority = stringMatcher(m.authority);
  if (authority) out.authority = authority;
  const scheme = stringMatcher(m.scheme);
  if (scheme) out.scheme = scheme;
  const headers = [...headerMatchers(m.headers, false), ...headerMatchers(m.withoutHeaders, true)];
  if (headers.length) out.headers = headers.sort((a, b) => compareStrings(a.name, b.name) || Number(!!a.invert) - Number(!!b.invert));
  if (m.queryParams) {
    const params: Array<{ name: string; match: StringMatcher }> = [];
    for (const name of Object.keys(m.queryParams).sort(compareStrings)) {
      const match = stringMatcher(m.queryParams[name]);
      // Istio: an empty query matcher means the parameter must be present with any value.
      params.push({ name, match: match ?? { regex: '.*' } });
    }
    if (params.length) out.queryParams = params;
  }
  if (m.ignoreUriCase) out.ignoreUriCase = true;
  // `port` is not carried: the virtual host (sidecar) or the route config (gateway) already is per port.
  return out;
}

function hasCondition(m: RouteMatch): boolean {
  return !!(m.uri || m.method || m.authority || m.scheme || m.headers || m.queryParams);
}

function headerMatchers(headers: Record<string, StringMatch | Record<string, never>> | undefined, invert: boolean): HeaderMatcher[] {
  if (!headers) return [];
  const out: HeaderMatcher[] = [];
  for (const [name, value] of Object.entries(headers)) {
    // HTTP header names are case-insensitive; the proxy sees them lower-cased (as Node delivers them).
    const matcher: HeaderMatcher = { name: name.toLowerCase() };
    const match = stringMatcher(value as StringMatch | undefined);
    if (match) matcher.match = match;
    if (invert) matcher.invert = true;
    out.push(matcher);
  }
  return out;
}

function compileAction(ctx: BuildContext, ivs: IndexedVirtualService, route: HTTPRoute, scope: RouteScope): RouteAction {
  const action: RouteAction = {};
  if (route.redirect) {
    const r = route.redirect;
    const redirect: NonNullable<RouteAction['redirect']> = { code: r.redirectCode ?? DEFAULT_REDIRECT_CODE };
    if (r.uri !== undefined) redirect.uri = r.uri;
    if (r.authority !== undefined) redirect.authority = r.authority;
    if (r.port !== undefined) redirect.port = r.port;
    if (r.scheme !== undefined) redirect.scheme = r.scheme;
    action.redirect = redirect;
  } else if (route.directResponse) {
    action.directResponse = directResponse(route.directResponse);
  } else if (route.route?.some(isDestination)) {
    action.clusters = weightedClusters(ctx, ivs, route.route.filter(isDestination), scope);
  } else {
    // Validation requires a destination or a redirect; should one slip through, fail this route only.
    action.directResponse = { status: 503, body: 'no destination configured for this route' };
  }
  if (route.rewrite && (route.rewrite.uri !== undefined || route.rewrite.authority !== undefined)) {
    const rewrite: NonNullable<RouteAction['rewrite']> = {};
    if (route.rewrite.uri !== undefined) rewrite.uri = route.rewrite.uri;
    if (route.rewrite.authority !== undefined) rewrite.authority = route.rewrite.authority;
    action.rewrite = rewrite;
  }
  const requestHeaders = headerMutation(route.headers?.request);
  if (requestHeaders) action.requestHeaders = requestHeaders;
  const responseHeaders = headerMutation(route.headers?.response);
  if (responseHeaders) action.responseHeaders = responseHeaders;
  if (route.timeout !== undefined) {
    const ms = tryParseDuration(route.timeout);
    if (ms !== undefined) action.timeoutMs = Math.round(ms);
  }
  if (action.clusters) {
    // Retries and mirrors act on forwarded requests; a redirect or direct answer has none.
    const retry = compileRetry(route.retries);
    if (retry) action.retry = retry;
    const mirror = compileMirror(ctx, ivs, route, scope);
    if (mirror) action.mirror = mirror;
  }
  const fault = compileFault(route.fault);
  if (fault) action.fault = fault;
  const cors = compileCors(route.corsPolicy);
  if (cors) action.cors = cors;
  return action;
}

/** `mirror` (+ `mirrorPercentage`) or the first of `mirrors` (validation allows one). */
function compileMirror(ctx: BuildContext, ivs: IndexedVirtualService, route: HTTPRoute, scope: RouteScope): RouteAction['mirror'] {
  const policy = route.mirror ? { destination: route.mirror, percentage: route.mirrorPercentage } : route.mirrors?.[0];
  if (typeof policy?.destination?.host !== 'string') return undefined;
  return { cluster: destinationCluster(ctx, ivs, { destination: policy.destination }, scope), percentage: percentage(policy.percentage) };
}

function directResponse(d: HTTPDirectResponse): NonNullable<RouteAction['directResponse']> {
  const out: NonNullable<RouteAction['directResponse']> = { status: d.status };
  if (d.body && 'string' in d.body) out.body = d.body.string;
  else if (d.body && 'bytes' in d.body) out.body = Buffer.from(d.body.bytes, 'base64').toString('utf8');
  return out;
}

function isDestination(d: HTTPRouteDestination | undefined): d is HTTPRouteDestination {
  return typeof d?.destination?.host === 'string';
}

/** `valid` is non-empty and every entry names a host. */
function weightedClusters(ctx: BuildContext, ivs: IndexedVirtualService, valid: HTTPRouteDestination[], scope: RouteScope): WeightedCluster[] {
  const weights = valid.length === 1 ? [100] : valid.map((d) => (typeof d.weight === 'number' && d.weight > 0 ? d.weight : 0));
  const total = weights.reduce((a, b) => a + b, 0);
  if (total === 0) {
    // Validation rejects this; split evenly rather than send nothing anywhere.
    const share = Math.floor(100 / valid.length);
    for (let i = 0; i < weights.length; i++) weights[i] = share + (i < 100 - share * valid.length ? 1 : 0);
  }
  const out: WeightedCluster[] = [];
  for (let i = 0; i < valid.length; i++) {
    // Istio drops zero-weight destinations: the proxy never picks them, so they need no cluster.
    if (weights[i] === 0) continue;
    const d = valid[i];
    const wc: WeightedCluster = { cluster: destinationCluster(ctx, ivs, d, scope), weight: weights[i] };
    const requestHeaders = headerMutation(d.headers?.request);
    if (requestHeaders) wc.requestHeaders = requestHeaders;
    const responseHeaders = headerMutation(d.headers?.response);
    if (responseHeaders) wc.responseHeaders = responseHeaders;
    out.push(wc);
  }
  return out;
}

function destinationCluster(ctx: BuildContext, ivs: IndexedVirtualService, d: HTTPRouteDestination, scope: RouteScope): string {
  const host = resolveHost(d.destination.host, ivs.namespace, ctx.domain);
  const service = visibleService(ctx, host);
  const port = d.destination.port?.number ?? (service?.ports.length === 1 ? service.ports[0].port : scope.port);
  // An unknown host or subset still gets a (possibly empty) cluster: that route answers 503, the rest keeps working.
  return requestCluster(ctx, host, port, d.destination.subset ?? '');
}

function headerMutation(ops: HeaderOperations | undefined): HeaderMutation | undefined {
  if (!ops) return undefined;
  const m: HeaderMutation = {};
  if (ops.set && Object.keys(ops.set).length) m.set = Object.entries(ops.set).map(([k, v]) => [k, String(v)]);
  if (ops.add && Object.keys(ops.add).length) m.add = Object.entries(ops.add).map(([k, v]) => [k, String(v)]);
  if (ops.remove?.length) m.remove = [...ops.remove];
  return m.set || m.add || m.remove ? m : undefined;
}
