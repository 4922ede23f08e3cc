// mTLS facts the control plane compiles: DestinationRule tls → UpstreamTls,
// auto mTLS readiness of endpoints, gateway server tls, the pushed trust bundle.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileGatewayTls, compileUpstreamTls, workloadTakesMtls } from '../../../core/mesh/build-tls.ts';
import { meshResource } from '../../../core/mesh/build-sidecar-listeners.ts';
import type { MeshSnapshot } from '../../../core/mesh/mesh-snapshot.ts';
import { DEFAULT_MESH_SETTINGS } from '../../../core/mesh/mesh-snapshot.ts';
import type { Workload } from '../../../core/model/workload.ts';

const IDS = ['spiffe://cluster.local/ns/default/sa/reviews'];

describe('compileUpstreamTls', () => {
  it('no rule: AUTO with the workloads identities; nothing at all without identities', () => {
    assert.deepEqual(compileUpstreamTls(undefined, IDS), { mode: 'AUTO', subjectAltNames: IDS });
    assert.equal(compileUpstreamTls(undefined, []), undefined);
  });
  it('ISTIO_MUTUAL keeps the rule subjectAltNames over the workloads, DISABLE drops everything', () => {
    assert.deepEqual(compileUpstreamTls({ mode: 'ISTIO_MUTUAL' }, IDS), { mode: 'ISTIO_MUTUAL', subjectAltNames: IDS });
    assert.deepEqual(compileUpstreamTls({ mode: 'ISTIO_MUTUAL', subjectAltNames: ['spiffe://x/ns/a/sa/b'], sni: 'r' }, IDS), { mode: 'ISTIO_MUTUAL', subjectAltNames: ['spiffe://x/ns/a/sa/b'], sni: 'r' });
    assert.deepEqual(compileUpstreamTls({ mode: 'DISABLE', subjectAltNames: ['a'] }, IDS), { mode: 'DISABLE' });
  });
  it('SIMPLE / MUTUAL carry the operator files and names, never the mesh identities', () => {
    assert.deepEqual(compileUpstreamTls({ mode: 'SIMPLE', caCertificates: '/etc/ca.pem', sni: 'api.example.com' }, IDS), { mode: 'SIMPLE', caCertificates: '/etc/ca.pem', sni: 'api.example.com' });
    assert.deepEqual(compileUpstreamTls({ mode: 'MUTUAL', clientCertificate: '/c.pem', privateKey: '/k.pem', subjectAltNames: ['api'], insecureSkipVerify: true }, IDS), {
      mode: 'MUTUAL', clientCertificate: '/c.pem', privateKey: '/k.pem', subjectAltNames: ['api'], insecureSkipVerify: true,
    });
  });
});

describe('mTLS facts', () => {
  const w = (labels: Record<string, string>, proxy?: Workload['proxy']) => ({ labels, proxy }) as Workload;
  it('an endpoint takes mesh mTLS only with a sidecar labelled tlsMode istio', () => {
    assert.equal(workloadTakesMtls(w({ 'security.istio.io/tlsMode': 'istio' }, {})), true);
    assert.equal(workloadTakesMtls(w({}, {})), false);
    assert.equal(workloadTakesMtls(w({ 'security.istio.io/tlsMode': 'istio' })), false);
  });
  it('gateway servers terminate SIMPLE and MUTUAL only', () => {
    const server = (tls: Record<string, unknown>) => ({ port: { number: 443, name: 'https', protocol: 'HTTPS' }, hosts: ['*'], tls });
    assert.deepEqual(compileGatewayTls(server({ mode: 'MUTUAL', serverCertificate: '/s.pem', privateKey: '/k.pem', caCertificates: '/ca.pem', minProtocolVersion: 'TLSV1_3' })), {
      mode: 'MUTUAL', serverCertificate: '/s.pem', privateKey: '/k.pem', caCertificates: '/ca.pem', minProtocolVersion: 'TLSv1.3',
    });
    assert.equal(compileGatewayTls(server({ mode: 'PASSTHROUGH' })), undefined);
  });
  it('the mesh resource carries the trust bundle when the snapshot has one', () => {
    const base = { version: 1, settings: DEFAULT_MESH_SETTINGS, services: new Map(), workloads: [], workloadsByService: new Map(), virtualServices: [], destinationRules: [], gateways: [] } as MeshSnapshot;
    assert.equal(meshResource(base).trustBundle, undefined);
    assert.deepEqual(meshResource({ ...base, trustBundle: ['ROOT-A', 'ROOT-B'] }).trustBundle, ['ROOT-A', 'ROOT-B']);
  });
});
