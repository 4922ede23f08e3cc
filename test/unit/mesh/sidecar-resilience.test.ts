import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { buildProxyConfig } from '../../../core/mesh/proxy-config-builder.ts';
import type { MeshConfig } from '../../../core/model/mesh-config.ts';
import type { ProxyResource, RouteAction } from '../../../core/model/proxy-config.ts';
import { OUTBOUND_ROUTE_CONFIG } from '../../../core/model/proxy-config.ts';
import type { RateLimit } from '../../../core/model/rate-limit.ts';
import { bookinfoParts, dr, find, host, service, sidecar, snapshot, vs, workload } from './mesh-fixtures.ts';

const PRODUCTPAGE = sidecar('productpage-v1', { app: 'productpage', version: 'v1' });
const RATINGS = host('ratings');

function action(out: ProxyResource[], vhost: string, route: string): RouteAction {
  const vh = find(out, 'route', OUTBOUND_ROUTE_CONFIG).virtualHosts.find((v) => v.name === vhost);
  const r = vh?.routes.find((x) => x.name === route);
  assert.ok(r, `no route ${route} in ${vhost}`);
  return r.action;
}

describe('routes: retries, faults, mirrors, CORS', () => {
  const parts = bookinfoParts();
  parts.virtualServices = [
    vs('ratings', {
      hosts: ['ratings'],
      http: [
        { name: 'custom', match: [{ uri: { prefix: '/a' } }], route: [{ destination: { host: 'ratings' } }], retries: { attempts: 3, perTryTimeout: '250ms', retryOn: 'gateway-error,503,504,gateway-error' } },
        { name: 'off', match: [{ uri: { prefix: '/b' } }], route: [{ destination: { host: 'ratings' } }], retries: { attempts: 0 } },
        {
          name: 'faulty',
          match: [{ uri: { prefix: '/c' } }],
          route: [{ destination: { host: 'ratings' } }],
          fault: { delay: { fixedDelay: '1.5s' }, abort: { grpcStatus: 'UNAVAILABLE', percentage: { value: 12.5 } } },
          mirror: { host: 'details' },
          corsPolicy: { allowOrigins: [{ exact: 'https://a.example' }, { regex: 'https://.*\\.b\\.example' }], allowMethods: ['GET'], maxAge: '90s', allowCredentials: true },
        },
        { name: 'mirrors', route: [{ destination: { host: 'ratings' } }], mirrors: [{ destination: { host: 'reviews', subset: 'v1' }, percentage: { value: 5 } }] },
      ],
    }),
  ];
  const out = buildProxyConfig(snapshot(parts), PRODUCTPAGE);
  const vhost = `${RATINGS}:9080`;

  it('turns retryOn numbers into retriable status codes, keeps names once, and parses perTryTimeout', () => {
    assert.deepEqual(action(out, vhost, 'custom').retry, {
      attempts: 3, perTryTimeoutMs: 250, retryOn: ['gateway-error', 'retriable-status-codes'], retriableStatusCodes: [503, 504], backoffBaseMs: 25, backoffMaxMs: 250,
    });
  });

  it('disables retries with attempts: 0', () => {
    assert.equal(action(out, vhost, 'off').retry, undefined);
  });

  it('defaults fault percentages to 100, maps gRPC names to codes, mirrors and CORS', () => {
    const a = action(out, vhost, 'faulty');
    assert.deepEqual(a.fault, { delay: { fixedDelayMs: 1500, percentage: 100 }, abort: { grpcStatus: 14, percentage: 12.5 } });
    assert.deepEqual(a.mirror, { cluster: `outbound|9080||${host('details')}`, percentage: 100 });
    assert.deepEqual(a.cors, { allowOrigins: [{ exact: 'https://a.example' }, { regex: 'https://.*\\.b\\.example' }], allowMethods: ['GET'], allowHeaders: [], exposeHeaders: [], maxAgeSeconds: 90, allowCredentials: true });
    assert.deepEqual(action(out, vhost, 'mirrors').mirror, { cluster: `outbound|9080|v1|${host('reviews')}`, percentage: 5 });
  });

  it('requests the mirror clusters so the proxy has them', () => {
    find(out, 'cluster', `outbound|9080||${host('details')}`);
    find(out, 'cluster', `outbound|9080|v1|${host('reviews')}`);
  });
});

