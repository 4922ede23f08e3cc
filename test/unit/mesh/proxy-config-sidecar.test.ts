import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { buildProxyConfig } from '../../../core/mesh/proxy-config-builder.ts';
import { JibeError } from '../../../core/errors/errors.ts';
import type { Endpoint, VirtualHost } from '../../../core/model/proxy-config.ts';
import { OUTBOUND_ROUTE_CONFIG } from '../../../core/model/proxy-config.ts';
import { defaultRetryPolicy } from '../../../core/mesh/build-route-policies.ts';
import { bookinfo, bookinfoParts, dr, find, host, names, service, sidecar, snapshot, vs, workload } from './mesh-fixtures.ts';

const REVIEWS = host('reviews');
const RATINGS = host('ratings');
const PRODUCTPAGE_NODE = sidecar('productpage-v1', { app: 'productpage', version: 'v1' });
const REVIEWS_V1_NODE = sidecar('reviews-v1', { app: 'reviews', version: 'v1' });
const REVIEWS_V2_NODE = sidecar('reviews-v2', { app: 'reviews', version: 'v2' });

function vhost(resources: ReturnType<typeof buildProxyConfig>, name: string): VirtualHost {
  const rc = find(resources, 'route', OUTBOUND_ROUTE_CONFIG);
  const vh = rc.virtualHosts.find((v) => v.name === name);
  assert.ok(vh, `no virtual host ${name} in ${rc.virtualHosts.map((v) => v.name).join(', ')}`);
  return vh;
}

const addresses = (endpoints: Endpoint[]): string[] => endpoints.map((e) => `${e.address}:${e.port}`);
/** Istio's default retry policy, which every forwarding outbound route gets unless it says otherwise. */
const RETRY = defaultRetryPolicy();
/** Listeners the sidecar binds (outbound virtual listeners are tested in sidecar-listeners.test.ts). */
const boundListeners = (out: ReturnType<typeof buildProxyConfig>): string[] =>
  out.filter((r) => r.type === 'listener' && r.direction !== 'outbound').map((r) => r.name);

describe('buildProxyConfig: sidecar inbound', () => {
  it('puts a listener, route config, cluster and loopback endpoint in front of each app port', () => {
    const out = buildProxyConfig(bookinfo(), REVIEWS_V1_NODE);
    assert.deepEqual(find(out, 'listener', 'inbound|9080'), {
      type: 'listener', name: 'inbound|9080', direction: 'inbound', address: '10.0.0.3', port: 15080, protocol: 'http', routeConfig: 'inbound|9080',
    });
    assert.deepEqual(find(out, 'route', 'inbound|9080').virtualHosts, [
      { name: 'inbound|9080', domains: ['*'], routes: [{ name: 'default', match: [], action: { clusters: [{ cluster: 'inbound|9080||', weight: 100 }] } }] },
    ]);
    assert.deepEqual(find(out, 'cluster', 'inbound|9080||'), { type: 'cluster', name: 'inbound|9080||', service: '', port: 9080, lbPolicy: 'ROUND_ROBIN', protocol: 'http1' });
    assert.deepEqual(find(out, 'endpoints', 'inbound|9080||').endpoints, [{ address: '127.0.0.1', port: 9080, healthy: true }]);
  });

  it('gets only its own inbound resources and no gateway listeners', () => {
    const out = buildProxyConfig(bookinfo(), REVIEWS_V1_NODE);
    assert.deepEqual(boundListeners(out), ['inbound|9080']);
    assert.deepEqual(names(out, 'route'), ['inbound|9080', 'outbound']);
    assert.equal(out.filter((r) => r.type === 'cluster' && r.name.startsWith('inbound|')).length, 1);
    assert.ok(!out.some((r) => r.name.startsWith('gateway|')));
  });

  it('skips app ports without an inbound proxy port (traffic capture comes later)', () => {
    const parts = bookinfoParts();
    parts.workloads = parts.workloads.map((w) => (w.name === 'details-v1' ? { ...w, proxy: {} } : w));
    const out = buildProxyConfig(snapshot(parts), sidecar('details-v1', {}));
    assert.deepEqual(boundListeners(out), []);
    assert.deepEqual(names(out, 'route'), ['outbound']);
  });
});

