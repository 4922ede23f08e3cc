import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkLocalPlatforms, platformOf } from '../../../cli/up/local-mesh.ts';

test('jibe up --platforms: known names in a fixed order, k8s meaning kubernetes, vm required', () => {
  assert.deepEqual(checkLocalPlatforms(['vm']), ['vm']);
  assert.deepEqual(checkLocalPlatforms(['k8s', 'consul', 'vm', 'consul']), ['vm', 'consul', 'kubernetes']);
  assert.throws(() => checkLocalPlatforms(['vm', 'nomad']), /unknown platform "nomad"/);
  assert.throws(() => checkLocalPlatforms(['consul']), /needs the vm platform/);
});

test('BookInfo placement: productpage and reviews v1/v2 on Kubernetes, ratings on Consul, reviews-v3 and details stay on vm', () => {
  const all = ['vm', 'consul', 'kubernetes'];
  const names = ['productpage-v1', 'details-v1', 'reviews-v1', 'reviews-v2', 'reviews-v3', 'ratings-v1'];
  assert.deepEqual(names.map((n) => platformOf(n, all)), ['kubernetes', 'vm', 'kubernetes', 'kubernetes', 'vm', 'consul']);
  assert.deepEqual(names.map((n) => platformOf(n, ['vm'])), names.map(() => 'vm'));
});
