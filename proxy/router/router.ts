// The router: virtual host by authority, first matching route, then the
// route's action — a direct response, a redirect, or a cluster (weighted pick,
// then the cluster's balancer picks a healthy host) handed to the dispatch
// chain. Circuit breakers are checked here, after the host is picked and
// before anything is counted against the cluster. Features (rate limit, CORS,
// fault, retry, telemetry) wrap the dispatch function as interceptors, as
// undici's do.
import type { Exchange } from '../http/exchange.ts';
import { BODY_NO_CLUSTER, BODY_NO_HEALTHY_UPSTREAM, BODY_OVERFLOW, sendLocalReply } from '../http/local-reply.ts';
import { ResponseFlag } from '../http/response-flags.ts';
import { matchRoute } from './route-matcher.ts';
import { ROUTE_CLUSTER, ROUTE_DIRECT } from './route-table.ts';
import type { CompiledRedirect, RouteTable } from './route-table.ts';
import { stripPort } from './virtual-host-table.ts';

/** Sends an exchange whose route, cluster and host are chosen. */
export type Dispatch = (ex: Exchange) => void;
export type Interceptor = (next: Dispatch) => Dispatch;

/** The first interceptor is the outermost. */
export function composeDispatch(terminal: Dispatch, interceptors: readonly Interceptor[] = []): Dispatch {
  let dispatch = terminal;
  for (let i = interceptors.length - 1; i >= 0; i--) dispatch = interceptors[i](dispatch);
  return dispatch;
}

export function routeExchange(ex: Exchange, table: RouteTable | undefined, dispatch: Dispatch, random: () => number = Math.random): void {
  const vh = table?.virtualHosts.lookup(ex.authority);
  const route = vh === undefined ? undefined : matchRoute(vh.routes, ex);
  if (route === undefined) {
    sendLocalReply(ex, 404, undefined, ResponseFlag.NR);
    return;
  }
  ex.route = route;
  if (route.kind === ROUTE_DIRECT) {
    sendLocalReply(ex, route.directStatus, route.directBody, 0, undefined, route.responseHeaders[0]);
    return;
  }
  if (route.kind !== ROUTE_CLUSTER) {
    sendLocalReply(ex, route.redirect!.code, undefined, 0, ['location', redirectLocation(ex, route.redirect!)], route.responseHeaders[0]);
    return;
  }
  const index = route.clusters.length === 1 ? 0 : route.pickCluster(random());
  ex.clusterIndex = index;
  const cluster = ex.state.clusters.get(route.clusters[index]);
  if (cluster === undefined) {
    // Validation forbids it; kept so a bug shows as a 503 rather than a crash.
    sendLocalReply(ex, 503, BODY_NO_CLUSTER, ResponseFlag.NC);
    return;
  }
  ex.cluster = cluster;
  const host = cluster.pick(ex);
  if (host === undefined) {
    cluster.stats.upstream_rq_no_healthy++;
    sendLocalReply(ex, 503, BODY_NO_HEALTHY_UPSTREAM, ResponseFlag.UH);
    return;
  }
  // Circuit breakers shed load at once rather than queue it (Envoy: 503, UO).
  if (cluster.circuitBreaker !== undefined && cluster.circuitBreaker.overflows(host)) {
    sendLocalReply(ex, 503, BODY_OVERFLOW, ResponseFlag.UO);
    return;
  }
  ex.host = host;
  host.active++;
  cluster.stats.upstream_rq_total++;
  cluster.stats.upstream_rq_active++;
  dispatch(ex);
}

/** Location of a redirect: each part the redirect sets replaces the request's (query kept unless the new uri has one). */
export function redirectLocation(ex: Exchange, r: CompiledRedirect): string {
  const scheme = r.scheme ?? ex.scheme;
  let authority = r.authority ?? ex.authority;
  if (r.port !== undefined) authority = `${stripPort(authority)}:${r.port}`;
  else if (r.scheme !== undefined && r.scheme !== ex.scheme && r.authority === undefined) authority = stripPort(authority);
  let pathAndQuery: string;
  if (r.uri === undefined) pathAndQuery = ex.pathAndQuery();
  else if (r.uri.includes('?') || ex.query === '') pathAndQuery = r.uri;
  else pathAndQuery = r.uri + '?' + ex.query;
  return `${scheme}://${authority}${pathAndQuery}`;
}