describe('buildProxyConfig: sidecar outbound routes', () => {
  it('has a virtual host per visible HTTP service port with every alias, bare and with port', () => {
    const out = buildProxyConfig(bookinfo(), PRODUCTPAGE_NODE);
    const rc = find(out, 'route', OUTBOUND_ROUTE_CONFIG);
    assert.deepEqual(rc.virtualHosts.map((v) => v.name), [`${host('details')}:9080`, `${host('productpage')}:9080`, `${RATINGS}:9080`, `${REVIEWS}:9080`]);
    assert.deepEqual(vhost(out, `${REVIEWS}:9080`).domains, [
      REVIEWS, 'reviews.default.svc', 'reviews.default', 'reviews',
      `${REVIEWS}:9080`, 'reviews.default.svc:9080', 'reviews.default:9080', 'reviews:9080',
    ]);
  });

  it('puts the jason route first with a header matcher, then the 80/20 split with its timeout', () => {
    const routes = vhost(buildProxyConfig(bookinfo(), PRODUCTPAGE_NODE), `${REVIEWS}:9080`).routes;
    assert.deepEqual(routes, [
      {
        name: 'jason',
        match: [{ headers: [{ name: 'end-user', match: { exact: 'jason' } }] }],
        action: { clusters: [{ cluster: `outbound|9080|v2|${REVIEWS}`, weight: 100 }], retry: RETRY },
      },
      {
        name: 'split',
        match: [],
        action: {
          clusters: [
            { cluster: `outbound|9080|v1|${REVIEWS}`, weight: 80 },
            { cluster: `outbound|9080|v3|${REVIEWS}`, weight: 20, responseHeaders: { set: [['x-canary', 'v3']] } },
          ],
          timeoutMs: 1500,
          retry: RETRY,
        },
      },
      // No trailing default: the split already catches everything.
    ]);
  });

  it('ends with a default route to the service when no VirtualService applies', () => {
    const routes = vhost(buildProxyConfig(bookinfo(), PRODUCTPAGE_NODE), `${host('details')}:9080`).routes;
    assert.deepEqual(routes, [{ name: 'default', match: [], action: { clusters: [{ cluster: `outbound|9080||${host('details')}`, weight: 100 }], retry: RETRY } }]);
  });

  it('keeps a sourceLabels route only for the proxies it selects', () => {
    const forV2 = vhost(buildProxyConfig(bookinfo(), REVIEWS_V2_NODE), `${RATINGS}:9080`).routes;
    const forV1 = vhost(buildProxyConfig(bookinfo(), REVIEWS_V1_NODE), `${RATINGS}:9080`).routes;
    assert.deepEqual(forV2, [{ name: 'from-reviews-v2', match: [], action: { clusters: [{ cluster: `outbound|9080||${RATINGS}`, weight: 100 }], timeoutMs: 300, retry: RETRY } }]);
    assert.deepEqual(forV1.map((r) => r.name), ['default']);
  });

  it('drops match entries for other ports, namespaces or gateways, and skips a route left with none', () => {
    const parts = bookinfoParts();
    parts.virtualServices = [
      vs('details', {
        hosts: ['details'],
        http: [
          { name: 'other-port', match: [{ port: 9999 }], route: [{ destination: { host: 'details' } }] },
          { name: 'other-ns', match: [{ sourceNamespace: 'prod' }], route: [{ destination: { host: 'details' } }] },
          { name: 'gw-only', match: [{ gateways: ['bookinfo-gateway'] }], route: [{ destination: { host: 'details' } }] },
          { name: 'mixed', match: [{ uri: { prefix: '/a' }, port: 9999 }, { uri: { prefix: '/b' }, port: 9080 }], route: [{ destination: { host: 'details' } }] },
          { name: 'mesh', match: [{ uri: { prefix: '/c' }, gateways: ['mesh'], sourceNamespace: 'default' }], route: [{ destination: { host: 'details' } }] },
        ],
      }),
    ];
    const routes = vhost(buildProxyConfig(snapshot(parts), PRODUCTPAGE_NODE), `${host('details')}:9080`).routes;
    assert.deepEqual(routes.map((r) => [r.name, r.match]), [
      ['mixed', [{ uri: { prefix: '/b' } }]],
      ['mesh', [{ uri: { prefix: '/c' } }]],
      ['default', []],
    ]);
  });

  it('compiles redirects, rewrites, header operations, withoutHeaders, query params and timeouts', () => {
    const parts = bookinfoParts();
    parts.virtualServices = [
      vs('details', {
        hosts: ['details.default.svc.cluster.local'],
        http: [
          { name: 'moved', match: [{ uri: { exact: '/old' } }], redirect: { uri: '/new' } },
          { name: 'moved-temp', match: [{ uri: { exact: '/tmp' } }], redirect: { authority: 'x.example.com', redirectCode: 302 } },
          {
            name: 'v2-api',
            match: [{ uri: { prefix: '/v2' }, ignoreUriCase: true, withoutHeaders: { 'X-Debug': {} }, headers: { 'X-Tenant': { prefix: 'a' } }, queryParams: { q: { exact: '1' }, any: {} as never } }],
            rewrite: { uri: '/' },
            timeout: '2m',
            headers: { request: { set: { 'x-a': '1' }, add: { 'x-b': '2' }, remove: ['x-c'] }, response: { remove: ['server'] } },
            route: [{ destination: { host: 'details' }, headers: { request: { set: { 'x-dest': 'details' } } } }],
          },
          { name: 'bad-timeout', match: [{ uri: { prefix: '/bad' } }], timeout: 'soon', route: [{ destination: { host: 'details' } }] },
        ],
      }),
    ];
    const routes = vhost(buildProxyConfig(snapshot(parts), PRODUCTPAGE_NODE), `${host('details')}:9080`).routes;
    assert.deepEqual(routes[0].action, { redirect: { uri: '/new', code: 301 } });
    assert.deepEqual(routes[1].action, { redirect: { authority: 'x.example.com', code: 302 } });
    assert.deepEqual(routes[2], {
      name: 'v2-api',
      match: [{
        uri: { prefix: '/v2' },
        headers: [{ name: 'x-debug', invert: true }, { name: 'x-tenant', match: { prefix: 'a' } }],
        queryParams: [{ name: 'any', match: { regex: '.*' } }, { name: 'q', match: { exact: '1' } }],
        ignoreUriCase: true,
      }],
      action: {
        clusters: [{ cluster: `outbound|9080||${host('details')}`, weight: 100, requestHeaders: { set: [['x-dest', 'details']] } }],
        rewrite: { uri: '/' },
        requestHeaders: { set: [['x-a', '1']], add: [['x-b', '2']], remove: ['x-c'] },
        responseHeaders: { remove: ['server'] },
        timeoutMs: 120_000,
        retry: RETRY,
      },
    });
    assert.equal(routes[3].action.timeoutMs, undefined, 'an unreadable timeout means no timeout, not a failed build');
  });

  it('lets the oldest VirtualService win a host, whatever order the rules arrive in', () => {
    const parts = bookinfoParts();
    const older = vs('details-a', { hosts: ['details'], http: [{ name: 'from-older', route: [{ destination: { host: 'details' } }] }] }, 'default', '2023-01-01T00:00:00Z');
    const newer = vs('details-b', { hosts: ['details.default'], http: [{ name: 'from-newer', route: [{ destination: { host: 'details' } }] }] }, 'default', '2023-06-01T00:00:00Z');
    for (const order of [[older, newer], [newer, older]]) {
      parts.virtualServices = order;
      const routes = vhost(buildProxyConfig(snapshot(parts), PRODUCTPAGE_NODE), `${host('details')}:9080`).routes;
      assert.deepEqual(routes.map((r) => r.name), ['from-older']);
    }
  });

  it('prefers an exact host over a wildcard VirtualService', () => {
    const ext = service('api.example.com', [{ name: 'http', port: 80, protocol: 'http' }], { hostname: 'api.example.com', location: 'MESH_EXTERNAL', platforms: ['config'] });
    const parts = bookinfoParts();
    parts.services.push(ext);
    parts.virtualServices = [
      vs('wild', { hosts: ['*.example.com'], http: [{ name: 'wild', route: [{ destination: { host: 'api.example.com' } }] }] }, 'default', '2020-01-01T00:00:00Z'),
      vs('exact', { hosts: ['api.example.com'], http: [{ name: 'exact', match: [{ uri: { prefix: '/' } }], route: [{ destination: { host: 'api.example.com' } }] }] }),
    ];
    const vh = vhost(buildProxyConfig(snapshot(parts), PRODUCTPAGE_NODE), 'api.example.com:80');
    assert.deepEqual(vh.domains, ['api.example.com', 'api.example.com:80']);
    assert.deepEqual(vh.routes.map((r) => r.name), ['exact', 'default']);
    parts.virtualServices = parts.virtualServices.filter((v) => v.metadata.name === 'wild');
    assert.deepEqual(vhost(buildProxyConfig(snapshot(parts), PRODUCTPAGE_NODE), 'api.example.com:80').routes.map((r) => r.name), ['wild']);
  });

  it('gives the bare host to port 80 (else the first HTTP port), short aliases only in-namespace, and no TCP virtual hosts', () => {
    const parts = bookinfoParts();
    parts.services.push(
      service('httpbin', [{ name: 'http-alt', port: 8000, protocol: 'http' }, { name: 'http', port: 80, protocol: 'http' }, { name: 'tcp-db', port: 5432, protocol: 'tcp' }], { namespace: 'tools' }),
      service('legacy', [{ name: 'web', port: 7000, protocol: 'unknown' }, { name: 'grpc', port: 7001, protocol: 'grpc' }]),
    );
    const out = buildProxyConfig(snapshot(parts), PRODUCTPAGE_NODE);
    const hb = host('httpbin', 'tools');
    assert.deepEqual(vhost(out, `${hb}:80`).domains, [hb, 'httpbin.tools.svc', 'httpbin.tools', `${hb}:80`, 'httpbin.tools.svc:80', 'httpbin.tools:80']);
    assert.deepEqual(vhost(out, `${hb}:8000`).domains, [`${hb}:8000`, 'httpbin.tools.svc:8000', 'httpbin.tools:8000']);
    const rc = find(out, 'route', OUTBOUND_ROUTE_CONFIG);
    assert.ok(!rc.virtualHosts.some((v) => v.name === `${hb}:5432`));
    // A TCP port is reached through its outbound listener's tcpRoute, so its cluster exists.
    assert.equal(find(out, 'cluster', `outbound|5432||${hb}`).protocol, 'tcp');
    assert.ok(vhost(out, `${host('legacy')}:7000`).domains.includes('legacy'), 'an unknown protocol is sniffed, so HTTP to it is routed; the first port gets the bare name');
    assert.equal(find(out, 'cluster', `outbound|7001||${host('legacy')}`).protocol, 'http2');
    assert.equal(find(out, 'cluster', `outbound|7000||${host('legacy')}`).protocol, 'tcp');
  });

  it('picks the destination port: explicit, else the only port, else the virtual host port', () => {
    const parts = bookinfoParts();
    parts.services.push(service('multi', [{ name: 'http', port: 80, protocol: 'http' }, { name: 'http-admin', port: 8081, protocol: 'http' }]));
    parts.virtualServices = [vs('multi', { hosts: ['multi'], http: [{ name: 'to-details', match: [{ uri: { prefix: '/d' } }], route: [{ destination: { host: 'details' } }] }, { name: 'self', route: [{ destination: { host: 'multi' } }] }] })];
    const out = buildProxyConfig(snapshot(parts), PRODUCTPAGE_NODE);
    const admin = vhost(out, `${host('multi')}:8081`).routes;
    assert.equal(admin[0].action.clusters?.[0].cluster, `outbound|9080||${host('details')}`);
    assert.equal(admin[1].action.clusters?.[0].cluster, `outbound|8081||${host('multi')}`);
  });

  it('hides services, VirtualServices and DestinationRules that exportTo keeps from the node', () => {
    const parts = bookinfoParts();
    parts.services.push(service('vault', undefined, { namespace: 'secret', exportTo: ['.'] }));
    parts.workloads.push(workload('vault-0', '10.9.0.1', { app: 'vault' }, ['vault'], { namespace: 'secret' }));
    parts.virtualServices!.push(vs('details-private', { hosts: ['details.default.svc.cluster.local'], exportTo: ['.'], http: [{ name: 'private', route: [{ destination: { host: 'details.default.svc.cluster.local' } }] }] }, 'ops', '2000-01-01T00:00:00Z'));
    parts.destinationRules!.push(dr('details-private', { host: 'details.default.svc.cluster.local', exportTo: ['ops'], trafficPolicy: { loadBalancer: { simple: 'RANDOM' } } }, 'default'));
    const s = snapshot(parts);
    const vault = host('vault', 'secret');

    const fromDefault = buildProxyConfig(s, PRODUCTPAGE_NODE);
    assert.ok(!find(fromDefault, 'route', OUTBOUND_ROUTE_CONFIG).virtualHosts.some((v) => v.name.startsWith(vault)));
    assert.ok(!fromDefault.some((r) => r.name.endsWith(vault)));
    assert.deepEqual(vhost(fromDefault, `${host('details')}:9080`).routes.map((r) => r.name), ['default']);
    assert.equal(find(fromDefault, 'cluster', `outbound|9080||${host('details')}`).lbPolicy, 'LEAST_REQUEST');

    const fromSecret = buildProxyConfig(s, sidecar('vault-0', { app: 'vault' }, 'secret'));
    assert.deepEqual(vhost(fromSecret, `${vault}:9080`).domains.includes('vault'), true);
    assert.deepEqual(addresses(find(fromSecret, 'endpoints', `outbound|9080||${vault}`).endpoints), ['10.9.0.1:15080']);

    const fromOps = buildProxyConfig(snapshot({ ...parts, workloads: [...parts.workloads, workload('tool', '10.8.0.1', {}, [], { namespace: 'ops' })] }), sidecar('tool', {}, 'ops'));
    assert.deepEqual(vhost(fromOps, `${host('details')}:9080`).routes.map((r) => r.name), ['private']);
    assert.equal(find(fromOps, 'cluster', `outbound|9080||${host('details')}`).lbPolicy, 'RANDOM');
  });
});

