import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { ConfigEvent } from '../../../core/config/config-store.ts';
import { FileConfigStore } from '../../../core/config/config-store-file.ts';
import { MultiConfigStore } from '../../../core/config/config-store-multi.ts';
import { isJibeError } from '../../../core/errors/errors.ts';
import type { Resource } from '../../../core/model/resource.ts';

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

function vs(name: string, weight: number): Resource {
  return { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name, namespace: 'default' }, spec: { hosts: [name], http: [{ route: [{ destination: { host: name }, weight }] }] } };
}

const weightOf = (r: Resource | undefined) => (r?.spec as { http: Array<{ route: Array<{ weight: number }> }> }).http[0].route[0].weight;

async function stores() {
  const root = await mkdtemp(join(tmpdir(), 'jibe-multi-unit-'));
  dirs.push(root);
  const file = await FileConfigStore.open(join(root, 'file'));
  const consul = await FileConfigStore.open(join(root, 'consul'));
  const kube = await FileConfigStore.open(join(root, 'kube'));
  return { file, consul, kube };
}

describe('MultiConfigStore', () => {
  it('merges every store; the first store listed wins a resource both define, and the clash is reported', async () => {
    const { file, consul, kube } = await stores();
    await file.apply([vs('reviews', 100)]);
    await consul.apply([vs('reviews', 50), vs('ratings', 100)]);
    await kube.apply([vs('details', 100), vs('ratings', 100)]);
    const multi = await MultiConfigStore.open([
      { name: 'file', store: file },
      { name: 'consul', store: consul },
      { name: 'kubernetes', store: kube },
    ]);
    try {
      const listed = await multi.list();
      assert.deepEqual(listed.map((r) => r.metadata.name), ['details', 'ratings', 'reviews']);
      assert.equal(weightOf(listed.find((r) => r.metadata.name === 'reviews')), 100);
      // Versions of copies from other stores name their store, so compare-and-set against them cannot overwrite.
      assert.match(listed.find((r) => r.metadata.name === 'ratings')!.metadata.resourceVersion!, /^consul:/);
      assert.match(listed.find((r) => r.metadata.name === 'details')!.metadata.resourceVersion!, /^kubernetes:/);
      // Identical copies (ratings) are not a conflict.
      assert.deepEqual(multi.conflicts().map((c) => [c.resource, c.stores, c.winner]), [['VirtualService/default/reviews', ['file', 'consul'], 'file']]);
      assert.match(multi.conflicts()[0].message, /first store in --config-store wins/);
    } finally {
      await multi.close();
    }
  });

  it('writes go to the first store; a rule from another store is not deleted there by mistake', async () => {
    const { file, consul } = await stores();
    await consul.apply([vs('ratings', 100)]);
    const multi = await MultiConfigStore.open([{ name: 'file', store: file }, { name: 'consul', store: consul }]);
    try {
      await multi.apply([vs('reviews', 100)]);
      assert.deepEqual((await file.list()).map((r) => r.metadata.name), ['reviews']);
      assert.deepEqual((await consul.list()).map((r) => r.metadata.name), ['ratings']);
      await assert.rejects(multi.delete([{ kind: 'VirtualService', namespace: 'default', name: 'ratings' }]), (err: unknown) => {
        assert.ok(isJibeError(err) && err.code === 'JIBE_ERR_NOT_FOUND');
        assert.match(err.message, /comes from the consul store/);
        return true;
      });
    } finally {
      await multi.close();
    }
  });

  it('watch shows the merged view: shadowed changes are hidden, a delete uncovers the next copy', async () => {
    const { file, consul } = await stores();
    const multi = await MultiConfigStore.open([{ name: 'file', store: file }, { name: 'consul', store: consul }]);
    const seen: string[] = [];
    const describe = (e: ConfigEvent) => `${e.type} ${e.resource.metadata.name} ${weightOf(e.resource)} ${e.resource.metadata.resourceVersion?.split(':')[0]}`;
    multi.watch((events) => seen.push(...events.map(describe)));
    try {
      await consul.apply([vs('reviews', 10)]);
      await file.apply([vs('reviews', 20)]);
      await consul.apply([vs('reviews', 30)]); // hidden behind file's copy
      assert.equal(multi.conflicts().length, 1);
      await file.delete([{ kind: 'VirtualService', namespace: 'default', name: 'reviews' }]);
      await consul.delete([{ kind: 'VirtualService', namespace: 'default', name: 'reviews' }]);
      assert.deepEqual(seen.map((s) => s.replace(/ \d+$/, ' n')), ['upsert reviews 10 consul', 'upsert reviews 20 n', 'upsert reviews 30 consul', 'delete reviews 30 consul']);
      assert.deepEqual(multi.conflicts(), []);
    } finally {
      await multi.close();
    }
  });

  it('refuses a store named twice', async () => {
    const { file, consul, kube } = await stores();
    try {
      await assert.rejects(MultiConfigStore.open([{ name: 'file', store: file }, { name: 'file', store: file }]), /listed twice/);
    } finally {
      await Promise.all([file.close(), consul.close(), kube.close()]);
    }
  });
});
