// freePort: ports for a local mesh's processes, picked before anything binds them.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ensurePortFree, freePort } from '../../../cli/up/ports.ts';

test('freePort never hands out one port twice, nor a port a caller checked with ensurePortFree', async () => {
  // Nothing binds these between picks, as in `jibe up`: without the record of
  // handed-out ports, 400 random picks from ~20000 repeat one with odds near 98 %.
  const configured = await freePort();
  await ensurePortFree(configured + 1, '--api-port');
  const picked: number[] = [];
  for (let i = 0; i < 400; i++) picked.push(await freePort());
  assert.equal(new Set(picked).size, picked.length, 'a port was handed out twice');
  assert.ok(!picked.includes(configured) && !picked.includes(configured + 1), 'a port already given to a caller was handed out again');
});

test('freePort picks below the ephemeral range, where outgoing connections never take a local port', async () => {
  const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
  for (let i = 0; i < 50; i++) {
    const port = await freePort();
    assert.ok(port < low, `port ${port} is inside the ephemeral range (from ${low})`);
    assert.ok(port < 15000 || port >= 15100, `port ${port} is one of the mesh's well-known ports`);
  }
});