describe('clusters: protocol, pools, outlier detection, hashing, budget', () => {
  function build(extra: (p: ReturnType<typeof bookinfoParts>) => void, meshConfig?: MeshConfig): ProxyResource[] {
    const parts = bookinfoParts();
    extra(parts);
    const s = snapshot(parts);
    return buildProxyConfig(meshConfig ? { ...s, meshConfig } : s, PRODUCTPAGE);
  }

  it('takes the protocol from the port as Istio does', () => {
    const out = build((p) => p.services.push(service('poly', [
      { name: 'http', port: 80, protocol: 'http' }, { name: 'grpc-web', port: 81, protocol: 'grpc-web' }, { name: 'h2', port: 82, protocol: 'http2' },
      { name: 'tcp-db', port: 83, protocol: 'tcp' }, { name: 'tls', port: 84, protocol: 'tls' }, { name: 'x', port: 85, protocol: 'unknown' },
    ])));
    const protocol = (port: number) => find(out, 'cluster', `outbound|${port}||${host('poly')}`).protocol;
    assert.deepEqual([80, 81, 82, 83, 84, 85].map(protocol), ['http1', 'http2', 'http2', 'tcp', 'tcp', 'tcp']);
  });

  it('compiles connectionPool, outlierDetection (with Istio defaults) and consistentHash, merging port and subset levels as Istio', () => {
    const out = build((p) => {
      p.destinationRules = [dr('ratings', {
        host: 'ratings',
        trafficPolicy: {
          connectionPool: {
            tcp: { maxConnections: 100, connectTimeout: '2s', tcpKeepalive: { time: '60s', interval: '10s', probes: 3 } },
            http: { http1MaxPendingRequests: 10, http2MaxRequests: 50, maxRequestsPerConnection: 0, maxRetries: 3, idleTimeout: '30s' },
          },
          outlierDetection: { consecutive5xxErrors: 7, consecutiveGatewayErrors: 2 },
          loadBalancer: { consistentHash: { httpHeaderName: 'X-User' } },
          portLevelSettings: [{ port: { number: 9090 }, outlierDetection: { interval: '1s' } }],
        },
        subsets: [{ name: 'sticky', labels: { version: 'v1' }, trafficPolicy: { loadBalancer: { consistentHash: { httpCookie: { name: 'sid', ttl: '1h' }, ringHash: { minimumRingSize: 64 } } } } }],
      })];
      p.services = p.services.map((s) => (s.name === 'ratings' ? { ...s, ports: [...s.ports, { name: 'http-admin', port: 9090, protocol: 'http' as const }] } : s));
      p.virtualServices!.push(vs('ratings-sticky', { hosts: ['ratings'], http: [{ route: [{ destination: { host: 'ratings', subset: 'sticky' } }] }] }));
    });
    const top = find(out, 'cluster', `outbound|9080||${RATINGS}`);
    assert.equal(top.lbPolicy, 'RING_HASH');
    assert.deepEqual(top.consistentHash, { minimumRingSize: 1024, httpHeaderName: 'x-user' });
    assert.equal(top.connectTimeoutMs, 2000);
    assert.deepEqual(top.tcpKeepalive, { timeMs: 60_000, intervalMs: 10_000, probes: 3 });
    assert.deepEqual(top.circuitBreakers, { maxConnections: 100, maxPendingRequests: 10, maxRequests: 50, maxRetries: 3, idleTimeoutMs: 30_000 });
    assert.deepEqual(top.outlierDetection, { intervalMs: 10_000, baseEjectionTimeMs: 30_000, maxEjectionPercent: 10, minHealthPercent: 0, consecutive5xxErrors: 7, consecutiveGatewayErrors: 2 });
    // A port-level entry replaces the whole policy: no pool, no hashing, only its outlier detection.
    const admin = find(out, 'cluster', `outbound|9090||${RATINGS}`);
    assert.equal(admin.lbPolicy, 'LEAST_REQUEST');
    assert.equal(admin.circuitBreakers, undefined);
    assert.deepEqual(admin.outlierDetection, { intervalMs: 1000, baseEjectionTimeMs: 30_000, maxEjectionPercent: 10, minHealthPercent: 0, consecutive5xxErrors: 5 });
    // The subset overrides only the load balancer; the pool comes from the top level.
    const sticky = find(out, 'cluster', `outbound|9080|sticky|${RATINGS}`);
    assert.deepEqual(sticky.consistentHash, { minimumRingSize: 64, httpCookie: { name: 'sid', ttlMs: 3_600_000 } });
    assert.equal(sticky.connectTimeoutMs, 2000);
  });

  it('takes the retry budget from the MeshConfig, with Linkerd defaults for what it omits', () => {
    const meshConfig: MeshConfig = {
      apiVersion: 'jibe.dev/v1alpha1', kind: 'MeshConfig', metadata: { name: 'mesh', namespace: 'jibe-system' },
      spec: { defaultRetryBudget: { retryRatio: 0.5, ttl: '30s' } },
    };
    const out = build(() => undefined, meshConfig);
    assert.deepEqual(find(out, 'cluster', `outbound|9080||${RATINGS}`).retryBudget, { retryRatio: 0.5, minRetriesPerSecond: 10, ttlMs: 30_000 });
  });
});