describe('buildProxyConfig: sidecar clusters and endpoints', () => {
  it('gives each subset cluster the endpoints whose labels it selects, with health, identity and locality', () => {
    const out = buildProxyConfig(bookinfo(), PRODUCTPAGE_NODE);
    assert.deepEqual(addresses(find(out, 'endpoints', `outbound|9080|v2|${REVIEWS}`).endpoints), ['10.0.0.14:15080', '10.0.0.4:15080']);
    assert.deepEqual(addresses(find(out, 'endpoints', `outbound|9080||${REVIEWS}`).endpoints), ['10.0.0.14:15080', '10.0.0.3:15080', '10.0.0.4:15080', '10.0.0.5:15080']);
    assert.deepEqual(find(out, 'endpoints', `outbound|9080|v1|${REVIEWS}`).endpoints, [{
      address: '10.0.0.3', port: 15080, healthy: true, workload: 'reviews-v1', namespace: 'default',
      identity: 'spiffe://cluster.local/ns/default/sa/bookinfo-reviews', platform: 'vm', locality: 'eu-west1/b', labels: { app: 'reviews', version: 'v1' },
    }]);
    assert.equal(find(out, 'endpoints', `outbound|9080|v3|${REVIEWS}`).endpoints[0].healthy, false);
  });

  it('emits a cluster per service port and per subset, with the load balancer the rule sets at the most specific level', () => {
    const out = buildProxyConfig(bookinfo(), PRODUCTPAGE_NODE);
    assert.deepEqual(names(out, 'cluster'), [
      'inbound|9080||',
      `outbound|9080|v1|${REVIEWS}`, `outbound|9080|v2|${REVIEWS}`, `outbound|9080|v3|${REVIEWS}`,
      `outbound|9080||${host('details')}`, `outbound|9080||${host('productpage')}`, `outbound|9080||${RATINGS}`, `outbound|9080||${REVIEWS}`,
    ]);
    assert.deepEqual(find(out, 'cluster', `outbound|9080|v2|${REVIEWS}`), {
      type: 'cluster', name: `outbound|9080|v2|${REVIEWS}`, service: REVIEWS, port: 9080, lbPolicy: 'ROUND_ROBIN', protocol: 'http1', subset: 'v2',
      retryBudget: { retryRatio: 0.2, minRetriesPerSecond: 10, ttlMs: 10_000 },
      // Auto mTLS with secure naming: the identities the service's workloads run as.
      tls: { mode: 'AUTO', subjectAltNames: ['spiffe://cluster.local/ns/default/sa/bookinfo-reviews'] },
    });
    assert.equal(find(out, 'cluster', `outbound|9080|v1|${REVIEWS}`).lbPolicy, 'RANDOM');
    assert.equal(find(out, 'cluster', `outbound|9080||${REVIEWS}`).lbPolicy, 'RANDOM');
    assert.equal(find(out, 'cluster', `outbound|9080||${RATINGS}`).lbPolicy, 'LEAST_REQUEST');
    assert.deepEqual(names(out, 'endpoints'), names(out, 'cluster'));
  });

  it('orders load balancer settings: subset port > subset > port > rule, LEAST_CONN and UNSPECIFIED mapped', () => {
    const parts = bookinfoParts();
    parts.services = parts.services.map((s) => (s.name === 'ratings' ? { ...s, ports: [...s.ports, { name: 'http-admin', port: 9090, protocol: 'http' as const }] } : s));
    parts.destinationRules = [
      dr('ratings', {
        host: 'ratings',
        trafficPolicy: { loadBalancer: { simple: 'LEAST_CONN' }, portLevelSettings: [{ port: { number: 9090 }, loadBalancer: { simple: 'RANDOM' } }] },
        subsets: [
          { name: 'a', labels: { version: 'v1' }, trafficPolicy: { loadBalancer: { simple: 'UNSPECIFIED' }, portLevelSettings: [{ port: { number: 9090 }, loadBalancer: { simple: 'PASSTHROUGH' } }] } },
          { name: 'b', labels: { version: 'v1' } },
        ],
      }),
    ];
    const out = buildProxyConfig(snapshot(parts), PRODUCTPAGE_NODE);
    const lb = (port: number, subset: string) => find(out, 'cluster', `outbound|${port}|${subset}|${RATINGS}`).lbPolicy;
    assert.equal(lb(9080, ''), 'LEAST_REQUEST');
    assert.equal(lb(9090, ''), 'RANDOM');
    assert.equal(lb(9080, 'a'), 'LEAST_REQUEST');
    assert.equal(lb(9090, 'a'), 'PASSTHROUGH');
    assert.equal(lb(9090, 'b'), 'RANDOM');
  });

  it('takes the DestinationRule from the node namespace, then the service namespace, then the root namespace', () => {
    const parts = bookinfoParts();
    const rule = (ns: string, simple: 'RANDOM' | 'ROUND_ROBIN' | 'PASSTHROUGH') => dr(`details-${ns}`, { host: 'details.default.svc.cluster.local', trafficPolicy: { loadBalancer: { simple } } }, ns);
    const lbFrom = (rules: ReturnType<typeof rule>[], ns = 'default') => {
      const node = sidecar('client', {}, ns);
      const s = snapshot({ ...parts, workloads: [...parts.workloads, workload('client', '10.7.0.1', {}, [], { namespace: ns })], destinationRules: rules });
      return find(buildProxyConfig(s, node), 'cluster', `outbound|9080||${host('details')}`).lbPolicy;
    };
    assert.equal(lbFrom([rule('jibe-system', 'PASSTHROUGH'), rule('default', 'ROUND_ROBIN'), rule('ops', 'RANDOM')], 'ops'), 'RANDOM');
    assert.equal(lbFrom([rule('jibe-system', 'PASSTHROUGH'), rule('default', 'ROUND_ROBIN')], 'ops'), 'ROUND_ROBIN');
    assert.equal(lbFrom([rule('jibe-system', 'PASSTHROUGH'), rule('elsewhere', 'RANDOM')], 'ops'), 'PASSTHROUGH');
  });

  it('routes a dangling subset or host to a cluster with no endpoints instead of throwing', () => {
    const parts = bookinfoParts();
    parts.virtualServices = [
      vs('details', {
        hosts: ['details'],
        http: [
          { name: 'ghost-subset', match: [{ uri: { prefix: '/v9' } }], route: [{ destination: { host: 'details', subset: 'v9' } }] },
          { name: 'ghost-host', match: [{ uri: { prefix: '/gone' } }], route: [{ destination: { host: 'gone' } }] },
        ],
      }),
    ];
    const out = buildProxyConfig(snapshot(parts), PRODUCTPAGE_NODE);
    const routes = vhost(out, `${host('details')}:9080`).routes;
    assert.equal(routes[0].action.clusters?.[0].cluster, `outbound|9080|v9|${host('details')}`);
    assert.equal(routes[1].action.clusters?.[0].cluster, `outbound|9080||${host('gone')}`);
    assert.deepEqual(find(out, 'endpoints', `outbound|9080|v9|${host('details')}`).endpoints, []);
    assert.deepEqual(find(out, 'endpoints', `outbound|9080||${host('gone')}`).endpoints, []);
    assert.equal(find(out, 'cluster', `outbound|9080||${host('gone')}`).lbPolicy, 'LEAST_REQUEST');
  });

  it('points a DNS service without endpoints at its own host name', () => {
    const parts = bookinfoParts();
    parts.services.push(service('httpbin.org', [{ name: 'http', port: 80, protocol: 'http' }], { hostname: 'httpbin.org', location: 'MESH_EXTERNAL', resolution: 'DNS', platforms: ['config'] }));
    const out = buildProxyConfig(snapshot(parts), PRODUCTPAGE_NODE);
    assert.deepEqual(find(out, 'endpoints', 'outbound|80||httpbin.org').endpoints, [{ address: 'httpbin.org', port: 80, healthy: true }]);
  });

  it('counts an instance registered by two platforms once', () => {
    const parts = bookinfoParts();
    parts.workloads.push(workload('details-v1', '10.0.0.2', { app: 'details', version: 'v1' }, ['details'], { platform: 'consul' }));
    const out = buildProxyConfig(snapshot(parts), PRODUCTPAGE_NODE);
    assert.deepEqual(addresses(find(out, 'endpoints', `outbound|9080||${host('details')}`).endpoints), ['10.0.0.2:15080']);
  });
});

