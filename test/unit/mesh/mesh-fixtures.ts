// A BookInfo-like mesh for the config builder tests: productpage → details,
// reviews (v1/v2/v3) → ratings, all in `default`, each app on 9080 behind a
// sidecar listening on 15080; an ingress Gateway on 8080 for productpage.
import { DEFAULT_MESH_SETTINGS, indexWorkloads } from '../../../core/mesh/mesh-snapshot.ts';
import type { MeshSnapshot } from '../../../core/mesh/mesh-snapshot.ts';
import type { DestinationRule, Gateway, VirtualService } from '../../../core/model/networking.ts';
import type { ProxyNode, ProxyResource } from '../../../core/model/proxy-config.ts';
import type { Service, ServicePort } from '../../../core/model/service.ts';
import { canonicalHost } from '../../../core/model/service.ts';
import type { Workload } from '../../../core/model/workload.ts';
import { spiffeId } from '../../../core/model/workload.ts';

export const NS = 'default';
export const host = (name: string, ns = NS): string => canonicalHost(name, ns);

export function service(name: string, ports: ServicePort[] = [{ name: 'http', port: 9080, protocol: 'http' }], extra: Partial<Service> = {}): Service {
  const ns = extra.namespace ?? NS;
  return { hostname: host(name, ns), name, namespace: ns, ports, platforms: ['vm'], location: 'MESH_INTERNAL', resolution: 'STATIC', ...extra };
}

export function workload(name: string, address: string, labels: Record<string, string>, services: string[], extra: Partial<Workload> = {}): Workload {
  const ns = extra.namespace ?? NS;
  const sa = `bookinfo-${labels.app ?? name}`;
  return {
    name,
    namespace: ns,
    platform: 'vm',
    address,
    labels,
    serviceAccount: sa,
    identity: spiffeId(ns, sa),
    health: 'healthy',
    services: services.map((s) => ({ hostname: host(s, ns), ports: { 9080: 9080 } })),
    proxy: { inboundPorts: { 9080: 15080 } },
    ...extra,
  };
}

let clock = 0;
/** Creation timestamps one second apart, in the order fixtures are made. */
function created(): string {
  return new Date(Date.UTC(2024, 0, 1, 0, 0, clock++)).toISOString();
}

export function vs(name: string, spec: VirtualService['spec'], namespace = NS, creationTimestamp = created()): VirtualService {
  return { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name, namespace, creationTimestamp }, spec };
}

export function dr(name: string, spec: DestinationRule['spec'], namespace = NS): DestinationRule {
  return { apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name, namespace, creationTimestamp: created() }, spec };
}

export function gateway(name: string, spec: Gateway['spec'], namespace = NS): Gateway {
  return { apiVersion: 'networking.istio.io/v1', kind: 'Gateway', metadata: { name, namespace, creationTimestamp: created() }, spec };
}

export interface SnapshotParts {
  services: Service[];
  workloads: Workload[];
  virtualServices?: VirtualService[];
  destinationRules?: DestinationRule[];
  gateways?: Gateway[];
}

export function snapshot(parts: SnapshotParts): MeshSnapshot {
  return {
    version: 1,
    settings: DEFAULT_MESH_SETTINGS,
    services: new Map(parts.services.map((s) => [s.hostname, s])),
    workloads: parts.workloads,
    workloadsByService: indexWorkloads(parts.workloads),
    virtualServices: parts.virtualServices ?? [],
    destinationRules: parts.destinationRules ?? [],
    gateways: parts.gateways ?? [],
  };
}

export function bookinfoParts(): SnapshotParts {
  return {
    services: [service('productpage'), service('details'), service('reviews'), service('ratings')],
    workloads: [
      workload('productpage-v1', '10.0.0.1', { app: 'productpage', version: 'v1' }, ['productpage']),
      workload('details-v1', '10.0.0.2', { app: 'details', version: 'v1' }, ['details']),
      workload('reviews-v1', '10.0.0.3', { app: 'reviews', version: 'v1' }, ['reviews'], { locality: { region: 'eu-west1', zone: 'b' } }),
      workload('reviews-v2', '10.0.0.4', { app: 'reviews', version: 'v2' }, ['reviews']),
      workload('reviews-v2-b', '10.0.0.14', { app: 'reviews', version: 'v2' }, ['reviews']),
      workload('reviews-v3', '10.0.0.5', { app: 'reviews', version: 'v3' }, ['reviews'], { health: 'unhealthy' }),
      workload('ratings-v1', '10.0.0.6', { app: 'ratings', version: 'v1' }, ['ratings']),
    ],
    destinationRules: [
      dr('reviews', {
        host: 'reviews',
        trafficPolicy: { loadBalancer: { simple: 'RANDOM' } },
        subsets: [
          { name: 'v1', labels: { version: 'v1' } },
          { name: 'v2', labels: { version: 'v2' }, trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN' } } },
          { name: 'v3', labels: { version: 'v3' } },
        ],
      }),
    ],
    virtualServices: [
      vs('reviews', {
        hosts: ['reviews'],
        http: [
          { name: 'jason', match: [{ headers: { 'end-user': { exact: 'jason' } } }], route: [{ destination: { host: 'reviews', subset: 'v2' } }] },
          {
            name: 'split',
            timeout: '1.5s',
            route: [
              { destination: { host: 'reviews', subset: 'v1' }, weight: 80 },
              { destination: { host: 'reviews', subset: 'v3' }, weight: 20, headers: { response: { set: { 'x-canary': 'v3' } } } },
            ],
          },
        ],
      }),
      vs('ratings', {
        hosts: ['ratings.default.svc.cluster.local'],
        http: [
          { name: 'from-reviews-v2', match: [{ sourceLabels: { app: 'reviews', version: 'v2' } }], route: [{ destination: { host: 'ratings' } }], timeout: '300ms' },
        ],
      }),
      vs('bookinfo', {
        hosts: ['*'],
        gateways: ['bookinfo-gateway'],
        http: [
          {
            name: 'productpage',
            match: [{ uri: { exact: '/productpage' } }, { uri: { prefix: '/static' } }, { uri: { exact: '/login' } }],
            route: [{ destination: { host: 'productpage', port: { number: 9080 } } }],
          },
        ],
      }),
    ],
    gateways: [gateway('bookinfo-gateway', { selector: { istio: 'ingressgateway' }, servers: [{ port: { number: 8080, name: 'http', protocol: 'HTTP' }, hosts: ['*'] }] })],
  };
}

export const bookinfo = (): MeshSnapshot => snapshot(bookinfoParts());

export function sidecar(workloadName: string, labels: Record<string, string>, namespace = NS): ProxyNode {
  return { id: `sidecar~${workloadName}.${namespace}`, type: 'sidecar', namespace, workload: workloadName, platform: 'vm', labels };
}

export const INGRESS: ProxyNode = { id: 'gateway~ingress.jibe-system', type: 'gateway', namespace: 'jibe-system', labels: { istio: 'ingressgateway' } };

/** The one resource of a type and name, failing loudly when absent. */
export function find<T extends ProxyResource['type']>(resources: ProxyResource[], type: T, name: string): Extract<ProxyResource, { type: T }> {
  const r = resources.find((x) => x.type === type && x.name === name);
  if (!r) throw new Error(`no ${type} ${name} in [${resources.map((x) => `${x.type}:${x.name}`).join(', ')}]`);
  return r as Extract<ProxyResource, { type: T }>;
}

export function names(resources: ProxyResource[], type: ProxyResource['type']): string[] {
  return resources.filter((r) => r.type === type).map((r) => r.name);
}
