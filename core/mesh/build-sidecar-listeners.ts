// A sidecar's listeners. Inbound: one in front of each app port, speaking
// what the service port declares (HTTP, TCP, or sniffed when undeclared), with
// the rate limits of the services it backs. Outbound: virtual listeners of
// the capture port, one per (service, port) over the service's addresses, so a
// connection's original destination picks its service (Envoy's filter chain
// match); HTTP then routes by Host through the `outbound` route config.
import { isIP } from 'node:net';
import type { BuildContext, IndexedVirtualService } from './build-context.ts';
import { isServiceVisible } from './build-context.ts';
import { requestServiceClusters } from './build-clusters.ts';
import { rateLimitsForInbound } from './build-rate-limits.ts';
import { tcpRouteClusters } from './build-tcp-routes.ts';
import { compareStrings } from './mesh-match.ts';
import type { MeshSnapshot } from './mesh-snapshot.ts';
import { meshSettingsOf } from './mesh-settings.ts';
import type { ClusterResource, EndpointsResource, ListenerProtocol, ListenerResource, MeshResource, ProxyResource, RouteConfigResource } from '../model/proxy-config.ts';
import { inboundClusterName, OUTBOUND_ROUTE_CONFIG } from '../model/proxy-config.ts';
import type { Protocol, Service } from '../model/service.ts';
import { isHttp2Protocol, isHttpProtocol } from '../model/service.ts';
import type { Workload } from '../model/workload.ts';

/** Outbound virtual listeners are matched, never bound: their address is a placeholder. */
const ANY_ADDRESS = '0.0.0.0';

/** Istio's listener protocol for a port: HTTP kinds are routed, undeclared ones sniffed, the rest relayed. */
export function listenerProtocol(p: Protocol): ListenerProtocol {
  if (isHttpProtocol(p)) return 'http';
  return p === 'unknown' ? 'auto' : 'tcp';
}

/** Inbound listeners for each app port the sidecar accepts traffic for without capture. */
export function buildInbound(snapshot: MeshSnapshot, workload: Workload): ProxyResource[] {
  const inboundPorts = workload.proxy?.inboundPorts;
  if (!inboundPorts) return [];
  const appPorts = new Set<number>();
  for (const binding of workload.services) for (const target of Object.values(binding.ports)) appPorts.add(target);
  const out: ProxyResource[] = [];
  for (const appPort of [...appPorts].sort((a, b) => a - b)) {
    const listenPort = inboundPorts[appPort];
    if (listenPort === undefined) continue;
    const name = `inbound|${appPort}`;
    const cluster = inboundClusterName(appPort);
    const protocols = appPortProtocols(snapshot, workload, appPort);
    const protocol = combinedProtocol(protocols);
    const listener: ListenerResource = { type: 'listener', name, direction: 'inbound', address: workload.address, port: listenPort, protocol };
    if (protocol !== 'tcp') {
      listener.routeConfig = name;
      const rateLimits = rateLimitsForInbound(snapshot, workload, appPort);
      if (rateLimits.length) listener.rateLimits = rateLimits;
      const routes: RouteConfigResource = {
        type: 'route',
        name,
        virtualHosts: [{ name, domains: ['*'], routes: [{ name: 'default', match: [], action: { clusters: [{ cluster, weight: 100 }] } }] }],
      };
      out.push(routes);
    }
    if (protocol !== 'http') listener.tcpRoute = { clusters: [{ cluster, weight: 100 }] };
    const upstream = protocol === 'http' ? (protocols.every(isHttp2Protocol) ? 'http2' : 'http1') : 'tcp';
    const clusterResource: ClusterResource = { type: 'cluster', name: cluster, service: '', port: appPort, lbPolicy: 'ROUND_ROBIN', protocol: upstream };
    const endpoints: EndpointsResource = { type: 'endpoints', name: cluster, endpoints: [{ address: '127.0.0.1', port: appPort, healthy: true }] };
    out.push(listener, clusterResource, endpoints);
  }
  return out;
}

/** What the service ports served on `appPort` declare (a port no service declares counts as unknown). */
function appPortProtocols(snapshot: MeshSnapshot, workload: Workload, appPort: number): Protocol[] {
  const out: Protocol[] = [];
  for (const binding of workload.services) {
    const service = snapshot.services.get(binding.hostname);
    for (const [servicePort, target] of Object.entries(binding.ports)) {
      if (target !== appPort) continue;
      out.push(service?.ports.find((p) => p.port === Number(servicePort))?.protocol ?? 'unknown');
    }
  }
  return out.length ? out : ['unknown'];
}

/** One app port behind services that disagree (HTTP for one, TCP for another) is sniffed. */
function combinedProtocol(protocols: Protocol[]): ListenerProtocol {
  const kinds = new Set(protocols.map(listenerProtocol));
  return kinds.size === 1 ? [...kinds][0] : 'auto';
}

