import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { defaultRetryPolicy } from '../../../core/mesh/build-route-policies.ts';
import { buildProxyConfig } from '../../../core/mesh/proxy-config-builder.ts';
import type { Gateway } from '../../../core/model/networking.ts';
import type { ProxyNode } from '../../../core/model/proxy-config.ts';
import { bookinfo, bookinfoParts, find, gateway, host, INGRESS, names, snapshot, vs } from './mesh-fixtures.ts';

const PRODUCTPAGE_CLUSTER = `outbound|9080||${host('productpage')}`;

function withGateways(gateways: Gateway[], virtualServices: ReturnType<typeof vs>[]) {
  return snapshot({ ...bookinfoParts(), gateways, virtualServices });
}

const httpServer = (port: number, hosts: string[], extra: object = {}) => ({ port: { number: port, name: `http-${port}`, protocol: 'HTTP' }, hosts, ...extra });

describe('buildProxyConfig: gateway', () => {
  it('gets only its listener, its routes and the productpage cluster', () => {
    const out = buildProxyConfig(bookinfo(), INGRESS);
    assert.deepEqual(out.map((r) => `${r.type}:${r.name}`), ['listener:gateway|8080', 'route:gateway|8080', `cluster:${PRODUCTPAGE_CLUSTER}`, `endpoints:${PRODUCTPAGE_CLUSTER}`]);
    assert.deepEqual(find(out, 'listener', 'gateway|8080'), {
      type: 'listener', name: 'gateway|8080', direction: 'gateway', address: '0.0.0.0', port: 8080, protocol: 'http', routeConfig: 'gateway|8080',
    });
    assert.deepEqual(find(out, 'route', 'gateway|8080').virtualHosts, [{
      name: 'default/bookinfo',
      domains: ['*'],
      routes: [{
        name: 'productpage',
        match: [{ uri: { exact: '/productpage' } }, { uri: { prefix: '/static' } }, { uri: { exact: '/login' } }],
        action: { clusters: [{ cluster: PRODUCTPAGE_CLUSTER, weight: 100 }], retry: defaultRetryPolicy() },
      }],
    }]);
    assert.deepEqual(find(out, 'endpoints', PRODUCTPAGE_CLUSTER).endpoints.map((e) => `${e.address}:${e.port}`), ['10.0.0.1:15080']);
  });

  it('gets nothing from Gateways whose selector does not match its labels', () => {
    const node: ProxyNode = { ...INGRESS, labels: { istio: 'egressgateway' } };
    assert.deepEqual(buildProxyConfig(bookinfo(), node), []);
  });

  it('keeps the VirtualService hosts the server admits, with their host:port forms', () => {
    const s = withGateways(
      [gateway('gw', { selector: { istio: 'ingressgateway' }, servers: [httpServer(80, ['bookinfo.example.com', '*.shop.example.com'])] })],
      [vs('site', { hosts: ['bookinfo.example.com', 'admin.example.com', 'a.shop.example.com', '*'], gateways: ['gw'], http: [{ route: [{ destination: { host: 'productpage' } }] }] })],
    );
    const [vh] = find(buildProxyConfig(s, INGRESS), 'route', 'gateway|80').virtualHosts;
    assert.deepEqual(vh.domains, [
      '*.shop.example.com', '*.shop.example.com:80', 'a.shop.example.com', 'a.shop.example.com:80', 'bookinfo.example.com', 'bookinfo.example.com:80',
    ]);
  });

  it('honours namespace-qualified server hosts and gateway references across namespaces', () => {
    const s = withGateways(
      [gateway('shared', { selector: { istio: 'ingressgateway' }, servers: [httpServer(80, ['prod/*', './internal.example.com'])] }, 'infra')],
      [
        vs('prod-site', { hosts: ['www.example.com'], gateways: ['infra/shared'], http: [{ name: 'prod', route: [{ destination: { host: 'productpage.default.svc.cluster.local' } }] }] }, 'prod'),
        vs('dev-site', { hosts: ['dev.example.com'], gateways: ['infra/shared'], http: [{ name: 'dev', route: [{ destination: { host: 'productpage.default' } }] }] }, 'dev'),
        vs('internal', { hosts: ['internal.example.com'], gateways: ['shared'], http: [{ name: 'internal', route: [{ destination: { host: 'details.default' } }] }] }, 'infra'),
        vs('unbound', { hosts: ['www.example.com'], gateways: ['shared'], http: [{ name: 'unbound', route: [{ destination: { host: 'ratings.default' } }] }] }, 'prod'),
      ],
    );
    const out = buildProxyConfig(s, INGRESS);
    const vhosts = find(out, 'route', 'gateway|80').virtualHosts;
    assert.deepEqual(vhosts.map((v) => [v.name, v.domains, v.routes.map((r) => r.name)]), [
      ['infra/internal', ['internal.example.com', 'internal.example.com:80'], ['internal']],
      ['prod/prod-site', ['www.example.com', 'www.example.com:80'], ['prod']],
    ]);
    assert.deepEqual(names(out, 'cluster'), [`outbound|9080||${host('details')}`, PRODUCTPAGE_CLUSTER]);
  });

  it('drops match entries bound to other gateways and gives routes no default', () => {
    const s = withGateways(
      [gateway('gw', { selector: { istio: 'ingressgateway' }, servers: [httpServer(8080, ['*'])] }), gateway('other', { selector: { app: 'x' }, servers: [httpServer(8080, ['*'])] })],
      [vs('both', {
        hosts: ['*'],
        gateways: ['gw', 'other', 'mesh'],
        http: [
          { name: 'mesh-only', match: [{ gateways: ['mesh'], uri: { prefix: '/m' } }], route: [{ destination: { host: 'details' } }] },
          { name: 'other-only', match: [{ gateways: ['other'] }], route: [{ destination: { host: 'ratings' } }] },
          { name: 'ours', match: [{ gateways: ['default/gw'], uri: { prefix: '/g' } }, { uri: { prefix: '/all' } }], route: [{ destination: { host: 'productpage' } }] },
          { name: 'port', match: [{ port: 8080, uri: { prefix: '/p' } }, { port: 80, uri: { prefix: '/q' } }], route: [{ destination: { host: 'productpage' } }] },
        ],
      })],
    );
    const out = buildProxyConfig(s, INGRESS);
    const routes = find(out, 'route', 'gateway|8080').virtualHosts[0].routes;
    assert.deepEqual(routes.map((r) => [r.name, r.match]), [
      ['ours', [{ uri: { prefix: '/g' } }, { uri: { prefix: '/all' } }]],
      ['port', [{ uri: { prefix: '/p' } }]],
    ]);
    assert.deepEqual(names(out, 'cluster'), [PRODUCTPAGE_CLUSTER]);
  });

  it('merges VirtualServices that share a host, oldest first', () => {
    const s = withGateways(
      [gateway('gw', { selector: { istio: 'ingressgateway' }, servers: [httpServer(8080, ['*'])] })],
      [
        vs('newer', { hosts: ['*'], gateways: ['gw'], http: [{ name: 'catch-all', route: [{ destination: { host: 'productpage' } }] }] }, 'default', '2024-05-01T00:00:00Z'),
        vs('older', { hosts: ['*'], gateways: ['gw'], http: [{ name: 'api', match: [{ uri: { prefix: '/api' } }], route: [{ destination: { host: 'details' } }] }] }, 'default', '2024-01-01T00:00:00Z'),
      ],
    );
    const vhosts = find(buildProxyConfig(s, INGRESS), 'route', 'gateway|8080').virtualHosts;
    assert.deepEqual(vhosts.map((v) => [v.name, v.domains, v.routes.map((r) => r.name)]), [['default/older+default/newer', ['*'], ['api', 'catch-all']]]);
  });

  it('listens on each HTTP server port once, at the bind address, terminating SIMPLE TLS and skipping non-HTTP servers', () => {
    const s = withGateways(
      [
        gateway('a', { selector: { istio: 'ingressgateway' }, servers: [httpServer(8080, ['*'], { bind: '127.0.0.1' }), { port: { number: 8443, name: 'https', protocol: 'HTTPS' }, hosts: ['*'], tls: { mode: 'SIMPLE' } }] }),
        gateway('b', { selector: {}, servers: [httpServer(8080, ['*']), { port: { number: 9000, name: 'tcp', protocol: 'TCP' }, hosts: ['*'] }, { port: { number: 9001, name: 'grpc', protocol: 'grpc' }, hosts: ['*'] }] }),
      ],
      [],
    );
    const out = buildProxyConfig(s, INGRESS);
    assert.deepEqual(names(out, 'listener'), ['gateway|8080', 'gateway|8443', 'gateway|9001']);
    assert.deepEqual(find(out, 'listener', 'gateway|8443').tls, { mode: 'SIMPLE' });
    assert.equal(find(out, 'listener', 'gateway|8080').tls, undefined);
    assert.equal(find(out, 'listener', 'gateway|8080').address, '127.0.0.1');
    assert.deepEqual(find(out, 'route', 'gateway|8080').virtualHosts, []);
    assert.deepEqual(names(out, 'cluster'), []);
  });

  it('is deterministic whatever order Gateways and VirtualServices arrive in', () => {
    const parts = bookinfoParts();
    const first = buildProxyConfig(snapshot(parts), INGRESS);
    const reversed = buildProxyConfig(snapshot({ ...parts, virtualServices: [...parts.virtualServices!].reverse(), gateways: [...parts.gateways!].reverse() }), INGRESS);
    assert.equal(JSON.stringify(reversed), JSON.stringify(first));
  });
});
