import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkLocalPlatforms } from '../../../cli/up/local-mesh.ts';

test('jibe up --platforms: vm and consul run locally; kubernetes says what to do instead; vm is required', () => {
  checkLocalPlatforms(['vm']);
  checkLocalPlatforms(['vm', 'consul']);
  assert.throws(() => checkLocalPlatforms(['vm', 'k8s']), (e: Error & { details?: { hint?: string } }) => /kubernetes platform locally/.test(e.message) && /--platforms vm,consul,kubernetes/.test(e.details?.hint ?? ''));
  assert.throws(() => checkLocalPlatforms(['vm', 'nomad']), /unknown platform "nomad"/);
  assert.throws(() => checkLocalPlatforms(['consul']), /needs the vm platform/);
});
