// The StateStore on Consul KV: the control plane's own state (CA root and key,
// join and bootstrap tokens, VM registrations) under `<prefix>/state/`, shared
// by every control-plane replica on that Consul. A version is the entry's
// ModifyIndex (a raft index: it changes on every write and is never reused,
// not even after a delete), and compare-and-set is Consul's `cas`, so two
// replicas never overwrite each other's writes.
import { randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { JibeError } from '../../core/errors/errors.ts';
import { compareStrings } from '../../core/model/resource.ts';
import type { PutOptions, StateEntry, StateStore } from '../../core/state/state-store.ts';
import type { ConsulClient } from './consul-client.ts';
import { decodeKey, encodeKey, fromBase64, kvGet, kvList, kvTxn, raceDelay, toBase64 } from './consul-kv.ts';
import type { TxnOp } from './consul-kv.ts';
import type { SecretBox, SealedValue } from './consul-secret-box.ts';
import type { ConsulKvEntry } from './consul-types.ts';

/** What one KV value holds: the JSON value, or it sealed. */
type Stored = ({ v: unknown } | { sealed: SealedValue }) & {
  /** Random per write: Consul skips a write of identical bytes, and every put must get a new version. */
  w?: string;
};

export interface ConsulStateStoreOptions {
  /** Normalized KV prefix (`jibe/`). */
  prefix: string;
  /** Seals `secret: true` values; without it they rely on ACLs. */
  secrets?: SecretBox;
}

export class ConsulStateStore implements StateStore {
  private readonly client: ConsulClient;
  private readonly base: string;
  private readonly secrets: SecretBox | undefined;
  private closed = false;

  constructor(client: ConsulClient, options: ConsulStateStoreOptions) {
    this.client = client;
    this.base = `${options.prefix}state/`;
    this.secrets = options.secrets;
  }

  async get<T = unknown>(key: string): Promise<StateEntry<T> | undefined> {
    this.assertOpen();
    const entry = await kvGet(this.client, this.kvKey(key));
    return entry ? this.decode<T>(key, entry) : undefined;
  }

  async put<T = unknown>(key: string, value: T, options: PutOptions = {}): Promise<StateEntry<T>> {
    this.assertOpen();
    const kvKey = this.kvKey(key);
    let text: string;
    try {
      text = JSON.stringify(value);
    } catch (err) {
      throw new JibeError('JIBE_ERR_BAD_REQUEST', `state value for ${key} is not JSON: ${(err as Error).message}`);
    }
    if (text === undefined) throw new JibeError('JIBE_ERR_BAD_REQUEST', `state value for ${key} is not JSON`);
    const w = randomBytes(6).toString('base64url');
    const stored: Stored = options.secret && this.secrets ? { sealed: this.secrets.seal(text, kvKey), w } : { v: value, w };
    const Value = toBase64(JSON.stringify(stored));
    let op: TxnOp;
    if (options.ifVersion === undefined) op = { Verb: 'set', Key: kvKey, Value };
    else {
      const index = options.ifVersion === null ? 0 : parseVersion(options.ifVersion);
      if (index === undefined) throw conflict(key, `version ${JSON.stringify(options.ifVersion)} was never given out`);
      op = { Verb: 'cas', Key: kvKey, Value, Index: index };
    }
    const result = await kvTxn(this.client, [op]);
    if (!result.ok) throw conflict(key, options.ifVersion === null ? 'the key already exists' : `the key changed since version ${options.ifVersion}`);
    const modifyIndex = result.modifyIndex.get(kvKey);
    if (modifyIndex === undefined) throw new JibeError('JIBE_ERR_CONSUL', `Consul did not report the index of its write to ${kvKey}`);
    // A JSON round trip: the caller's object is never aliased, and what it gets is what a reader gets.
    return { key, value: JSON.parse(text) as T, version: String(modifyIndex) };
  }

  async delete(key: string, options: { ifVersion?: string } = {}): Promise<boolean> {
    this.assertOpen();
    const kvKey = this.kvKey(key);
    for (let attempt = 0; ; attempt++) {
      let index: number;
      if (options.ifVersion !== undefined) {
        const wanted = parseVersion(options.ifVersion);
        if (wanted === undefined) throw conflict(key, `version ${JSON.stringify(options.ifVersion)} was never given out`);
        index = wanted;
      } else {
        const current = await kvGet(this.client, kvKey);
        if (!current) return false;
        index = current.ModifyIndex;
      }
      const result = await kvTxn(this.client, [{ Verb: 'delete-cas', Key: kvKey, Index: index }]);
      if (result.ok) return true;
      // The CAS failed: the key is gone, or it changed.
      const now = await kvGet(this.client, kvKey);
      if (!now) return false;
      if (options.ifVersion !== undefined) throw conflict(key, `the key changed since version ${options.ifVersion}`);
      await delay(raceDelay(attempt));
    }
  }

  async list<T = unknown>(prefix: string): Promise<StateEntry<T>[]> {
    this.assertOpen();
    const { entries } = await kvList(this.client, this.kvKey(prefix));
    const out: StateEntry<T>[] = [];
    for (const e of entries) {
      if (!e.Key.startsWith(this.base)) continue;
      out.push(this.decode<T>(decodeKey(e.Key.slice(this.base.length)), e));
    }
    return out.sort((a, b) => compareStrings(a.key, b.key));
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private kvKey(key: string): string {
    return this.base + encodeKey(key);
  }

  private decode<T>(key: string, entry: ConsulKvEntry): StateEntry<T> {
    let stored: Stored;
    try {
      stored = JSON.parse(fromBase64(entry.Value)) as Stored;
    } catch {
      throw new JibeError('JIBE_ERR_STORE_CORRUPT', `Consul key ${entry.Key} does not hold a Jibe state value`, { hint: 'restore it from a Consul snapshot or delete the key' });
    }
    if ('sealed' in stored) {
      if (!this.secrets) {
        throw new JibeError('JIBE_ERR_CONSUL', `the secret at Consul key ${entry.Key} is encrypted and this control plane has no key file`, {
          hint: 'start every replica with the same --consul-secret-key-file',
        });
      }
      return { key, value: JSON.parse(this.secrets.open(stored.sealed, entry.Key)) as T, version: String(entry.ModifyIndex) };
    }
    if (!stored || typeof stored !== 'object' || !('v' in stored)) {
      throw new JibeError('JIBE_ERR_STORE_CORRUPT', `Consul key ${entry.Key} does not hold a Jibe state value`, { hint: 'restore it from a Consul snapshot or delete the key' });
    }
    return { key, value: stored.v as T, version: String(entry.ModifyIndex) };
  }

  private assertOpen(): void {
    if (this.closed) throw new JibeError('JIBE_ERR_STORE_IO', 'the Consul state store is closed');
  }
}

function parseVersion(version: string): number | undefined {
  return /^[1-9]\d*$/.test(version) ? Number(version) : undefined;
}

function conflict(key: string, why: string): JibeError {
  return new JibeError('JIBE_ERR_CONFLICT', `state ${key}: ${why}`, { hint: 'read the key again and retry' });
}