interface PortService {
  service: Service;
  protocol: Protocol;
  /** VIPs first, then endpoint IPs, each claimed by the first service (by host name) on this port. */
  addresses: string[];
}

/**
 * One outbound virtual listener per (visible service, port) that has addresses,
 * plus one per port for any address when HTTP services use the port (routed by
 * Host) or a TCP service without addresses does (Istio's 0.0.0.0:<port>).
 */
export function buildOutboundListeners(ctx: BuildContext, vsFor: (host: string) => IndexedVirtualService | undefined): ListenerResource[] {
  const byPort = new Map<number, PortService[]>();
  for (const service of ctx.index.services) {
    if (!isServiceVisible(service, ctx.node.namespace)) continue;
    const seen = new Set<number>();
    for (const p of service.ports) {
      if (seen.has(p.port)) continue;
      seen.add(p.port);
      let list = byPort.get(p.port);
      if (!list) byPort.set(p.port, (list = []));
      list.push({ service, protocol: p.protocol, addresses: [] });
    }
  }
  const out: ListenerResource[] = [];
  for (const port of [...byPort.keys()].sort((a, b) => a - b)) {
    const entries = byPort.get(port)!;
    claimAddresses(ctx, entries, port);
    let anyHttp = false;
    let fallback: PortService | undefined;
    for (const entry of entries) {
      const { service, protocol, addresses } = entry;
      const kind = listenerProtocol(protocol);
      if (kind !== 'tcp') anyHttp = true;
      requestServiceClusters(ctx, service, port);
      if (addresses.length === 0) {
        if (kind !== 'http' && !fallback) fallback = entry;
        continue;
      }
      const listener: ListenerResource = { type: 'listener', name: `outbound|${port}|${service.hostname}`, direction: 'outbound', address: ANY_ADDRESS, port, protocol: kind, destinationAddresses: addresses };
      if (kind !== 'tcp') listener.routeConfig = OUTBOUND_ROUTE_CONFIG;
      if (kind !== 'http') listener.tcpRoute = { clusters: tcpRouteClusters(ctx, vsFor(service.hostname), service.hostname, port, addresses) };
      out.push(listener);
    }
    if (!anyHttp && !fallback) continue;
    const protocol: ListenerProtocol = !anyHttp ? 'tcp' : fallback || entries.some((e) => e.protocol === 'unknown') ? 'auto' : 'http';
    const wildcard: ListenerResource = { type: 'listener', name: `outbound|${port}`, direction: 'outbound', address: ANY_ADDRESS, port, protocol };
    if (anyHttp) wildcard.routeConfig = OUTBOUND_ROUTE_CONFIG;
    // Without a TCP service to fall back to, non-HTTP bytes on a sniffed port follow the outbound traffic policy.
    if (fallback) wildcard.tcpRoute = { clusters: tcpRouteClusters(ctx, vsFor(fallback.service.hostname), fallback.service.hostname, port, []) };
    out.push(wildcard);
  }
  return out;
}

/**
 * Gives each address on `port` to one service: VIPs before endpoint IPs (a VIP
 * names its service; a pod IP may back several), then host name order. Without
 * this two listeners could cover one destination and the choice would be the proxy's.
 */
function claimAddresses(ctx: BuildContext, entries: PortService[], port: number): void {
  const claimed = new Set<string>();
  for (const entry of entries) {
    for (const a of entry.service.addresses ?? []) {
      if (claimed.has(a)) continue;
      claimed.add(a);
      entry.addresses.push(a);
    }
  }
  for (const entry of entries) {
    const ips: string[] = [];
    for (const w of ctx.snapshot.workloadsByService.get(entry.service.hostname) ?? []) {
      const binding = w.services.find((b) => b.hostname === entry.service.hostname);
      if (binding?.ports[port] === undefined || isIP(w.address) === 0 || claimed.has(w.address)) continue;
      claimed.add(w.address);
      ips.push(w.address);
    }
    entry.addresses.push(...ips.sort(compareStrings));
  }
}

export function meshResource(snapshot: MeshSnapshot): MeshResource {
  const settings = meshSettingsOf(snapshot);
  const mesh: MeshResource = { type: 'mesh', name: 'mesh', outboundTrafficPolicy: settings.outboundTrafficPolicy };
  // Absent telemetry settings leave each proxy's own flags in charge.
  if (settings.accessLog !== undefined) mesh.accessLog = settings.accessLog;
  if (settings.tracing !== undefined) mesh.tracing = settings.tracing;
  // Pushed again whenever the CA's bundle changes, so a root rotation reaches every proxy.
  if (snapshot.trustBundle !== undefined && snapshot.trustBundle.length > 0) mesh.trustBundle = [...snapshot.trustBundle];
  return mesh;
}
