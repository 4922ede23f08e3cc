// The StateStore contract: every implementation (file, Kubernetes Secrets, Consul KV)
// runs these same cases. Call `stateStoreContract(name, factory)` from a *.test.ts file.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import type { StateStore } from '../../core/state/state-store.ts';
import { hasCode, rejectsWithCode, withStoreFixture } from './contract-helpers.ts';
import type { StoreFixture, StoreHarness } from './contract-helpers.ts';

export type StateStoreFixture = StoreFixture<StateStore>;

type Harness = StoreHarness<StateStore>;

/** Keys shaped like the ones the control plane writes, plus near-misses for prefix matching. */
const KEYS = [
  'vm/registrations/default/reviews-v3',
  'vm/registrations/default/details-v1',
  'vm/registrations/team-a/ratings-v1',
  'vm/registrationsX',
  'vm/registration',
  'tokens/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
  'ca/root',
];

/** Keys an encoding into file names, Secret names or KV paths could get wrong. */
const AWKWARD_KEYS = [
  'Upper/Case',
  'upper/case',
  'with space/and:colon',
  'ünïcödé/☃/🚀',
  'dots/../../escape',
  '.hidden',
  'percent/%2F/%',
  'trailing/',
  '//double//slash',
  'tilde~/~',
  'x'.repeat(300),
  'vm/registrations/' + 'n'.repeat(63) + '/' + 'w'.repeat(253),
];

/** Compare-and-set increment, retried on conflict as a real client would. */
async function incrementWithRetry(store: StateStore, key: string): Promise<void> {
  for (;;) {
    const current = await store.get<{ count: number }>(key);
    assert.ok(current, `${key} exists`);
    try {
      await store.put(key, { count: current.value.count + 1 }, { ifVersion: current.version });
      return;
    } catch (err) {
      if (!hasCode(err, 'JIBE_ERR_CONFLICT')) throw err;
    }
  }
}

