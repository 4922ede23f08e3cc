// The ConfigStore on Consul KV: one key per rule,
// `<prefix>/config/<kind>/<namespace>/<name>`, holding the resource as JSON.
// resourceVersion is the key's ModifyIndex. A batch is one Consul transaction
// of compare-and-set writes, so it lands whole or not at all, and two
// control-plane replicas writing at once never clobber each other: the loser's
// CAS fails and it rereads (or reports JIBE_ERR_CONFLICT under checkVersions).
//
// Watching: this process's own writes are announced at once, in write order;
// writes by other replicas arrive through a blocking query on the prefix and
// are diffed against what this process already knows. Every transaction also
// sets `<prefix>/config-revision`, whose ModifyIndex is the transaction's raft
// index: the version a delete's tombstone carries.
import { setTimeout as delay } from 'node:timers/promises';
import { isDeepStrictEqual } from 'node:util';
import type { ApplyOptions, ConfigEvent, ConfigStore, ResourceRef } from '../../core/config/config-store.ts';
import { JibeError } from '../../core/errors/errors.ts';
import { compareResources, DEFAULT_NAMESPACE, resourceKey } from '../../core/model/resource.ts';
import type { Resource } from '../../core/model/resource.ts';
import { DEFAULT_BACKOFF, backoffDelay, nextIndex, sleep } from './consul-backoff.ts';
import type { ConsulClient } from './consul-client.ts';
import { encodeKey, fromBase64, kvGet, kvList, kvTxn, raceDelay, toBase64 } from './consul-kv.ts';
import type { TxnOp } from './consul-kv.ts';
import type { ConsulKvEntry } from './consul-types.ts';

type Listener = (events: ConfigEvent[]) => void;

export interface ConsulConfigStoreOptions {
  /** Normalized KV prefix (`jibe/`). */
  prefix: string;
  /** Blocking-query wait of the watch. */
  waitMs?: number;
  /** Called with what the watch could not read (a foreign or corrupt key); defaults to a process warning. */
  warn?: (message: string) => void;
}

/** Writers retry a lost race (a CAS beaten by an unrelated write) this many times before reporting a conflict. */
const MAX_RACE_ATTEMPTS = 20;

export class ConsulConfigStore implements ConfigStore {
  private readonly client: ConsulClient;
  private readonly base: string;
  private readonly revisionKey: string;
  private readonly waitMs: number;
  private readonly warn: (message: string) => void;
  private readonly listeners = new Set<Listener>();
  /** KV key → the ModifyIndex this process last saw for it (from its writes or the watch). */
  private readonly known = new Map<string, { index: number; resource: Resource }>();
  /** KV keys this process deleted → the delete's index: older copies in a watch answer are stale. */
  private readonly tombstones = new Map<string, number>();
  private readonly abort = new AbortController();
  private watching: Promise<void> | undefined;
  /**
   * Transactions of this process in flight. A watch answer can arrive before
   * the transaction's own reply; it waits until the write is booked in
   * `known`, or the write would be announced twice.
   */
  private writesInFlight = 0;
  private deferred: { entries: ConsulKvEntry[]; index: number } | undefined;
  private closed = false;

  constructor(client: ConsulClient, options: ConsulConfigStoreOptions) {
    this.client = client;
    this.base = `${options.prefix}config/`;
    this.revisionKey = `${options.prefix}config-revision`;
    this.waitMs = options.waitMs ?? 60_000;
    this.warn = options.warn ?? ((message) => process.emitWarning(message, 'JibeWarning'));
  }

  async list(kind?: string): Promise<Resource[]> {
    this.assertOpen();
    const { entries } = await kvList(this.client, kind === undefined ? this.base : `${this.base}${encodeKey(kind)}/`);
    const out: Resource[] = [];
    for (const e of entries) {
      const r = this.decode(e);
      if (r && (kind === undefined || r.kind === kind)) out.push(r);
    }
    return out.sort(compareResources);
  }

