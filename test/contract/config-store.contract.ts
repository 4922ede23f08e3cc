// The ConfigStore contract: every implementation (file, Kubernetes CRDs, Consul KV)
// runs these same cases. Call `configStoreContract(name, factory)` from a *.test.ts file.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import type { ConfigEvent, ConfigStore } from '../../core/config/config-store.ts';
import type { Resource } from '../../core/model/resource.ts';
import { Collector, hasCode, rejectsWithCode, withStoreFixture } from './contract-helpers.ts';
import type { StoreFixture, StoreHarness } from './contract-helpers.ts';

export type ConfigStoreFixture = StoreFixture<ConfigStore>;

type Harness = StoreHarness<ConfigStore>;

function vs(name: string, namespace = 'default', weight = 100): Resource {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name, namespace, labels: { app: name } },
    spec: { hosts: [name], http: [{ route: [{ destination: { host: name, subset: 'v1' }, weight }] }] },
  };
}

function dr(name: string, namespace = 'default'): Resource {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'DestinationRule',
    metadata: { name, namespace },
    spec: { host: name, subsets: [{ name: 'v1', labels: { version: 'v1' } }] },
  };
}

function ids(resources: Resource[]): string[] {
  return resources.map((r) => `${r.kind}/${r.metadata.namespace}/${r.metadata.name}`);
}

function eventIds(events: ConfigEvent[]): string[] {
  return events.map((e) => `${e.type} ${e.resource.kind}/${e.resource.metadata.namespace}/${e.resource.metadata.name}`);
}

function version(r: Resource | undefined): string {
  const v = r?.metadata.resourceVersion;
  assert.ok(typeof v === 'string' && v !== '', `expected a resourceVersion on ${JSON.stringify(r?.metadata)}`);
  return v;
}

/** Compare-and-set increment of `spec.count`, retried on conflict as a real client would. */
async function incrementWithRetry(store: ConfigStore, name: string): Promise<number> {
  for (let attempts = 1; ; attempts++) {
    const [current] = (await store.list('VirtualService')).filter((r) => r.metadata.name === name);
    const spec = current.spec as { count: number };
    try {
      await store.apply([{ ...current, spec: { ...spec, count: spec.count + 1 } }], { checkVersions: true });
      return attempts;
    } catch (err) {
      if (!hasCode(err, 'JIBE_ERR_CONFLICT')) throw err;
    }
  }
}

