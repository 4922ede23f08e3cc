// CRDs come from core's schemas: structural (every node typed, no
// additionalProperties:false beside properties), one per kind under Jibe's
// groups; deploy/kubernetes/ must hold exactly what the generator writes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildCrds, pluralOf, ruleResourceTypes, toOpenApi } from '../../../../platforms/kubernetes/kube-crds.ts';
import { KINDS } from '../../../../core/model/resource.ts';

function walk(node: Record<string, unknown>, path: string, visit: (n: Record<string, unknown>, p: string) => void): void {
  visit(node, path);
  for (const [k, v] of Object.entries((node.properties ?? {}) as Record<string, Record<string, unknown>>)) walk(v, `${path}.${k}`, visit);
  if (node.items) walk(node.items as Record<string, unknown>, `${path}[]`, visit);
  if (node.additionalProperties && typeof node.additionalProperties === 'object') walk(node.additionalProperties as Record<string, unknown>, `${path}{}`, visit);
}

test('one CRD per kind, under Jibe groups only, with a structural schema', () => {
  const crds = buildCrds();
  assert.equal(crds.length, KINDS.length);
  for (const crd of crds) {
    const spec = crd.spec as { group: string; names: { plural: string; kind: string }; versions: Array<{ schema: { openAPIV3Schema: Record<string, unknown> } }> };
    assert.match(spec.group, /jibe\.dev$/);
    assert.equal(crd.metadata.name, `${spec.names.plural}.${spec.group}`);
    walk(spec.versions[0].schema.openAPIV3Schema, spec.names.kind, (n, p) => {
      assert.ok(typeof n.type === 'string', `${p} has a type`);
      assert.ok(n.additionalProperties !== false, `${p} has no additionalProperties: false`);
      assert.ok(!(n.properties && n.additionalProperties), `${p} has not both properties and additionalProperties`);
    });
  }
});

test('plurals and the types the store reads (Jibe first, then Istio)', () => {
  assert.equal(pluralOf('AuthorizationPolicy'), 'authorizationpolicies');
  assert.equal(pluralOf('ServiceEntry'), 'serviceentries');
  const types = ruleResourceTypes();
  assert.ok(types.findIndex((t) => t.group === 'networking.istio.io') > types.findIndex((t) => t.group === 'networking.jibe.dev'));
  assert.deepEqual(toOpenApi({ type: 'object' }), { type: 'object', 'x-kubernetes-preserve-unknown-fields': true });
});
