// A sidecar's config: inbound listeners in front of its own app, outbound
// virtual listeners for every service port it can reach, one outbound route
// config with a virtual host per (visible service, HTTP port), the mesh-wide
// settings, and the clusters and endpoints all of these reach.
import type { BuildContext, IndexedVirtualService } from './build-context.ts';
import { createBuildContext, isServiceVisible, MESH_GATEWAY, meshVirtualServiceSelector } from './build-context.ts';
import { buildRequestedClusters, requestServiceClusters } from './build-clusters.ts';
import { compileHttpRoutes, defaultRoute } from './build-routes.ts';
import { inboundWithSecurity } from './build-security.ts';
import { buildInbound, buildOutboundListeners, meshResource } from './build-sidecar-listeners.ts';
import type { RouteScope } from './build-routes.ts';
import { compareStrings } from './mesh-match.ts';
import type { MeshSnapshot } from './mesh-snapshot.ts';
import { JibeError } from '../errors/errors.ts';
import type { ProxyNode, ProxyResource, RouteConfigResource, VirtualHost } from '../model/proxy-config.ts';
import { OUTBOUND_ROUTE_CONFIG } from '../model/proxy-config.ts';
import type { Protocol, Service, ServicePort } from '../model/service.ts';
import { hostAliases, isHttpProtocol } from '../model/service.ts';
import type { Workload } from '../model/workload.ts';

const MESH_SCOPE_GATEWAYS: ReadonlySet<string> = new Set([MESH_GATEWAY]);

export function buildSidecarConfig(snapshot: MeshSnapshot, node: ProxyNode): ProxyResource[] {
  const workload = findNodeWorkload(snapshot, node);
  const ctx = createBuildContext(snapshot, node);
  const vsFor = meshVirtualServiceSelector(ctx);
  return [
    meshResource(snapshot),
    ...inboundWithSecurity(snapshot, workload, buildInbound(snapshot, workload)),
    ...buildOutboundListeners(ctx, vsFor),
    buildOutboundRouteConfig(ctx, vsFor),
    ...buildRequestedClusters(ctx),
  ];
}

/** The workload a sidecar fronts; a sidecar for an unregistered workload cannot be configured. */
export function findNodeWorkload(snapshot: MeshSnapshot, node: ProxyNode): Workload {
  const platform = node.platform || 'vm';
  const workload = node.workload ? snapshot.workloads.find((w) => w.name === node.workload && w.namespace === node.namespace && w.platform === platform) : undefined;
  if (workload) return workload;
  const what = node.workload ? `workload ${platform}/${node.namespace}/${node.workload}` : 'no workload';
  throw new JibeError('JIBE_ERR_WORKLOAD_INVALID', `sidecar ${node.id} names ${what}, which is not registered in the mesh`, {
    resource: node.workload ? `Workload/${node.namespace}/${node.workload}` : undefined,
    field: 'node.workload',
    hint: node.workload
      ? `register the workload first (join the VM with the node agent, apply a WorkloadEntry, or deploy it on its platform), or start the proxy with the right workload, namespace and platform (now: ${node.workload}, ${node.namespace}, ${platform})`
      : 'start the proxy with the name of the workload it fronts (and its namespace and platform)',
  });
}

/** An undeclared port is sniffed, so HTTP sent to it is routed like any HTTP port's. */
function isHttpLike(p: Protocol): boolean {
  return isHttpProtocol(p) || p === 'unknown';
}

function buildOutboundRouteConfig(ctx: BuildContext, vsFor: (host: string) => IndexedVirtualService | undefined): RouteConfigResource {
  const virtualHosts: VirtualHost[] = [];
  for (const service of ctx.index.services) {
    if (!isServiceVisible(service, ctx.node.namespace)) continue;
    const ports = httpPorts(service);
    if (ports.length === 0) continue;
    // The bare host (no `:port`) must name one port: 80 if the service has it, else its first HTTP port.
    const primary = ports.find((p) => p.port === 80) ?? ports[0];
    const aliases = hostAliases(service, ctx.node.namespace, ctx.domain);
    const ivs = vsFor(service.hostname);
    for (const port of ports) {
      requestServiceClusters(ctx, service, port.port);
      const scope: RouteScope = { port: port.port, gateways: MESH_SCOPE_GATEWAYS };
      const routes = ivs ? compileHttpRoutes(ctx, ivs, scope) : [];
      // A trailing default after a catch-all route could never be reached.
      if (!routes.some((r) => r.match.length === 0)) routes.push(defaultRoute(ctx, service.hostname, port.port));
      const domains = port === primary ? [...aliases, ...aliases.map((a) => `${a}:${port.port}`)] : aliases.map((a) => `${a}:${port.port}`);
      virtualHosts.push({ name: `${service.hostname}:${port.port}`, domains, routes });
    }
  }
  virtualHosts.sort((a, b) => compareStrings(a.name, b.name));
  return { type: 'route', name: OUTBOUND_ROUTE_CONFIG, virtualHosts };
}

function httpPorts(service: Service): ServicePort[] {
  const seen = new Set<number>();
  const out: ServicePort[] = [];
  for (const p of service.ports) {
    if (!isHttpLike(p.protocol) || seen.has(p.port)) continue;
    seen.add(p.port);
    out.push(p);
  }
  return out;
}
