import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FullJitterBackoff } from '../../../proxy/discovery/discovery-backoff.ts';

test('the window doubles from initialMs up to maxMs and reset() starts over', () => {
  const top = new FullJitterBackoff({ initialMs: 200, maxMs: 5000 }, () => 0.999999);
  const ceilings = Array.from({ length: 8 }, () => top.next());
  assert.deepEqual(ceilings, [199, 399, 799, 1599, 3199, 4999, 4999, 4999]);
  top.reset();
  assert.equal(top.next(), 199);
  const bottom = new FullJitterBackoff({}, () => 0);
  assert.equal(bottom.next(), 0, 'full jitter may retry at once');
});

test('bad settings are refused', () => {
  assert.throws(() => new FullJitterBackoff({ initialMs: 0 }), RangeError);
  assert.throws(() => new FullJitterBackoff({ initialMs: 500, maxMs: 100 }), RangeError);
});
