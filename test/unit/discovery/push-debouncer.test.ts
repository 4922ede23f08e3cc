import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PushDebouncer } from '../../../core/discovery/push-debouncer.ts';

test('a burst fires once after the quiet period', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  let fired = 0;
  const debouncer = new PushDebouncer(() => fired++, 50, 300);
  for (let i = 0; i < 100; i++) debouncer.trigger();
  t.mock.timers.tick(49);
  assert.equal(fired, 0);
  assert.equal(debouncer.pending, true);
  t.mock.timers.tick(1);
  assert.equal(fired, 1);
  assert.equal(debouncer.pending, false);
  debouncer.stop();
});

test('a change stream that never goes quiet still fires every maxDelay', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  const firedAt: number[] = [];
  const debouncer = new PushDebouncer(() => firedAt.push(Date.now()), 50, 300);
  // A change every 40 ms, always inside the 50 ms quiet period.
  for (let now = 0; now < 1000; now += 10) {
    if (now % 40 === 0) debouncer.trigger();
    t.mock.timers.tick(10);
  }
  // Each window opens at the first change after a push (0, 320, 640) and closes 300 ms later.
  assert.deepEqual(firedAt, [300, 620, 940]);
  debouncer.stop();
});

test('stop() drops the pending change and ignores later ones', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  let fired = 0;
  const debouncer = new PushDebouncer(() => fired++, 50, 300);
  debouncer.trigger();
  debouncer.stop();
  debouncer.trigger();
  t.mock.timers.tick(1000);
  assert.equal(fired, 0);
});
