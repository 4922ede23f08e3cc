// Rules from several stores at once (`--config-store file,consul,kubernetes`):
// one ConfigStore over an ordered list of stores. Reads merge every store;
// writes go to the first (the primary), which is where `jibe apply` writes.
//
// The same kind/namespace/name in two stores: the copy in the store listed
// first wins, always, whatever order the stores synced or changed in. When the
// copies differ that is a conflict — never resolved silently: `conflicts()`
// lists it for /api/v1/status and `jibe analyze`.
//
// resourceVersion: the primary's versions are passed through unchanged, so
// compare-and-set works exactly as with that store alone; a copy that comes
// from another store carries `<store>:<version>`, which the primary never
// holds, so a compare-and-set write against it fails with JIBE_ERR_CONFLICT
// instead of overwriting a rule the caller never read.
import { isDeepStrictEqual } from 'node:util';
import { JibeError, isJibeError } from '../errors/errors.ts';
import { compareResources, compareStrings, resourceKey } from '../model/resource.ts';
import type { Resource } from '../model/resource.ts';
import type { ApplyOptions, ConfigEvent, ConfigStore, ResourceRef } from './config-store.ts';

export interface NamedConfigStore {
  /** The plugin name (`file`, `consul`, `kubernetes`), shown in conflicts and versions. */
  name: string;
  store: ConfigStore;
}

/** One resource defined differently in several stores. */
export interface ConfigStoreConflict {
  /** `Kind/namespace/name`. */
  resource: string;
  /** Stores that hold a copy, in precedence order. */
  stores: string[];
  /** The store whose copy the mesh uses (the first listed). */
  winner: string;
  message: string;
}

type Listener = (events: ConfigEvent[]) => void;

interface Member extends NamedConfigStore {
  /** What this store holds, kept from its own watch (for event translation and conflicts). */
  cache: Map<string, Resource>;
  unwatch: () => void;
}

export class MultiConfigStore implements ConfigStore {
  private readonly members: Member[];
  private readonly listeners = new Set<Listener>();

  private constructor(members: Member[]) {
    this.members = members;
  }

  /** Takes ownership of `stores` (closing this closes them). The first store is the primary. */
  static async open(stores: readonly NamedConfigStore[]): Promise<MultiConfigStore> {
    if (stores.length === 0) throw new JibeError('JIBE_ERR_PLUGIN_UNKNOWN', 'no config store was named', { hint: 'pass --config-store file (or a comma-separated list)' });
    const names = new Set<string>();
    for (const s of stores) {
      if (names.has(s.name)) throw new JibeError('JIBE_ERR_PLUGIN_DUPLICATE', `config store ${s.name} is listed twice`, { hint: 'name each store once in --config-store' });
      names.add(s.name);
    }
    const members: Member[] = stores.map((s) => ({ ...s, cache: new Map(), unwatch: () => undefined }));
    const multi = new MultiConfigStore(members);
    // Watch first, then list, so no change can fall between the two (events are idempotent on the cache).
    members.forEach((m, i) => {
      m.unwatch = m.store.watch((events) => multi.onStoreEvents(i, events));
    });
    await Promise.all(
      members.map(async (m) => {
        for (const r of await m.store.list()) if (!m.cache.has(resourceKey(r))) m.cache.set(resourceKey(r), r);
      }),
    );
    return multi;
  }

  /** Store names in precedence order; the first is where writes go. */
  storeNames(): string[] {
    return this.members.map((m) => m.name);
  }

  async list(kind?: string): Promise<Resource[]> {
    const lists = await Promise.all(this.members.map((m) => m.store.list(kind)));
    const merged = new Map<string, Resource>();
    lists.forEach((list, i) => {
      for (const r of list) {
        const key = resourceKey(r);
        if (!merged.has(key)) merged.set(key, this.tag(i, r));
      }
    });
    return [...merged.values()].sort(compareResources);
  }

  async apply(resources: Resource[], options?: ApplyOptions): Promise<Resource[]> {
    return this.members[0].store.apply(resources, options);
  }