  async apply(resources: Resource[], options: ApplyOptions = {}): Promise<Resource[]> {
    this.assertOpen();
    const incoming = resources.map((r, i) => normalize(r, i));
    const keys = incoming.map((r) => this.kvKeyOf(r));
    const seen = new Set<string>();
    for (const [i, key] of keys.entries()) {
      if (seen.has(key)) throw new JibeError('JIBE_ERR_DUPLICATE', 'the same resource appears twice in one apply', { resource: resourceKey(incoming[i]) });
      seen.add(key);
    }
    for (let attempt = 0; ; attempt++) {
      const current = await Promise.all(keys.map((k) => kvGet(this.client, k)));
      if (options.checkVersions) checkVersions(incoming, current.map((e) => (e ? String(e.ModifyIndex) : undefined)));
      const now = new Date().toISOString();
      const stored: Array<Resource | undefined> = [];
      const ops: TxnOp[] = [];
      const writes: Array<{ i: number; key: string; value: Resource }> = [];
      for (const [i, r] of incoming.entries()) {
        const existingEntry = current[i];
        const existing = existingEntry ? this.decode(existingEntry) : undefined;
        if (existing && sameContent(existing, r)) {
          // Identical content is not a change: no new version, no event, no push to proxies.
          stored.push(existing);
          continue;
        }
        const { resourceVersion: _rv, ...metadata } = r.metadata;
        const value: Resource = { ...r, metadata: { ...metadata, creationTimestamp: existing?.metadata.creationTimestamp ?? now } };
        ops.push({ Verb: 'cas', Key: keys[i], Value: toBase64(JSON.stringify(value)), Index: existingEntry?.ModifyIndex ?? 0 });
        writes.push({ i, key: keys[i], value });
        stored.push(undefined);
      }
      if (ops.length === 0) return stored as Resource[];
      ops.push({ Verb: 'set', Key: this.revisionKey, Value: toBase64(now) });
      const result = await this.txn(ops);
      if (!result.ok) {
        // Someone wrote one of these keys between our read and our write: read again.
        if (attempt + 1 >= MAX_RACE_ATTEMPTS) throw raceLost(incoming);
        await delay(raceDelay(attempt));
        continue;
      }
      const events: ConfigEvent[] = [];
      for (const w of writes) {
        const index = result.modifyIndex.get(w.key) as number;
        const saved: Resource = { ...w.value, metadata: { ...w.value.metadata, resourceVersion: String(index) } };
        stored[w.i] = saved;
        this.known.set(w.key, { index, resource: saved });
        this.tombstones.delete(w.key);
        events.push({ type: 'upsert', resource: saved });
      }
      this.emit(events);
      this.writeDone();
      return (stored as Resource[]).map((r) => structuredClone(r));
    }
  }

  async delete(refs: ResourceRef[]): Promise<Resource[]> {
    this.assertOpen();
    const keys: string[] = [];
    for (const ref of refs) {
      const key = this.kvKeyOf({ kind: ref.kind, metadata: { name: ref.name, namespace: ref.namespace } } as Resource);
      if (keys.includes(key)) throw new JibeError('JIBE_ERR_DUPLICATE', 'the same resource appears twice in one delete', { resource: refKey(ref) });
      keys.push(key);
    }
    if (keys.length === 0) return [];
    for (let attempt = 0; ; attempt++) {
      const current = await Promise.all(keys.map((k) => kvGet(this.client, k)));
      const missing = refs.filter((_, i) => !current[i]).map((ref) => new JibeError('JIBE_ERR_NOT_FOUND', 'resource not found', { resource: refKey(ref) }));
      if (missing.length === 1) throw missing[0];
      if (missing.length > 1) throw new JibeError('JIBE_ERR_NOT_FOUND', `${missing.length} resources not found; nothing was deleted`, { causes: missing });
      const entries = current as ConsulKvEntry[];
      const ops: TxnOp[] = entries.map((e) => ({ Verb: 'delete-cas', Key: e.Key, Index: e.ModifyIndex }));
      ops.push({ Verb: 'set', Key: this.revisionKey, Value: toBase64(new Date().toISOString()) });
      const result = await this.txn(ops);
      if (!result.ok) {
        if (attempt + 1 >= MAX_RACE_ATTEMPTS) throw raceLost(refs.map((ref) => ({ kind: ref.kind, metadata: { name: ref.name, namespace: ref.namespace } }) as Resource));
        await delay(raceDelay(attempt));
        continue;
      }
      // The tombstone carries the index of the delete, so watchers order it after the last update.
      const version = String(result.modifyIndex.get(this.revisionKey));
      const removed: Resource[] = [];
      for (const e of entries) {
        const r = this.decode(e);
        if (!r) continue;
        const tombstone = { ...r, metadata: { ...r.metadata, resourceVersion: version } };
        removed.push(tombstone);
        this.known.delete(e.Key);
        this.tombstones.set(e.Key, Number(version));
      }
      this.emit(removed.map((resource) => ({ type: 'delete', resource })));
      this.writeDone();
      return removed.map((r) => structuredClone(r));
    }
  }

