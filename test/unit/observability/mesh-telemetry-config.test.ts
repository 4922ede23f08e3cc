// MeshConfig's telemetry settings (accessLog, tracing): validated at apply
// time with the field named, and compiled into every proxy's mesh resource,
// which the proxy lays over its own flags.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseDocuments } from '../../../core/config/load-documents.ts';
import { validateResource } from '../../../core/config/validate-resource.ts';
import { buildProxyConfig } from '../../../core/mesh/proxy-config-builder.ts';
import type { MeshConfig, MeshConfigSpec } from '../../../core/model/mesh-config.ts';
import { INGRESS, bookinfo, find, sidecar } from '../mesh/mesh-fixtures.ts';

function problems(spec: string): Array<[string, string | undefined]> {
  const docs = parseDocuments(`apiVersion: jibe.dev/v1alpha1\nkind: MeshConfig\nmetadata: { name: mesh, namespace: jibe-system }\nspec: ${spec}\n`, 'mesh.yaml');
  return validateResource(docs[0]).map((e) => [e.code, e.details.field]);
}

function meshOf(spec: MeshConfigSpec | undefined, node = sidecar('productpage-v1', { app: 'productpage', version: 'v1' })) {
  const meshConfig: MeshConfig | undefined = spec && { apiVersion: 'jibe.dev/v1alpha1', kind: 'MeshConfig', metadata: { name: 'mesh', namespace: 'jibe-system' }, spec };
  const s = bookinfo();
  return find(buildProxyConfig(meshConfig ? { ...s, meshConfig } : s, node), 'mesh', 'mesh');
}

describe('MeshConfig accessLog and tracing', () => {
  it('accepts Istio-style settings', () => {
    assert.deepEqual(problems('{ accessLog: { encoding: TEXT }, tracing: { sampling: 12.5, zipkinAddress: "zipkin.jibe-system:9411" } }'), []);
    assert.deepEqual(problems('{ accessLog: { disabled: true }, tracing: { zipkinAddress: "http://[::1]:9411/api/v2/spans" } }'), []);
  });

  it('names the field of each mistake', () => {
    const found = problems('{ accessLog: { encoding: XML }, tracing: { sampling: 101, zipkinAddress: "zipkin" } }').map(([, field]) => field);
    assert.ok(found.some((f) => f?.startsWith('spec.accessLog.encoding')), String(found));
    assert.ok(found.some((f) => f?.startsWith('spec.tracing.sampling')), String(found));
    assert.ok(found.includes('spec.tracing.zipkinAddress'), String(found));
    assert.ok(problems('{ tracing: { zipkinAddress: "zipkin:99999" } }').some(([, f]) => f === 'spec.tracing.zipkinAddress'));
    assert.ok(problems('{ tracing: { sampling: -1 } }').some(([, f]) => f?.startsWith('spec.tracing.sampling')));
  });

  it('leaves the mesh resource without telemetry settings when MeshConfig has none, so proxy flags decide', () => {
    const mesh = meshOf(undefined);
    assert.equal('accessLog' in mesh, false);
    assert.equal('tracing' in mesh, false);
    assert.equal('accessLog' in meshOf({ outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' } }), false);
  });

  it('compiles them into every proxy\'s mesh resource, with Istio\'s 1% default sampling', () => {
    assert.deepEqual(meshOf({ accessLog: {}, tracing: { zipkinAddress: 'zipkin:9411' } }), {
      type: 'mesh', name: 'mesh', outboundTrafficPolicy: 'ALLOW_ANY', accessLog: 'json', tracing: { sampling: 1, zipkinAddress: 'zipkin:9411' },
    });
    assert.equal(meshOf({ accessLog: { encoding: 'TEXT' } }).accessLog, 'text');
    assert.equal(meshOf({ accessLog: { encoding: 'TEXT', disabled: true } }).accessLog, 'off');
    assert.deepEqual(meshOf({ tracing: { sampling: 100 } }, INGRESS).tracing, { sampling: 100 });
  });
});