export function configStoreContract(name: string, factory: () => Promise<ConfigStoreFixture>): void {
  const withStore = (body: (h: Harness) => Promise<void>) => withStoreFixture(factory, body);

  describe(`ConfigStore contract: ${name}`, () => {
    it('apply then list returns the resources sorted by kind/namespace/name, with version and creation time', () =>
      withStore(async ({ store }) => {
        const applied = await store.apply([vs('reviews', 'team-a'), vs('ratings'), dr('reviews'), vs('details', 'team-a')]);
        assert.equal(applied.length, 4);
        const listed = await store.list();
        assert.deepEqual(ids(listed), [
          'DestinationRule/default/reviews',
          'VirtualService/default/ratings',
          'VirtualService/team-a/details',
          'VirtualService/team-a/reviews',
        ]);
        for (const r of listed) {
          version(r);
          assert.ok(!Number.isNaN(Date.parse(r.metadata.creationTimestamp ?? '')), 'creationTimestamp is a date');
        }
        const ratings = listed.find((r) => r.metadata.name === 'ratings');
        assert.deepEqual(ratings?.spec, vs('ratings').spec);
        assert.deepEqual(ratings?.metadata.labels, { app: 'ratings' });
        assert.equal(ratings?.apiVersion, 'networking.istio.io/v1');
        // What apply returned is what is stored.
        assert.deepEqual(ids(applied).sort(), ids(listed).sort());
        assert.deepEqual(applied.find((r) => r.metadata.name === 'ratings'), ratings);
      }));

    it('list(kind) returns only that kind', () =>
      withStore(async ({ store }) => {
        await store.apply([vs('reviews'), dr('reviews'), dr('ratings')]);
        assert.deepEqual(ids(await store.list('DestinationRule')), ['DestinationRule/default/ratings', 'DestinationRule/default/reviews']);
        assert.deepEqual(await store.list('Gateway'), []);
      }));

    it('an update changes resourceVersion and keeps creationTimestamp', () =>
      withStore(async ({ store }) => {
        const [first] = await store.apply([vs('reviews', 'default', 100)]);
        const [second] = await store.apply([vs('reviews', 'default', 50)]);
        assert.notEqual(version(second), version(first));
        assert.equal(second.metadata.creationTimestamp, first.metadata.creationTimestamp);
        const [listed] = await store.list();
        assert.equal(version(listed), version(second));
        assert.equal((listed.spec as { http: { route: { weight: number }[] }[] }).http[0].route[0].weight, 50);
      }));

    it('re-applying identical content is not a change: same version, no event', () =>
      withStore(async ({ store }) => {
        const [first] = await store.apply([vs('reviews')]);
        const seen = new Collector<ConfigEvent>();
        const stop = store.watch(seen.push);
        try {
          const [again] = await store.apply([vs('reviews')]);
          assert.equal(version(again), version(first));
          await store.apply([vs('marker')]);
          const events = await seen.waitFor(1);
          assert.deepEqual(eventIds(events), ['upsert VirtualService/default/marker']);
        } finally {
          stop();
        }
      }));

    it('checkVersions: the current version writes, a stale one fails with JIBE_ERR_CONFLICT', () =>
      withStore(async ({ store }) => {
        const [v1] = await store.apply([vs('reviews', 'default', 100)]);
        const [v2] = await store.apply([{ ...vs('reviews', 'default', 90), metadata: { ...v1.metadata } }], { checkVersions: true });
        assert.notEqual(version(v2), version(v1));
        await rejectsWithCode(store.apply([{ ...vs('reviews', 'default', 10), metadata: { ...v1.metadata } }], { checkVersions: true }), 'JIBE_ERR_CONFLICT');
        const [stored] = await store.list();
        assert.equal(version(stored), version(v2));
        assert.deepEqual(stored.spec, vs('reviews', 'default', 90).spec);
      }));

    it('checkVersions: a batch with one stale item writes none of it', () =>
      withStore(async ({ store }) => {
        const [oldRatings] = await store.apply([vs('ratings', 'default', 100)]);
        await store.apply([vs('ratings', 'default', 80)]);
        const before = structuredClone(await store.list());
        await rejectsWithCode(
          store.apply([vs('brand-new'), dr('reviews'), { ...vs('ratings', 'default', 1), metadata: { ...oldRatings.metadata } }], { checkVersions: true }),
          'JIBE_ERR_CONFLICT',
        );
        assert.deepEqual(await store.list(), before);
      }));

    it('checkVersions: a version on a resource that does not exist conflicts', () =>
      withStore(async ({ store }) => {
        const [gone] = await store.apply([vs('reviews')]);
        await store.delete([{ kind: 'VirtualService', namespace: 'default', name: 'reviews' }]);
        await rejectsWithCode(store.apply([gone], { checkVersions: true }), 'JIBE_ERR_CONFLICT');
        assert.deepEqual(await store.list(), []);
      }));

    it('without checkVersions a stale resourceVersion is ignored', () =>
      withStore(async ({ store }) => {
        const [v1] = await store.apply([vs('reviews', 'default', 100)]);
        await store.apply([vs('reviews', 'default', 90)]);
        const [v3] = await store.apply([{ ...vs('reviews', 'default', 70), metadata: { ...v1.metadata } }]);
        assert.notEqual(version(v3), version(v1));
        assert.deepEqual((await store.list())[0].spec, vs('reviews', 'default', 70).spec);
      }));

    it('delete removes the resources and returns them', () =>
      withStore(async ({ store }) => {
        await store.apply([vs('reviews'), dr('reviews'), vs('ratings')]);
        const removed = await store.delete([
          { kind: 'VirtualService', namespace: 'default', name: 'reviews' },
          { kind: 'DestinationRule', namespace: 'default', name: 'reviews' },
        ]);
        assert.deepEqual(ids(removed).sort(), ['DestinationRule/default/reviews', 'VirtualService/default/reviews']);
        assert.deepEqual(removed.find((r) => r.kind === 'DestinationRule')?.spec, dr('reviews').spec);
        assert.deepEqual(ids(await store.list()), ['VirtualService/default/ratings']);
      }));

    it('delete of a missing ref fails with JIBE_ERR_NOT_FOUND and deletes nothing', () =>
      withStore(async ({ store }) => {
        await store.apply([vs('reviews'), vs('ratings')]);
        const before = structuredClone(await store.list());
        await rejectsWithCode(
          store.delete([
            { kind: 'VirtualService', namespace: 'default', name: 'reviews' },
            { kind: 'VirtualService', namespace: 'default', name: 'missing' },
          ]),
          'JIBE_ERR_NOT_FOUND',
        );
        assert.deepEqual(await store.list(), before);
      }));

    it('watch delivers every change after the call, in order', () =>
      withStore(async ({ store }) => {
        await store.apply([vs('existing')]);
        const seen = new Collector<ConfigEvent>();
        const stop = store.watch(seen.push);
        try {
          await store.apply([vs('reviews', 'default', 100)]);
          await store.apply([vs('reviews', 'default', 60), dr('reviews')]);
          await store.delete([{ kind: 'VirtualService', namespace: 'default', name: 'reviews' }]);
          await store.apply([vs('ratings')]);
          const events = await seen.waitFor(5);
          // Within one batch the order is the store's; across batches it is the write order.
          assert.deepEqual(eventIds(events.slice(0, 1)), ['upsert VirtualService/default/reviews']);
          assert.deepEqual(eventIds(events.slice(1, 3)).sort(), ['upsert DestinationRule/default/reviews', 'upsert VirtualService/default/reviews']);
          assert.deepEqual(eventIds(events.slice(3)), ['delete VirtualService/default/reviews', 'upsert VirtualService/default/ratings']);
          const update = events.slice(1, 3).find((e) => e.resource.kind === 'VirtualService');
          assert.deepEqual(update?.resource.spec, vs('reviews', 'default', 60).spec);
          assert.notEqual(version(update?.resource), version(events[0].resource));
          assert.equal(events.length, 5, 'no event for the resource that existed before watch()');
        } finally {
          stop();
        }
      }));

    it('unsubscribe stops delivery to that listener only', () =>
      withStore(async ({ store }) => {
        const stopped = new Collector<ConfigEvent>();
        const kept = new Collector<ConfigEvent>();
        const stop = store.watch(stopped.push);
        const stopKept = store.watch(kept.push);
        try {
          await store.apply([vs('one')]);
          await stopped.waitFor(1);
          stop();
          await store.apply([vs('two')]);
          await kept.waitFor(2);
          assert.deepEqual(eventIds(stopped.items), ['upsert VirtualService/default/one']);
        } finally {
          stopKept();
        }
      }));

    it('callers get copies: mutating inputs, results, lists or events does not change the store', () =>
      withStore(async ({ store }) => {
        const seen = new Collector<ConfigEvent>();
        const stop = store.watch(seen.push);
        try {
          const input = vs('reviews');
          const [result] = await store.apply([input]);
          const snapshot = structuredClone(await store.list());
          input.metadata.labels = { hacked: 'input' };
          result.metadata.labels = { hacked: 'result' };
          (result.spec as { hosts: string[] }).hosts.push('evil');
          const [listed] = await store.list();
          (listed.spec as { hosts: string[] }).hosts.push('evil');
          const [event] = await seen.waitFor(1);
          event.resource.metadata.name = 'renamed';
          assert.deepEqual(await store.list(), snapshot);
        } finally {
          stop();
        }
      }));

    it('resources and versions survive close and reopen', (t: TestContext) =>
      withStore(async ({ store, reopen }) => {
        if (!reopen) return t.skip('store cannot be reopened');
        const seenVersions = new Set<string>();
        for (const r of await store.apply([vs('reviews'), dr('reviews'), vs('ratings', 'team-a')])) seenVersions.add(version(r));
        for (const r of await store.apply([vs('reviews', 'default', 40)])) seenVersions.add(version(r));
        await store.delete([{ kind: 'DestinationRule', namespace: 'default', name: 'reviews' }]);
        const before = structuredClone(await store.list());
        await store.close();

        const again = await reopen();
        assert.deepEqual(await again.list(), before);
        const [updated] = await again.apply([vs('reviews', 'default', 30)]);
        assert.ok(!seenVersions.has(version(updated)), 'a version given out before the restart is not reused');
        await rejectsWithCode(again.apply([before[0]], { checkVersions: true }), 'JIBE_ERR_CONFLICT');
      }));

    it('concurrent applies of different resources all land', () =>
      withStore(async ({ store }) => {
        const names = Array.from({ length: 20 }, (_, i) => `svc-${String(i).padStart(2, '0')}`);
        await Promise.all(names.map((n) => store.apply([vs(n)])));
        assert.deepEqual((await store.list()).map((r) => r.metadata.name), names);
      }));

    it('concurrent compare-and-set updates of one resource lose no increment', () =>
      withStore(async ({ store }) => {
        const writers = 10;
        await store.apply([{ ...vs('counter'), spec: { count: 0 } }]);
        await Promise.all(Array.from({ length: writers }, () => incrementWithRetry(store, 'counter')));
        const [counter] = await store.list();
        assert.equal((counter.spec as { count: number }).count, writers);
      }));

    it('a rejected batch emits no watch event', () =>
      withStore(async ({ store }) => {
        const [old] = await store.apply([vs('reviews', 'default', 100)]);
        await store.apply([vs('reviews', 'default', 90)]);
        const seen = new Collector<ConfigEvent>();
        const stop = store.watch(seen.push);
        try {
          await rejectsWithCode(store.apply([vs('new-one'), old], { checkVersions: true }), 'JIBE_ERR_CONFLICT');
          await rejectsWithCode(store.delete([{ kind: 'VirtualService', namespace: 'default', name: 'nope' }]), 'JIBE_ERR_NOT_FOUND');
          await store.apply([vs('marker')]);
          assert.deepEqual(eventIds(await seen.waitFor(1)), ['upsert VirtualService/default/marker']);
        } finally {
          stop();
        }
      }));
  });
}
