import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseLocality, serviceEntriesToModel } from '../../../core/registry/service-entry-converter.ts';
import { DEFAULT_MESH_SETTINGS } from '../../../core/mesh/mesh-snapshot.ts';
import type { ServiceEntry, WorkloadEntry } from '../../../core/model/networking.ts';
import { hostAliases } from '../../../core/model/service.ts';

const SETTINGS = { ...DEFAULT_MESH_SETTINGS, trustDomain: 'example.org' };

function se(name: string, spec: ServiceEntry['spec'], namespace = 'default', creationTimestamp?: string): ServiceEntry {
  return { apiVersion: 'networking.istio.io/v1', kind: 'ServiceEntry', metadata: { name, namespace, creationTimestamp }, spec };
}

function we(name: string, spec: WorkloadEntry['spec'], namespace = 'default', labels?: Record<string, string>): WorkloadEntry {
  return { apiVersion: 'networking.istio.io/v1', kind: 'WorkloadEntry', metadata: { name, namespace, labels }, spec };
}

describe('serviceEntriesToModel', () => {
  it('turns an external DNS ServiceEntry into a config service per host', () => {
    const { services, workloads } = serviceEntriesToModel([
      se('external', { hosts: ['httpbin.org', 'api.example.com'], ports: [{ number: 80, name: 'http', protocol: 'HTTP' }, { number: 443, name: 'tls', protocol: 'TLS' }], resolution: 'DNS', exportTo: ['.'] }),
    ], [], SETTINGS);
    assert.deepEqual(workloads, []);
    assert.deepEqual(services, [
      {
        hostname: 'api.example.com', name: 'api.example.com', namespace: 'default',
        ports: [{ name: 'http', port: 80, protocol: 'http' }, { name: 'tls', port: 443, protocol: 'tls' }],
        platforms: ['config'], location: 'MESH_EXTERNAL', resolution: 'DNS', exportTo: ['.'],
      },
      {
        hostname: 'httpbin.org', name: 'httpbin.org', namespace: 'default',
        ports: [{ name: 'http', port: 80, protocol: 'http' }, { name: 'tls', port: 443, protocol: 'tls' }],
        platforms: ['config'], location: 'MESH_EXTERNAL', resolution: 'DNS', exportTo: ['.'],
      },
    ]);
  });

  it('maps resolution and port protocols (protocol field first, else the port name)', () => {
    const { services } = serviceEntriesToModel([
      se('a', { hosts: ['a.example.com'], ports: [{ number: 1, name: 'grpc-x' }, { number: 2, name: 'db', protocol: 'MONGO' }, { number: 3, name: 'web' }, { number: 4, name: 'h2', protocol: 'HTTP2' }] }),
      se('b', { hosts: ['b.example.com'], resolution: 'DNS_ROUND_ROBIN' }),
      se('c', { hosts: ['c.example.com'], resolution: 'STATIC' }),
    ], [], SETTINGS);
    assert.deepEqual(services[0].ports.map((p) => p.protocol), ['grpc', 'tcp', 'unknown', 'http2']);
    assert.equal(services[0].resolution, 'NONE');
    assert.equal(services[1].resolution, 'DNS');
    assert.equal(services[2].resolution, 'STATIC');
  });

  it('keeps a MESH_INTERNAL canonical host as the service host, with its short aliases', () => {
    const { services, workloads } = serviceEntriesToModel([
      se('details', {
        hosts: ['details.bookinfo.svc.cluster.local'],
        location: 'MESH_INTERNAL',
        resolution: 'STATIC',
        ports: [{ number: 9080, name: 'http', protocol: 'HTTP' }, { number: 9443, name: 'http-admin', protocol: 'HTTP', targetPort: 19443 }],
        endpoints: [
          { address: '10.1.0.1', ports: { http: 19080 }, labels: { version: 'v1' }, serviceAccount: 'details', locality: 'eu/west-1a' },
          { address: '10.1.0.2' },
          { ports: { http: 1 } },
        ],
      }, 'bookinfo'),
    ], [], SETTINGS);
    assert.equal(services.length, 1);
    assert.equal(services[0].hostname, 'details.bookinfo.svc.cluster.local');
    assert.equal(services[0].name, 'details');
    assert.equal(services[0].namespace, 'bookinfo');
    assert.deepEqual(hostAliases(services[0], 'bookinfo'), ['details.bookinfo.svc.cluster.local', 'details.bookinfo.svc', 'details.bookinfo', 'details']);
    assert.deepEqual(workloads, [
      {
        name: 'details-0', namespace: 'bookinfo', platform: 'config', address: '10.1.0.1', labels: { version: 'v1' },
        serviceAccount: 'details', identity: 'spiffe://example.org/ns/bookinfo/sa/details', health: 'healthy',
        services: [{ hostname: 'details.bookinfo.svc.cluster.local', ports: { 9080: 19080, 9443: 19443 } }],
        locality: { region: 'eu', zone: 'west-1a' },
      },
      {
        name: 'details-1', namespace: 'bookinfo', platform: 'config', address: '10.1.0.2', labels: {},
        serviceAccount: 'default', identity: 'spiffe://example.org/ns/bookinfo/sa/default', health: 'healthy',
        services: [{ hostname: 'details.bookinfo.svc.cluster.local', ports: { 9080: 9080, 9443: 19443 } }],
      },
    ]);
  });

  it('does not give a host in another namespace short aliases', () => {
    const { services } = serviceEntriesToModel([se('x', { hosts: ['details.bookinfo.svc.cluster.local'], location: 'MESH_INTERNAL' }, 'default')], [], SETTINGS);
    assert.deepEqual(hostAliases(services[0], 'default'), ['details.bookinfo.svc.cluster.local']);
  });

  it('binds WorkloadEntries selected by labels in the same namespace, and keeps unselected ones as plain workloads', () => {
    const { workloads } = serviceEntriesToModel(
      [
        se('reviews', { hosts: ['reviews.example.internal'], location: 'MESH_INTERNAL', ports: [{ number: 9080, name: 'http' }], workloadSelector: { labels: { app: 'reviews' } } }),
        se('reviews-admin', { hosts: ['reviews-admin.example.internal'], ports: [{ number: 8080, name: 'http-admin' }], workloadSelector: { labels: { app: 'reviews' } } }),
      ],
      [
        we('vm-1', { address: '10.2.0.1', labels: { app: 'reviews', version: 'v1' }, ports: { http: 19080 }, serviceAccount: 'reviews' }),
        we('vm-2', { address: '10.2.0.2', labels: { version: 'v2' } }, 'default', { app: 'reviews' }),
        we('vm-other-ns', { address: '10.3.0.1', labels: { app: 'reviews' } }, 'prod'),
        we('lonely', { address: '10.2.0.9', labels: { app: 'ratings' } }),
        we('no-address', { labels: { app: 'reviews' } }),
      ],
      SETTINGS,
    );
    assert.deepEqual(workloads.map((w) => [`${w.namespace}/${w.name}`, w.services]), [
      ['default/lonely', []],
      ['default/vm-1', [{ hostname: 'reviews-admin.example.internal', ports: { 8080: 8080 } }, { hostname: 'reviews.example.internal', ports: { 9080: 19080 } }]],
      ['default/vm-2', [{ hostname: 'reviews-admin.example.internal', ports: { 8080: 8080 } }, { hostname: 'reviews.example.internal', ports: { 9080: 9080 } }]],
      ['prod/vm-other-ns', []],
    ]);
    const vm1 = workloads.find((w) => w.name === 'vm-1')!;
    assert.equal(vm1.identity, 'spiffe://example.org/ns/default/sa/reviews');
    assert.equal(vm1.platform, 'config');
    assert.deepEqual(workloads.find((w) => w.name === 'vm-2')!.labels, { app: 'reviews', version: 'v2' });
  });

  it('lets the oldest ServiceEntry define a shared host, later ones only add ports; output order is stable', () => {
    const older = se('old', { hosts: ['db.example.com'], ports: [{ number: 5432, name: 'tcp' }], resolution: 'DNS' }, 'default', '2024-01-01T00:00:00Z');
    const newer = se('new', { hosts: ['db.example.com'], ports: [{ number: 5432, name: 'http' }, { number: 6432, name: 'tcp-pool' }], resolution: 'STATIC' }, 'default', '2024-02-01T00:00:00Z');
    const a = serviceEntriesToModel([newer, older], [], SETTINGS);
    const b = serviceEntriesToModel([older, newer], [], SETTINGS);
    assert.deepEqual(a, b);
    assert.equal(a.services.length, 1);
    assert.equal(a.services[0].resolution, 'DNS');
    assert.deepEqual(a.services[0].ports.map((p) => `${p.port}/${p.protocol}`), ['5432/tcp', '6432/tcp']);
  });

  it('parses localities with missing trailing parts', () => {
    assert.deepEqual(parseLocality('us-east1/us-east1-b/rack-4'), { region: 'us-east1', zone: 'us-east1-b', subzone: 'rack-4' });
    assert.deepEqual(parseLocality('us-east1'), { region: 'us-east1' });
    assert.equal(parseLocality(''), undefined);
  });
});
