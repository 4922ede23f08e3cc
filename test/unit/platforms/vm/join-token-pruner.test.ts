// The periodic pruning of expired join tokens: what a run removes, that the
// schedule runs it (fake clock, no waiting on real time), that two replicas
// pruning the same store delete each token once, and that stop ends it.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { FileStateStore } from '../../../../core/state/state-store-file.ts';
import { JoinTokenPruner } from '../../../../platforms/vm/join-token-pruner.ts';
import { createJoinToken, JOIN_TOKEN_STORE_PREFIX, listJoinTokens } from '../../../../platforms/vm/join-token-store.ts';
import type { JoinTokenIssuer } from '../../../../platforms/vm/join-token-store.ts';

const ISSUER: JoinTokenIssuer = { trustDomain: 'cluster.local', rootSha256: 'ab'.repeat(32), controlPlane: 'spiffe://cluster.local/ns/jibe-system/sa/jibe-control-plane', addresses: ['192.0.2.10:15015'] };
const T0 = Date.parse('2030-01-01T00:00:00Z');
const DAY = 24 * 3600_000;

describe('JoinTokenPruner', () => {
  let dir: string;
  let state: FileStateStore;
  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jibe-prune-'));
    state = await FileStateStore.open(dir);
    // Expires at T0+1s, at T0+2 days, and one that lives 30 days.
    await createJoinToken(state, ISSUER, { namespace: 'default', serviceAccount: 'a', ttlMs: 1000 }, T0);
    await createJoinToken(state, ISSUER, { namespace: 'default', serviceAccount: 'b', ttlMs: 2 * DAY }, T0);
    await createJoinToken(state, ISSUER, { namespace: 'default', serviceAccount: 'c', ttlMs: 30 * DAY }, T0);
  });
  afterEach(async () => {
    mock.timers.reset();
    await state.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const accounts = async () => (await listJoinTokens(state)).map((t) => t.serviceAccount).sort();

  it('removes only tokens expired longer than the grace, and says how many', async () => {
    const lines: string[] = [];
    let now = T0 + 12 * 3600_000;
    const pruner = new JoinTokenPruner(state, { now: () => now, log: (m) => lines.push(m) });
    assert.equal(await pruner.runOnce(), 0, 'expired 12 h ago: still within the day of grace');
    assert.deepEqual(lines, []);
    now = T0 + 1000 + DAY + 1;
    assert.equal(await pruner.runOnce(), 1);
    assert.deepEqual(await accounts(), ['b', 'c']);
    assert.deepEqual(lines, ['pruned 1 expired join token(s)']);
    now = T0 + 3 * DAY + 1;
    assert.equal(await pruner.runOnce(), 1);
    assert.deepEqual(await accounts(), ['c']);
  });

  it('runs on its interval once started (first run within one interval), and not after stop', async () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    let runs = 0;
    const pruner = new JoinTokenPruner(state, { intervalMs: 60_000, now: () => T0 + 10 * DAY, random: () => 0.5, log: () => runs++ });
    pruner.start();
    mock.timers.tick(29_999);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(await accounts(), ['a', 'b', 'c'], 'nothing before the jittered first run');
    mock.timers.tick(1);
    await waitUntil(async () => runs === 1);
    assert.deepEqual(await accounts(), ['c']);
    assert.equal(runs, 1);
    await pruner.stop();
    mock.timers.tick(10 * 60_000);
    await new Promise((r) => setImmediate(r));
    assert.equal(runs, 1, 'a stopped pruner does not run');
  });

  it('two replicas pruning the same store delete each token once', async () => {
    const now = () => T0 + 10 * DAY;
    const [x, y] = [new JoinTokenPruner(state, { now }), new JoinTokenPruner(state, { now })];
    const [px, py] = await Promise.all([x.runOnce(), y.runOnce()]);
    assert.equal(px + py, 2);
    assert.deepEqual((await state.list(JOIN_TOKEN_STORE_PREFIX)).length, 1);
  });
});

/** Polls on the event loop (setTimeout is mocked here) for at most 10 s of real time. */
async function waitUntil(check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setImmediate(r));
  }
  throw new Error('condition never held');
}