export function stateStoreContract(name: string, factory: () => Promise<StateStoreFixture>): void {
  const withStore = (body: (h: Harness) => Promise<void>) => withStoreFixture(factory, body);

  describe(`StateStore contract: ${name}`, () => {
    it('get of a missing key is undefined; put then get returns the value and a version', () =>
      withStore(async ({ store }) => {
        assert.equal(await store.get('ca/root'), undefined);
        const value = { certPem: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n', serial: 1, tags: ['a', 'b'], nested: { ok: true, none: null } };
        const put = await store.put('ca/root', value);
        assert.equal(put.key, 'ca/root');
        assert.deepEqual(put.value, value);
        assert.ok(typeof put.version === 'string' && put.version !== '');
        assert.deepEqual(await store.get('ca/root'), put);
      }));

    it('stores any JSON value', () =>
      withStore(async ({ store }) => {
        const values: unknown[] = ['text', 42, 0, true, false, null, [], [1, 'two'], {}];
        for (const [i, value] of values.entries()) await store.put(`values/${i}`, value);
        for (const [i, value] of values.entries()) assert.deepEqual((await store.get(`values/${i}`))?.value, value);
      }));

    it('every write changes the version', () =>
      withStore(async ({ store }) => {
        const seen = new Set<string>();
        for (let i = 0; i < 5; i++) {
          const entry = await store.put('tokens/t', { uses: i });
          assert.ok(!seen.has(entry.version), `version ${entry.version} was given out before`);
          seen.add(entry.version);
        }
        // Writing the same value again is still a write.
        const same = await store.put('tokens/t', { uses: 4 });
        assert.ok(!seen.has(same.version));
      }));

    it('list(prefix) returns the matching entries sorted by key', () =>
      withStore(async ({ store }) => {
        for (const key of KEYS) await store.put(key, { key });
        const regs = await store.list<{ key: string }>('vm/registrations/');
        assert.deepEqual(regs.map((e) => e.key), [
          'vm/registrations/default/details-v1',
          'vm/registrations/default/reviews-v3',
          'vm/registrations/team-a/ratings-v1',
        ]);
        for (const e of regs) {
          assert.equal(e.value.key, e.key);
          assert.deepEqual(await store.get(e.key), e);
        }
        assert.deepEqual((await store.list('')).map((e) => e.key), [...KEYS].sort());
        assert.deepEqual((await store.list('vm/registration')).map((e) => e.key), [
          'vm/registration',
          'vm/registrations/default/details-v1',
          'vm/registrations/default/reviews-v3',
          'vm/registrations/team-a/ratings-v1',
          'vm/registrationsX',
        ]);
        assert.deepEqual(await store.list('nothing/'), []);
      }));

    it('keys with any characters round-trip and stay distinct', () =>
      withStore(async ({ store }) => {
        for (const key of AWKWARD_KEYS) await store.put(key, { key });
        for (const key of AWKWARD_KEYS) assert.deepEqual((await store.get(key))?.value, { key }, `key ${JSON.stringify(key)}`);
        assert.deepEqual((await store.list('')).map((e) => e.key), [...AWKWARD_KEYS].sort());
        assert.deepEqual((await store.list('upper/')).map((e) => e.key), ['upper/case']);
      }));

    it('callers get copies: mutating a value after put or get does not change the store', () =>
      withStore(async ({ store }) => {
        const value = { list: [1, 2] };
        const put = await store.put('k', value);
        value.list.push(3);
        put.value.list.push(4);
        const got = await store.get<{ list: number[] }>('k');
        got?.value.list.push(5);
        const [listed] = await store.list<{ list: number[] }>('k');
        listed.value.list.push(6);
        assert.deepEqual((await store.get('k'))?.value, { list: [1, 2] });
      }));

    it('delete returns true for an existing key, false for a missing one', () =>
      withStore(async ({ store }) => {
        await store.put('tokens/a', 1);
        await store.put('tokens/b', 2);
        assert.equal(await store.delete('tokens/a'), true);
        assert.equal(await store.get('tokens/a'), undefined);
        assert.equal(await store.delete('tokens/a'), false);
        assert.equal(await store.delete('never/was'), false);
        assert.deepEqual((await store.list('tokens/')).map((e) => e.key), ['tokens/b']);
      }));

    it('delete with ifVersion: a stale version conflicts and keeps the key; the current one deletes', () =>
      withStore(async ({ store }) => {
        const v1 = await store.put('tokens/a', 1);
        const v2 = await store.put('tokens/a', 2);
        await rejectsWithCode(store.delete('tokens/a', { ifVersion: v1.version }), 'JIBE_ERR_CONFLICT');
        assert.deepEqual(await store.get('tokens/a'), v2);
        assert.equal(await store.delete('tokens/a', { ifVersion: v2.version }), true);
        assert.equal(await store.get('tokens/a'), undefined);
      }));

    it('create-only (ifVersion: null) creates once, then conflicts', () =>
      withStore(async ({ store }) => {
        const created = await store.put('vm/registrations/default/reviews-v3', { ip: '10.0.0.1' }, { ifVersion: null });
        await rejectsWithCode(store.put('vm/registrations/default/reviews-v3', { ip: '10.0.0.2' }, { ifVersion: null }), 'JIBE_ERR_CONFLICT');
        assert.deepEqual(await store.get('vm/registrations/default/reviews-v3'), created);
      }));

    it('update-if-version: the current version writes, a stale one conflicts and keeps the value', () =>
      withStore(async ({ store }) => {
        const v1 = await store.put('ca/root', { gen: 1 });
        const v2 = await store.put('ca/root', { gen: 2 }, { ifVersion: v1.version });
        assert.notEqual(v2.version, v1.version);
        await rejectsWithCode(store.put('ca/root', { gen: 3 }, { ifVersion: v1.version }), 'JIBE_ERR_CONFLICT');
        assert.deepEqual(await store.get('ca/root'), v2);
      }));

    it('ifVersion on a missing key conflicts and creates nothing', () =>
      withStore(async ({ store }) => {
        const other = await store.put('other', 1);
        await rejectsWithCode(store.put('missing', 1, { ifVersion: other.version }), 'JIBE_ERR_CONFLICT');
        assert.equal(await store.get('missing'), undefined);
      }));

    it('a deleted and recreated key never reuses an old version', () =>
      withStore(async ({ store }) => {
        const v1 = await store.put('tokens/t', 1);
        const v2 = await store.put('tokens/t', 2);
        await store.delete('tokens/t');
        const again = await store.put('tokens/t', 3);
        assert.ok(![v1.version, v2.version].includes(again.version));
        await rejectsWithCode(store.put('tokens/t', 4, { ifVersion: v2.version }), 'JIBE_ERR_CONFLICT');
      }));

    it('secret values round-trip', () =>
      withStore(async ({ store }) => {
        const key = { pem: '-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n' };
        const put = await store.put('ca/root-key', key, { secret: true, ifVersion: null });
        assert.deepEqual(await store.get('ca/root-key'), put);
        assert.deepEqual(put.value, key);
      }));

    it('entries and versions survive close and reopen', (t: TestContext) =>
      withStore(async ({ store, reopen }) => {
        if (!reopen) return t.skip('store cannot be reopened');
        for (const key of KEYS) await store.put(key, { key });
        await store.delete('vm/registrationsX');
        // The newest version belongs to a deleted key: a restart must not hand it out again.
        const newest = await store.put('tokens/short-lived', { uses: 1 });
        await store.delete('tokens/short-lived');
        const before = await store.list('');
        await store.close();

        const again = await reopen();
        assert.deepEqual(await again.list(''), before);
        const recreated = await again.put('tokens/short-lived', { uses: 2 });
        assert.notEqual(recreated.version, newest.version);
        assert.ok(!before.some((e) => e.version === recreated.version), 'a version given out before the restart is not reused');
        const root = before.find((e) => e.key === 'ca/root');
        assert.ok(root);
        await again.put('ca/root', { key: 'rotated' }, { ifVersion: root.version });
      }));

    it('N parallel compare-and-set writers end with exactly N increments', () =>
      withStore(async ({ store }) => {
        const writers = 16;
        await store.put('counter', { count: 0 });
        await Promise.all(Array.from({ length: writers }, () => incrementWithRetry(store, 'counter')));
        assert.deepEqual((await store.get('counter'))?.value, { count: writers });
      }));

    it('N parallel create-only writers: exactly one wins', () =>
      withStore(async ({ store }) => {
        const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => store.put('leader', { writer: i }, { ifVersion: null })));
        const won = results.filter((r) => r.status === 'fulfilled');
        assert.equal(won.length, 1);
        for (const r of results) if (r.status === 'rejected') assert.ok(hasCode(r.reason, 'JIBE_ERR_CONFLICT'), String(r.reason));
        assert.deepEqual(await store.get('leader'), (won[0] as PromiseFulfilledResult<unknown>).value);
      }));
  });
}