  watch(listener: Listener): () => void {
    this.assertOpen();
    this.listeners.add(listener);
    this.watching ??= this.follow();
    return () => {
      this.listeners.delete(listener);
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.listeners.clear();
    this.abort.abort();
    await this.watching;
  }

  /**
   * Follows the prefix with blocking queries and announces what other writers
   * changed. The first answer is the baseline: watch() reports only changes
   * after the call.
   */
  private async follow(): Promise<void> {
    let index = 0;
    let failures = 0;
    let baseline = true;
    // The caller may write before the baseline answer lands: its own writes are in `known`
    // with their indexes and win over any older answer.
    while (!this.abort.signal.aborted) {
      try {
        const answer = await kvList(this.client, this.base, { index, waitMs: this.waitMs, signal: this.abort.signal });
        failures = 0;
        const next = nextIndex(index, answer.index);
        if (next.index === index && !baseline) continue;
        index = next.index;
        this.reconcile(answer.entries, answer.index, baseline);
        baseline = false;
      } catch (err) {
        if (this.abort.signal.aborted) return;
        if (failures === 0) this.warn(`watching Consul KV ${this.base} failed: ${(err as Error).message}; retrying`);
        index = 0;
        if (!(await sleep(backoffDelay(failures++, DEFAULT_BACKOFF), this.abort.signal))) return;
      }
    }
  }

  /** A transaction counted in flight until its caller booked it (writeDone); failures are booked here. */
  private async txn(ops: TxnOp[]): Promise<Awaited<ReturnType<typeof kvTxn>>> {
    this.writesInFlight++;
    let result: Awaited<ReturnType<typeof kvTxn>>;
    try {
      result = await kvTxn(this.client, ops);
    } catch (err) {
      this.writeDone();
      throw err;
    }
    if (!result.ok) this.writeDone();
    return result;
  }

  private writeDone(): void {
    this.writesInFlight--;
    if (this.writesInFlight === 0 && this.deferred) {
      const { entries, index } = this.deferred;
      this.deferred = undefined;
      this.reconcile(entries, index, false);
    }
  }

  private reconcile(entries: ConsulKvEntry[], snapshotIndex: number, baseline: boolean): void {
    if (this.writesInFlight > 0 && !baseline) {
      // A later answer supersedes an earlier one: reconcile diffs state, not changes.
      this.deferred = { entries, index: snapshotIndex };
      return;
    }
    const events: ConfigEvent[] = [];
    const present = new Set<string>();
    for (const e of entries) {
      present.add(e.Key);
      const known = this.known.get(e.Key);
      if (known && known.index >= e.ModifyIndex) continue;
      if ((this.tombstones.get(e.Key) ?? 0) >= e.ModifyIndex) continue;
      const resource = this.decode(e);
      if (!resource) continue;
      this.known.set(e.Key, { index: e.ModifyIndex, resource });
      if (!baseline) events.push({ type: 'upsert', resource });
    }
    for (const [key, known] of this.known) {
      // Absent from an answer taken after we last saw it: deleted by another writer.
      if (present.has(key) || known.index > snapshotIndex) continue;
      this.known.delete(key);
      if (!baseline) events.push({ type: 'delete', resource: { ...known.resource, metadata: { ...known.resource.metadata, resourceVersion: String(snapshotIndex) } } });
    }
    for (const [key, index] of this.tombstones) if (index <= snapshotIndex) this.tombstones.delete(key);
    this.emit(events);
  }

  private emit(events: ConfigEvent[]): void {
    if (events.length === 0) return;
    for (const listener of [...this.listeners]) {
      try {
        listener(structuredClone(events));
      } catch (err) {
        // The write is durable and its caller must hear that; a faulty listener must not undo it.
        this.warn(`config store watch listener threw: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      }
    }
  }

  private kvKeyOf(r: Pick<Resource, 'kind' | 'metadata'>): string {
    return `${this.base}${encodeKey(r.kind)}/${encodeKey(r.metadata.namespace ?? DEFAULT_NAMESPACE)}/${encodeKey(r.metadata.name)}`;
  }

  private decode(e: ConsulKvEntry): Resource | undefined {
    try {
      const r = JSON.parse(fromBase64(e.Value)) as Resource;
      if (!isResourceShape(r)) throw new Error('no kind or metadata.name');
      return { ...r, metadata: { ...r.metadata, resourceVersion: String(e.ModifyIndex) } };
    } catch (err) {
      this.warn(`Consul key ${e.Key} does not hold a Jibe resource (${(err as Error).message}); ignored`);
      return undefined;
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new JibeError('JIBE_ERR_STORE_IO', `the Consul config store at ${this.base} is closed`);
  }
}

function checkVersions(incoming: Resource[], current: Array<string | undefined>): void {
  const conflicts: JibeError[] = [];
  incoming.forEach((r, i) => {
    const wanted = r.metadata.resourceVersion;
    if (wanted === undefined || wanted === '') return;
    if (current[i] !== wanted) {
      conflicts.push(
        new JibeError(
          'JIBE_ERR_CONFLICT',
          current[i] === undefined ? `resource no longer exists (expected version ${wanted})` : `resource changed: expected version ${wanted}, stored version is ${current[i]}`,
          { resource: resourceKey(r), hint: 'read the resource again and reapply your change' },
        ),
      );
    }
  });
  if (conflicts.length === 1) throw conflicts[0];
  if (conflicts.length > 1) {
    throw new JibeError('JIBE_ERR_CONFLICT', `${conflicts.length} resources changed since they were read; nothing was written`, {
      causes: conflicts,
      hint: 'read the resources again and reapply your change',
    });
  }
}

function raceLost(resources: Resource[]): JibeError {
  return new JibeError('JIBE_ERR_CONFLICT', 'other writers kept changing these resources; nothing was written', {
    resource: resources.map((r) => resourceKey(r)).join(', '),
    hint: 'retry the change',
  });
}

function refKey(ref: ResourceRef): string {
  return resourceKey({ kind: ref.kind, metadata: { name: ref.name, namespace: ref.namespace } });
}

function isResourceShape(r: unknown): r is Resource {
  const o = r as Resource | null;
  return typeof o === 'object' && o !== null && typeof o.kind === 'string' && o.kind !== '' && typeof o.metadata === 'object' && o.metadata !== null && typeof o.metadata.name === 'string' && o.metadata.name !== '';
}

/** A detached, JSON-clean copy of an incoming resource; rejects what the store cannot key. */
function normalize(r: Resource, index: number): Resource {
  if (!isResourceShape(r)) throw new JibeError('JIBE_ERR_BAD_REQUEST', `resource at index ${index} has no kind or metadata.name`, { documentIndex: index });
  try {
    return JSON.parse(JSON.stringify(r)) as Resource;
  } catch (err) {
    throw new JibeError('JIBE_ERR_BAD_REQUEST', `resource cannot be stored as JSON: ${(err as Error).message}`, { resource: resourceKey(r) });
  }
}

/** Equal apart from the fields the store itself sets. */
function sameContent(a: Resource, b: Resource): boolean {
  const { resourceVersion: _av, creationTimestamp: _ac, ...am } = a.metadata;
  const { resourceVersion: _bv, creationTimestamp: _bc, ...bm } = b.metadata;
  const { apiVersion: _a1, kind: _k1, metadata: _m1, ...ar } = a as Resource & Record<string, unknown>;
  const { apiVersion: _a2, kind: _k2, metadata: _m2, ...br } = b as Resource & Record<string, unknown>;
  return a.apiVersion === b.apiVersion && isDeepStrictEqual(am, bm) && isDeepStrictEqual(ar, br);
}