describe('sidecar listeners', () => {
  it('declares inbound protocol from the service port: http routed, tcp relayed, undeclared sniffed', () => {
    const parts = bookinfoParts();
    parts.services.push(service('db', [{ name: 'tcp', port: 5432, protocol: 'tcp' }]), service('odd', [{ name: 'x', port: 7000, protocol: 'unknown' }]));
    parts.workloads.push(workload('db-1', '10.0.1.1', { app: 'db' }, [], {
      services: [{ hostname: host('db'), ports: { 5432: 5432 } }, { hostname: host('odd'), ports: { 7000: 7000 } }],
      proxy: { inboundPorts: { 5432: 15432, 7000: 17000 } },
    }));
    const out = buildProxyConfig(snapshot(parts), sidecar('db-1', { app: 'db' }));
    assert.deepEqual(find(out, 'listener', 'inbound|5432'), {
      type: 'listener', name: 'inbound|5432', direction: 'inbound', address: '10.0.1.1', port: 15432, protocol: 'tcp', tcpRoute: { clusters: [{ cluster: 'inbound|5432||', weight: 100 }] },
    });
    assert.ok(!out.some((r) => r.type === 'route' && r.name === 'inbound|5432'), 'a tcp listener needs no route config');
    const odd = find(out, 'listener', 'inbound|7000');
    assert.equal(odd.protocol, 'auto');
    assert.equal(odd.routeConfig, 'inbound|7000');
    assert.deepEqual(odd.tcpRoute, { clusters: [{ cluster: 'inbound|7000||', weight: 100 }] });
    assert.equal(find(out, 'cluster', 'inbound|5432||').protocol, 'tcp');
  });

  it('compiles RateLimits of the services the workload backs onto its inbound listener', () => {
    const parts = bookinfoParts();
    const rl: RateLimit = {
      apiVersion: 'jibe.dev/v1alpha1', kind: 'RateLimit', metadata: { name: 'ratings', namespace: 'default', creationTimestamp: '2024-01-01T00:00:00Z' },
      spec: {
        host: 'ratings',
        limits: [
          { name: 'writes', match: [{ method: { exact: 'POST' }, headers: { 'X-Tenant': {} } }], maxTokens: 10, tokensPerFill: 5, fillInterval: '1s', per: { header: 'X-User' } },
          { match: [{ port: 9999 }], maxTokens: 1, fillInterval: '1s' },
          { maxTokens: 100, fillInterval: '100ms', per: { sourcePrincipal: {} } },
        ],
      },
    };
    const foreign: RateLimit = { ...rl, metadata: { name: 'meddling', namespace: 'other' } };
    const s = { ...snapshot(parts), rateLimits: [rl, foreign] };
    const listener = find(buildProxyConfig(s, sidecar('ratings-v1', { app: 'ratings' })), 'listener', 'inbound|9080');
    assert.deepEqual(listener.rateLimits, [
      { name: 'RateLimit/default/ratings#writes', maxTokens: 10, tokensPerFill: 5, fillIntervalMs: 1000, match: [{ method: { exact: 'POST' }, headers: [{ name: 'x-tenant' }] }], key: { header: 'x-user' } },
      { name: 'RateLimit/default/ratings#2', maxTokens: 100, tokensPerFill: 1, fillIntervalMs: 100, key: { sourcePrincipal: true } },
    ]);
    assert.equal(find(buildProxyConfig(s, sidecar('details-v1', {})), 'listener', 'inbound|9080').rateLimits, undefined);
  });

  it('gives each service port an outbound listener over its VIPs and endpoint IPs, with tcp routes and a wildcard HTTP listener', () => {
    const parts = bookinfoParts();
    parts.services.push(service('db', [{ name: 'tcp', port: 5432, protocol: 'tcp' }], { addresses: ['240.0.0.5'] }));
    parts.services.push(service('db2', [{ name: 'tcp', port: 5432, protocol: 'tcp' }]));
    parts.workloads.push(workload('db-1', '10.0.1.1', { app: 'db', version: 'v1' }, [], { services: [{ hostname: host('db'), ports: { 5432: 5432 } }] }));
    parts.destinationRules!.push(dr('db', { host: 'db', subsets: [{ name: 'v1', labels: { version: 'v1' } }] }));
    parts.virtualServices!.push(vs('db', { hosts: ['db'], tcp: [
      { match: [{ sourceLabels: { app: 'reviews' } }], route: [{ destination: { host: 'db2' } }] },
      { match: [{ port: 5432, destinationSubnets: ['240.0.0.0/24'] }], route: [{ destination: { host: 'db', subset: 'v1' }, weight: 90 }, { destination: { host: 'db2' }, weight: 10 }] },
    ] }));
    const out = buildProxyConfig(snapshot(parts), PRODUCTPAGE);
    assert.deepEqual(find(out, 'listener', `outbound|5432|${host('db')}`), {
      type: 'listener', name: `outbound|5432|${host('db')}`, direction: 'outbound', address: '0.0.0.0', port: 5432, protocol: 'tcp',
      destinationAddresses: ['240.0.0.5', '10.0.1.1'],
      tcpRoute: { clusters: [{ cluster: `outbound|5432|v1|${host('db')}`, weight: 90 }, { cluster: `outbound|5432||${host('db2')}`, weight: 10 }] },
    });
    // db2 has no address: it takes the port for any address, as Istio's 0.0.0.0:<port>.
    assert.deepEqual(find(out, 'listener', 'outbound|5432').tcpRoute, { clusters: [{ cluster: `outbound|5432||${host('db2')}`, weight: 100 }] });
    const http = find(out, 'listener', 'outbound|9080');
    assert.deepEqual([http.protocol, http.routeConfig, http.destinationAddresses], ['http', OUTBOUND_ROUTE_CONFIG, undefined]);
    assert.deepEqual(find(out, 'listener', `outbound|9080|${host('reviews')}`).destinationAddresses, ['10.0.0.14', '10.0.0.3', '10.0.0.4', '10.0.0.5']);
    assert.deepEqual(find(out, 'mesh', 'mesh'), { type: 'mesh', name: 'mesh', outboundTrafficPolicy: 'ALLOW_ANY' });
    // The first tcp route is for reviews sidecars only.
    const fromReviews = buildProxyConfig(snapshot(parts), sidecar('reviews-v1', { app: 'reviews', version: 'v1' }));
    assert.deepEqual(find(fromReviews, 'listener', `outbound|5432|${host('db')}`).tcpRoute, { clusters: [{ cluster: `outbound|5432||${host('db2')}`, weight: 100 }] });
  });

  it('takes outboundTrafficPolicy from the MeshConfig', () => {
    const meshConfig: MeshConfig = { apiVersion: 'jibe.dev/v1alpha1', kind: 'MeshConfig', metadata: { name: 'mesh', namespace: 'jibe-system' }, spec: { outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' } } };
    const out = buildProxyConfig({ ...snapshot(bookinfoParts()), meshConfig }, PRODUCTPAGE);
    assert.equal(find(out, 'mesh', 'mesh').outboundTrafficPolicy, 'REGISTRY_ONLY');
  });
});