  async delete(refs: ResourceRef[]): Promise<Resource[]> {
    try {
      return await this.members[0].store.delete(refs);
    } catch (err) {
      if (!isJibeError(err) || err.code !== 'JIBE_ERR_NOT_FOUND') throw err;
      // Say where the rule really lives: deleting it from the primary cannot remove it from the mesh.
      for (const ref of refs) {
        const key = `${ref.kind}/${ref.namespace}/${ref.name}`;
        const holders = this.members.slice(1).filter((m) => m.cache.has(key));
        if (holders.length && !this.members[0].cache.has(key)) {
          throw new JibeError('JIBE_ERR_NOT_FOUND', `${key} is not in the ${this.members[0].name} config store, where Jibe writes; it comes from the ${holders.map((h) => h.name).join(' and ')} store`, {
            resource: key,
            hint: `delete it in ${holders[0].name} itself`,
          });
        }
      }
      throw err;
    }
  }

  watch(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Resources held by several stores with different content, by resource key. */
  conflicts(): ConfigStoreConflict[] {
    const holders = new Map<string, Member[]>();
    for (const m of this.members) {
      for (const key of m.cache.keys()) {
        const list = holders.get(key);
        if (list) list.push(m);
        else holders.set(key, [m]);
      }
    }
    const out: ConfigStoreConflict[] = [];
    for (const [key, list] of holders) {
      if (list.length < 2) continue;
      const first = list[0].cache.get(key)!;
      const differing = list.slice(1).filter((m) => !sameContent(first, m.cache.get(key)!));
      if (differing.length === 0) continue;
      const stores = [list[0], ...differing].map((m) => m.name);
      out.push({
        resource: key,
        stores,
        winner: stores[0],
        message: `${key} is defined differently in the ${stores.join(' and ')} config stores; the ${stores[0]} copy is used (the first store in --config-store wins)`,
      });
    }
    return out.sort((a, b) => compareStrings(a.resource, b.resource));
  }

  async close(): Promise<void> {
    for (const m of this.members) m.unwatch();
    this.listeners.clear();
    const results = await Promise.allSettled(this.members.map((m) => m.store.close()));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /**
   * A change in store `index`, as the merged view sees it: hidden when a store
   * ahead of it holds the resource; a delete that uncovers a copy further down
   * becomes an upsert of that copy.
   */
  private onStoreEvents(index: number, events: ConfigEvent[]): void {
    const member = this.members[index];
    const out: ConfigEvent[] = [];
    for (const e of events) {
      const key = resourceKey(e.resource);
      if (e.type === 'upsert') member.cache.set(key, e.resource);
      else member.cache.delete(key);
      const winner = this.members.findIndex((m) => m.cache.has(key));
      if (winner !== -1 && winner < index) continue;
      if (e.type === 'upsert') out.push({ type: 'upsert', resource: this.tag(index, e.resource) });
      else if (winner === -1) out.push({ type: 'delete', resource: this.tag(index, e.resource) });
      else out.push({ type: 'upsert', resource: this.tag(winner, this.members[winner].cache.get(key)!) });
    }
    if (out.length === 0) return;
    for (const listener of [...this.listeners]) {
      try {
        // Every listener gets its own copies: none can change the caches or another listener's view.
        listener(out.map((e) => ({ type: e.type, resource: structuredClone(e.resource) })));
      } catch (err) {
        process.emitWarning(`config store listener failed: ${(err as Error)?.message ?? String(err)}`);
      }
    }
  }

  /** A copy of `r` as the merged store shows it (versions from other stores than the primary prefixed). */
  private tag(index: number, r: Resource): Resource {
    if (index === 0) return structuredClone(r);
    const copy = structuredClone(r);
    if (copy.metadata.resourceVersion !== undefined) copy.metadata.resourceVersion = `${this.members[index].name}:${copy.metadata.resourceVersion}`;
    return copy;
  }
}

function sameContent(a: Resource, b: Resource): boolean {
  return isDeepStrictEqual(a.spec, b.spec) && isDeepStrictEqual(a.metadata.labels ?? {}, b.metadata.labels ?? {});
}