describe('buildProxyConfig: sidecar errors and determinism', () => {
  it('throws JIBE_ERR_WORKLOAD_INVALID naming the workload when the sidecar is not registered', () => {
    for (const node of [sidecar('nope', {}), { ...REVIEWS_V1_NODE, platform: 'consul' }, { ...REVIEWS_V1_NODE, workload: undefined }]) {
      assert.throws(() => buildProxyConfig(bookinfo(), node), (e: unknown) => {
        assert.ok(e instanceof JibeError);
        assert.equal(e.code, 'JIBE_ERR_WORKLOAD_INVALID');
        if (node.workload) assert.match(e.message, new RegExp(`${node.platform}/default/${node.workload}`));
        assert.match(e.details.hint ?? '', /register|workload/);
        return true;
      });
    }
  });

  it('builds the same resources twice and from shuffled input', () => {
    const first = buildProxyConfig(bookinfo(), PRODUCTPAGE_NODE);
    assert.deepEqual(buildProxyConfig(bookinfo(), PRODUCTPAGE_NODE), first);
    const parts = bookinfoParts();
    const shuffled = snapshot({
      services: [...parts.services].reverse(),
      workloads: rotate(parts.workloads, 3),
      virtualServices: [...parts.virtualServices!].reverse(),
      destinationRules: [...parts.destinationRules!].reverse(),
      gateways: parts.gateways,
    });
    // Compared as JSON too: the discovery stream hashes the serialized form, so key order matters.
    const again = buildProxyConfig(shuffled, PRODUCTPAGE_NODE);
    assert.deepEqual(again, first);
    assert.equal(JSON.stringify(again), JSON.stringify(first));
  });

  it('does not share mutable objects with the snapshot', () => {
    const s = bookinfo();
    const out = buildProxyConfig(s, PRODUCTPAGE_NODE);
    const ep = find(out, 'endpoints', `outbound|9080||${REVIEWS}`).endpoints[0];
    ep.labels!.app = 'mutated';
    assert.ok(s.workloads.every((w) => w.labels.app !== 'mutated'));
  });
});

function rotate<T>(items: T[], by: number): T[] {
  return [...items.slice(by), ...items.slice(0, by)];
}
