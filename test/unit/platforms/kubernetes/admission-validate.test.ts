// The validating webhook's decision: core's full apply validation, cross
// references included, with the offending field named in the denial.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateRuleReview } from '../../../../platforms/kubernetes/admission-review.ts';
import type { Resource } from '../../../../core/model/resource.ts';

const hosts = new Set(['reviews.default.svc.cluster.local']);
const vs = (subset = 'v1', weight = 100) => ({
  apiVersion: 'networking.jibe.dev/v1',
  kind: 'VirtualService',
  metadata: { name: 'reviews', namespace: 'default', uid: 'x', generation: 1, managedFields: [] },
  spec: { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews', subset }, weight }] }] },
});
const dr: Resource = {
  apiVersion: 'networking.istio.io/v1',
  kind: 'DestinationRule',
  metadata: { name: 'reviews', namespace: 'default' },
  spec: { host: 'reviews', subsets: [{ name: 'v1', labels: { version: 'v1' } }] },
};

test('a valid rule whose subset exists is allowed', () => {
  const review = validateRuleReview({ uid: 'a', operation: 'CREATE', namespace: 'default', object: vs() }, [dr], hosts);
  assert.deepEqual(review.response, { uid: 'a', allowed: true });
});

test('a schema problem and a dangling subset are refused with their fields named', () => {
  const bad = validateRuleReview({ uid: 'b', operation: 'CREATE', namespace: 'default', object: vs('v1', 90) }, [dr], hosts).response!;
  assert.equal(bad.allowed, false);
  assert.match(bad.status!.message, /spec\.http\[0\]/);
  const dangling = validateRuleReview({ uid: 'c', operation: 'UPDATE', namespace: 'default', object: vs('v9') }, [dr], hosts).response!;
  assert.equal(dangling.allowed, false);
  assert.match(dangling.status!.message, /spec\.http\[0\]\.route\[0\]\.destination\.subset/);
  assert.match(dangling.status!.message, /JIBE_ERR_REFERENCE/);
});

test('deleting a rule others depend on is refused; an independent delete is allowed', () => {
  const current: Resource[] = [dr, { ...vs(), apiVersion: 'networking.istio.io/v1', metadata: { name: 'reviews', namespace: 'default' } } as Resource];
  const refused = validateRuleReview({ uid: 'd', operation: 'DELETE', namespace: 'default', name: 'reviews', kind: { group: 'networking.jibe.dev', version: 'v1', kind: 'DestinationRule' } }, current, hosts).response!;
  assert.equal(refused.allowed, false);
  assert.match(refused.status!.message, /dangling/);
  const allowed = validateRuleReview({ uid: 'e', operation: 'DELETE', namespace: 'default', name: 'reviews', kind: { group: 'networking.jibe.dev', version: 'v1', kind: 'VirtualService' } }, current, hosts).response!;
  assert.equal(allowed.allowed, true);
});
