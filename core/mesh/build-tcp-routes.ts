// VirtualService `tcp` routes → where a sidecar's outbound TCP listener sends a
// connection. Everything a TCP route can match on except the destination
// address is known when the config is built (the port, the proxy's own
// labels and namespace), so the first applicable route is picked here and the
// proxy only picks a cluster by weight per connection.
import { BlockList, isIP } from 'node:net';
import type { BuildContext, IndexedVirtualService } from './build-context.ts';
import { MESH_GATEWAY, resolveGatewayRef, visibleService } from './build-context.ts';
import { requestCluster } from './build-clusters.ts';
import { selectorMatches } from './mesh-match.ts';
import type { L4MatchAttributes, RouteDestination } from '../model/networking.ts';
import type { WeightedCluster } from '../model/proxy-config.ts';
import { resolveHost } from '../model/service.ts';

/**
 * The clusters for connections to `host:port` whose original destination is
 * one of `addresses` (empty: any address): the first `tcp` route of `ivs` that
 * applies, else the service's own cluster.
 */
export function tcpRouteClusters(ctx: BuildContext, ivs: IndexedVirtualService | undefined, host: string, port: number, addresses: readonly string[]): WeightedCluster[] {
  for (const route of ivs?.vs.spec.tcp ?? []) {
    if (!route?.route?.some(isDestination) || !routeApplies(ctx, ivs!, route.match, port, addresses)) continue;
    const clusters = weighted(ctx, ivs!, route.route.filter(isDestination), port);
    if (clusters.length) return clusters;
  }
  return [{ cluster: requestCluster(ctx, host, port), weight: 100 }];
}

function isDestination(d: RouteDestination | undefined): d is RouteDestination {
  return typeof d?.destination?.host === 'string';
}

/** No match entries: applies; else any entry whose every condition holds. */
function routeApplies(ctx: BuildContext, ivs: IndexedVirtualService, matches: L4MatchAttributes[] | undefined, port: number, addresses: readonly string[]): boolean {
  if (!matches?.length) return true;
  return matches.some((m) => m && matchApplies(ctx, ivs, m, port, addresses));
}

function matchApplies(ctx: BuildContext, ivs: IndexedVirtualService, m: L4MatchAttributes, port: number, addresses: readonly string[]): boolean {
  if (m.port !== undefined && m.port !== port) return false;
  if (m.sourceLabels && !selectorMatches(m.sourceLabels, ctx.node.labels ?? {})) return false;
  if (m.sourceNamespace !== undefined && m.sourceNamespace !== ctx.node.namespace) return false;
  const gateways = m.gateways?.length ? m.gateways.map((g) => resolveGatewayRef(g, ivs.namespace)) : ivs.gateways;
  if (!gateways.includes(MESH_GATEWAY)) return false;
  // The listener stands for these addresses: the route applies when one of them lies in a subnet.
  // A listener for any address cannot be narrowed by subnet, so such an entry does not apply to it.
  if (m.destinationSubnets?.length) return addresses.some((a) => inSubnets(a, m.destinationSubnets!));
  return true;
}

function inSubnets(address: string, subnets: readonly string[]): boolean {
  const slash = address.indexOf('/');
  const ip = slash >= 0 ? address.slice(0, slash) : address;
  const family = isIP(ip);
  if (family === 0) return false;
  const list = new BlockList();
  for (const subnet of subnets) {
    const [net, bits] = subnet.split('/');
    const netFamily = isIP(net);
    if (netFamily !== family) continue;
    if (bits === undefined) list.addAddress(net, family === 4 ? 'ipv4' : 'ipv6');
    else list.addSubnet(net, Number(bits), family === 4 ? 'ipv4' : 'ipv6');
  }
  return list.check(ip, family === 4 ? 'ipv4' : 'ipv6');
}

function weighted(ctx: BuildContext, ivs: IndexedVirtualService, dests: RouteDestination[], port: number): WeightedCluster[] {
  const out: WeightedCluster[] = [];
  for (const d of dests) {
    const weight = dests.length === 1 ? 100 : typeof d.weight === 'number' && d.weight > 0 ? d.weight : 0;
    // Zero-weight destinations are never picked, so they need no cluster (as for http routes).
    if (weight === 0) continue;
    const host = resolveHost(d.destination.host, ivs.namespace, ctx.domain);
    const service = visibleService(ctx, host);
    const destPort = d.destination.port?.number ?? (service?.ports.length === 1 ? service.ports[0].port : port);
    out.push({ cluster: requestCluster(ctx, host, destPort, d.destination.subset ?? ''), weight });
  }
  return out;
}
