// Which security policies land on which proxy listener, with Istio's scoping.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { buildProxyConfig } from '../../../core/mesh/proxy-config-builder.ts';
import type { MeshSnapshot } from '../../../core/mesh/mesh-snapshot.ts';
import type { AuthorizationPolicy, PeerAuthentication, RequestAuthentication } from '../../../core/model/security.ts';
import { bookinfo, find, INGRESS, sidecar } from './mesh-fixtures.ts';

let clock = 0;
const meta = (name: string, namespace: string) => ({ name, namespace, creationTimestamp: new Date(Date.UTC(2024, 1, 1, 0, 0, clock++)).toISOString() });
const ap = (name: string, namespace: string, spec: AuthorizationPolicy['spec']): AuthorizationPolicy => ({ apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: meta(name, namespace), spec });
const pa = (name: string, namespace: string, spec: PeerAuthentication['spec']): PeerAuthentication => ({ apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: meta(name, namespace), spec });
const ra = (name: string, namespace: string, spec: RequestAuthentication['spec']): RequestAuthentication => ({ apiVersion: 'security.istio.io/v1', kind: 'RequestAuthentication', metadata: meta(name, namespace), spec });

const REVIEWS = sidecar('reviews-v1', { app: 'reviews', version: 'v1' });
const RATINGS = sidecar('ratings-v1', { app: 'ratings', version: 'v1' });

function withPolicies(parts: Partial<Pick<MeshSnapshot, 'peerAuthentications' | 'authorizationPolicies' | 'requestAuthentications'>>): MeshSnapshot {
  return { ...bookinfo(), ...parts };
}

describe('buildProxyConfig: security on inbound listeners', () => {
  it('adds root, namespace and selected AuthorizationPolicies by action, oldest first, and leaves others out', () => {
    const snap = withPolicies({
      authorizationPolicies: [
        ap('mesh-deny', 'jibe-system', { action: 'DENY', rules: [{ from: [{ source: { namespaces: ['evil'] } }] }] }),
        ap('ns-allow', 'default', { rules: [{ to: [{ operation: { methods: ['GET'] } }] }] }),
        ap('reviews-only', 'default', { selector: { matchLabels: { app: 'reviews' } }, action: 'CUSTOM', provider: { name: 'ext' }, rules: [{}] }),
        ap('other-ns', 'shop', { rules: [{}] }),
        ap('audit', 'jibe-system', { selector: { matchLabels: { app: 'reviews' } }, action: 'AUDIT', rules: [{}] }),
      ],
    });
    const authz = find(buildProxyConfig(snap, REVIEWS), 'listener', 'inbound|9080').authz;
    assert.deepEqual(authz, {
      destinationPort: 9080,
      custom: [{ name: 'AuthorizationPolicy/default/reviews-only', rules: [{}], provider: 'ext' }],
      deny: [{ name: 'AuthorizationPolicy/jibe-system/mesh-deny', rules: [{ from: [{ source: { namespaces: ['evil'] } }] }] }],
      allow: [{ name: 'AuthorizationPolicy/default/ns-allow', rules: [{ to: [{ operation: { methods: ['GET'] } }] }] }],
      audit: [{ name: 'AuthorizationPolicy/jibe-system/audit', rules: [{}] }],
    });
    const ratings = find(buildProxyConfig(snap, RATINGS), 'listener', 'inbound|9080').authz!;
    assert.deepEqual([ratings.custom.length, ratings.deny.length, ratings.allow.length, ratings.audit.length], [0, 1, 1, 0]);
  });

  it('resolves PeerAuthentication: workload over namespace over mesh, UNSET inherits, portLevelMtls per app port', () => {
    const mesh = pa('mesh', 'jibe-system', { mtls: { mode: 'STRICT' } });
    assert.equal(find(buildProxyConfig(withPolicies({ peerAuthentications: [mesh] }), REVIEWS), 'listener', 'inbound|9080').mtls, 'STRICT');
    const ns = pa('ns', 'default', { mtls: { mode: 'PERMISSIVE' } });
    assert.equal(find(buildProxyConfig(withPolicies({ peerAuthentications: [mesh, ns] }), REVIEWS), 'listener', 'inbound|9080').mtls, 'PERMISSIVE');
    const unset = pa('w', 'default', { selector: { matchLabels: { app: 'reviews' } }, mtls: { mode: 'UNSET' } });
    assert.equal(find(buildProxyConfig(withPolicies({ peerAuthentications: [mesh, ns, unset] }), REVIEWS), 'listener', 'inbound|9080').mtls, 'PERMISSIVE');
    const port = pa('p', 'default', { selector: { matchLabels: { app: 'reviews' } }, portLevelMtls: { '9080': { mode: 'DISABLE' } } });
    assert.equal(find(buildProxyConfig(withPolicies({ peerAuthentications: [mesh, port] }), REVIEWS), 'listener', 'inbound|9080').mtls, 'DISABLE');
    assert.equal(find(buildProxyConfig(withPolicies({ peerAuthentications: [mesh, port] }), RATINGS), 'listener', 'inbound|9080').mtls, 'STRICT');
    assert.equal(find(buildProxyConfig(bookinfo(), REVIEWS), 'listener', 'inbound|9080').mtls, undefined);
  });

  it('compiles RequestAuthentication jwtRules with Istio\'s default token locations', () => {
    const snap = withPolicies({
      requestAuthentications: [
        ra('jwt', 'default', { selector: { matchLabels: { app: 'reviews' } }, jwtRules: [{ issuer: 'https://issuer', jwksUri: 'https://issuer/keys', audiences: ['a'], timeout: '2s' }] }),
        ra('custom', 'jibe-system', { jwtRules: [{ issuer: 'x', jwks: '{"keys":[]}', fromHeaders: [{ name: 'x-jwt' }], forwardOriginalToken: true }] }),
      ],
    });
    assert.deepEqual(find(buildProxyConfig(snap, REVIEWS), 'listener', 'inbound|9080').jwt, [
      { name: 'RequestAuthentication/default/jwt#0', issuer: 'https://issuer', audiences: ['a'], jwksUri: 'https://issuer/keys', fromHeaders: [{ name: 'authorization', prefix: 'Bearer ' }], fromParams: ['access_token'], forwardOriginalToken: false, timeoutMs: 2000 },
      { name: 'RequestAuthentication/jibe-system/custom#0', issuer: 'x', audiences: [], jwks: '{"keys":[]}', fromHeaders: [{ name: 'x-jwt' }], fromParams: [], forwardOriginalToken: true },
    ]);
  });

  it('attaches policies to a gateway by its labels or by targetRef to a Gateway it serves', () => {
    const parts = bookinfo();
    const snap: MeshSnapshot = {
      ...parts,
      authorizationPolicies: [
        ap('by-label', 'jibe-system', { selector: { matchLabels: { istio: 'ingressgateway' } }, action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin*'] } }] }] }),
        ap('by-ref', 'default', { targetRef: { kind: 'Gateway', name: 'bookinfo-gateway' }, rules: [{}] }),
      ],
    };
    const listeners = buildProxyConfig(snap, INGRESS).filter((r) => r.type === 'listener');
    assert.ok(listeners.length > 0);
    for (const l of listeners) {
      assert.equal(l.type, 'listener');
      if (l.type !== 'listener') continue;
      assert.deepEqual(l.authz?.deny.map((p) => p.name), ['AuthorizationPolicy/jibe-system/by-label']);
      assert.deepEqual(l.authz?.allow.map((p) => p.name), ['AuthorizationPolicy/default/by-ref']);
    }
  });
});
