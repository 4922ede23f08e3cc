// An ingress gateway's config: a listener per server port of the Gateways that
// select it, a route config per port built from the VirtualServices bound to
// those Gateways, and only the clusters those routes reach.
import type { BuildContext, IndexedVirtualService } from './build-context.ts';
import { compileGatewayTls } from './build-tls.ts';
import { createBuildContext, gatewayKey } from './build-context.ts';
import { buildRequestedClusters } from './build-clusters.ts';
import { compileHttpRoutes } from './build-routes.ts';
import { gatewayWithSecurity } from './build-security.ts';
import { compareStrings, hostsIntersect, isExportedTo, namespaceOf, narrowerHost, selectorMatches } from './mesh-match.ts';
import type { MeshSnapshot } from './mesh-snapshot.ts';
import type { Gateway, Server } from '../model/networking.ts';
import type { ListenerResource, ProxyNode, ProxyResource, RouteConfigResource, Route, VirtualHost } from '../model/proxy-config.ts';

/** Server protocols served by the HTTP listener; TLS termination comes with certificates. */
const HTTP_SERVER_PROTOCOLS = new Set(['HTTP', 'HTTPS', 'HTTP2', 'GRPC']);

interface PortServer {
  gateway: Gateway;
  key: string;
  namespace: string;
  server: Server;
}

export function buildGatewayConfig(snapshot: MeshSnapshot, node: ProxyNode): ProxyResource[] {
  const ctx = createBuildContext(snapshot, node);
  const byPort = new Map<number, PortServer[]>();
  for (const gateway of ctx.index.gateways) {
    if (!selectorMatches(gateway.spec?.selector, node.labels ?? {})) continue;
    const key = gatewayKey(gateway);
    for (const server of gateway.spec.servers ?? []) {
      if (!server?.port) continue;
      // SIMPLE / MUTUAL are terminated here; PASSTHROUGH and the mesh-internal modes are not served by an HTTP listener.
      const tlsMode = server.tls?.mode;
      if (tlsMode !== undefined && tlsMode !== 'SIMPLE' && tlsMode !== 'MUTUAL') continue;
      if (!HTTP_SERVER_PROTOCOLS.has((server.port.protocol ?? '').toUpperCase())) continue;
      let list = byPort.get(server.port.number);
      if (!list) byPort.set(server.port.number, (list = []));
      list.push({ gateway, key, namespace: namespaceOf(gateway), server });
    }
  }
  const out: ProxyResource[] = [];
  for (const port of [...byPort.keys()].sort((a, b) => a - b)) {
    const servers = byPort.get(port)!;
    const name = `gateway|${port}`;
    // Servers sharing a port share one socket; the oldest-named Gateway's bind address decides.
    const listener: ListenerResource = { type: 'listener', name, direction: 'gateway', address: servers[0].server.bind ?? '0.0.0.0', port, protocol: 'http', routeConfig: name };
    // One certificate per port (no SNI selection between servers): the first server with TLS decides.
    const tls = servers.map((s) => compileGatewayTls(s.server, { credentials: snapshot.credentials, proxyNamespace: node.namespace, gatewayNamespace: s.namespace })).find((t) => t !== undefined);
    if (tls) listener.tls = tls;
    out.push(listener, buildPortRouteConfig(ctx, name, port, servers));
  }
  out.push(...buildRequestedClusters(ctx));
  return gatewayWithSecurity(snapshot, node, out, [...new Set([...byPort.values()].flat().map((s) => s.key))]);
}

/** What one VirtualService contributes to one domain: its routes, as seen through these gateways. */
interface Contribution {
  ivs: IndexedVirtualService;
  gateways: Set<string>;
}

function buildPortRouteConfig(ctx: BuildContext, name: string, port: number, servers: PortServer[]): RouteConfigResource {
  // Istio merges the VirtualServices that share a host on a gateway: oldest first, routes concatenated.
  const byDomain = new Map<string, Contribution[]>();
  for (const ivs of ctx.index.virtualServices) {
    if (!ivs.vs.spec.http?.length) continue;
    if (!isExportedTo(ivs.vs.spec.exportTo, ivs.namespace, ctx.node.namespace)) continue;
    for (const ps of servers) {
      if (!ivs.gateways.includes(ps.key)) continue;
      for (const domain of intersectingHosts(ivs, ps)) {
        let list = byDomain.get(domain);
        if (!list) byDomain.set(domain, (list = []));
        let contribution = list.find((c) => c.ivs === ivs);
        if (!contribution) list.push((contribution = { ivs, gateways: new Set() }));
        contribution.gateways.add(ps.key);
      }
    }
  }
  // Domains with the same contributions share one virtual host.
  const groups = new Map<string, { contributions: Contribution[]; domains: string[] }>();
  for (const [domain, contributions] of byDomain) {
    const signature = contributions.map((c) => `${c.ivs.namespace}/${c.ivs.vs.metadata.name}@${[...c.gateways].sort(compareStrings).join(',')}`).join('+');
    let group = groups.get(signature);
    if (!group) groups.set(signature, (group = { contributions, domains: [] }));
    group.domains.push(domain);
  }
  const virtualHosts: VirtualHost[] = [];
  const usedNames = new Set<string>();
  for (const signature of [...groups.keys()].sort(compareStrings)) {
    const group = groups.get(signature)!;
    const routes: Route[] = [];
    for (const c of group.contributions) routes.push(...compileHttpRoutes(ctx, c.ivs, { port, gateways: c.gateways }));
    let vhName = group.contributions.map((c) => `${c.ivs.namespace}/${c.ivs.vs.metadata.name}`).join('+');
    // The same VirtualServices seen through different gateways on one port need distinct names.
    if (usedNames.has(vhName)) vhName = signature;
    usedNames.add(vhName);
    const domains: string[] = [];
    for (const d of group.domains.sort(compareStrings)) {
      domains.push(d);
      if (d !== '*') domains.push(`${d}:${port}`);
    }
    virtualHosts.push({ name: vhName, domains, routes });
  }
  virtualHosts.sort((a, b) => compareStrings(a.name, b.name));
  return { type: 'route', name, virtualHosts };
}

/**
 * The VirtualService's hosts this server admits, narrowed to what a request must
 * carry. Server hosts are `host` or `ns/host`; `ns` may be `*` (any), `.` (the
 * Gateway's namespace) or a name, and is checked against the VirtualService's namespace.
 */
function intersectingHosts(ivs: IndexedVirtualService, ps: PortServer): string[] {
  const out: string[] = [];
  for (const serverHost of ps.server.hosts ?? []) {
    const slash = serverHost.indexOf('/');
    const ns = slash >= 0 ? serverHost.slice(0, slash) : '*';
    const host = slash >= 0 ? serverHost.slice(slash + 1) : serverHost;
    if (ns !== '*' && (ns === '.' ? ps.namespace : ns) !== ivs.namespace) continue;
    for (const vsHost of ivs.vs.spec.hosts ?? []) {
      if (hostsIntersect(vsHost, host)) out.push(narrowerHost(vsHost, host).toLowerCase());
    }
  }
  return out;
}
