import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDuration, tryParseDuration } from '../../../core/config/duration.ts';
import { isJibeError } from '../../../core/errors/errors.ts';

test('parses the duration forms Istio rules use, into milliseconds', () => {
  assert.equal(parseDuration('1.5s'), 1500);
  assert.equal(parseDuration('300ms'), 300);
  assert.equal(parseDuration('2m'), 120_000);
  assert.equal(parseDuration('1h'), 3_600_000);
  assert.equal(parseDuration('1h30m'), 5_400_000);
  assert.equal(parseDuration('0'), 0);
  assert.equal(parseDuration('0s'), 0);
  assert.equal(parseDuration('.5s'), 500);
  assert.equal(parseDuration('250us'), 0.25);
  assert.equal(parseDuration('250µs'), 0.25);
  assert.equal(parseDuration('1000000ns'), 1);
});

test('refuses what is not a duration, with a JIBE_ERR_SCHEMA that shows the form', () => {
  for (const bad of ['', '10', '5 seconds', '-1s', '1.5', 's', '1d', '1s ', ' 1s', '1S', '1h-30m']) {
    assert.equal(tryParseDuration(bad), undefined, bad);
    assert.throws(
      () => parseDuration(bad),
      (e) => isJibeError(e) && e.code === 'JIBE_ERR_SCHEMA' && e.message.includes(JSON.stringify(bad)) && /300ms/.test(e.details.hint ?? ''),
      bad,
    );
  }
});
