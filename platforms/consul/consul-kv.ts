// Consul KV building blocks shared by the config and state stores: key
// encoding, reads, and transactions (Consul's only atomic multi-key write).
import { JibeError } from '../../core/errors/errors.ts';
import type { ConsulClient } from './consul-client.ts';
import type { ConsulKvEntry } from './consul-types.ts';

/** Consul refuses a transaction of more operations than this. */
export const MAX_TXN_OPS = 64;

const SAFE = /[A-Za-z0-9_-]/;

/**
 * Any string → a KV key segment of `[A-Za-z0-9_-]` and `.XX` escapes (one per
 * UTF-8 byte). Consul decodes percent escapes and cleans `..` and `//` out of
 * URL paths, so only these characters survive a round trip unchanged. The
 * encoding is per character, so the encoding of a prefix is a prefix of the
 * encoding: `list(prefix)` is a KV prefix query.
 */
export function encodeKey(key: string): string {
  let out = '';
  for (const ch of key) {
    if (SAFE.test(ch)) out += ch;
    else for (const byte of Buffer.from(ch, 'utf8')) out += '.' + byte.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

export function decodeKey(encoded: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < encoded.length; i++) {
    if (encoded[i] === '.') {
      bytes.push(parseInt(encoded.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(encoded.charCodeAt(i));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/** A KV path prefix from the user (`jibe`, `/teams/jibe/`) → `jibe/` form. */
export function normalizePrefix(prefix: string): string {
  const trimmed = prefix.replace(/^\/+|\/+$/g, '');
  if (!/^[A-Za-z0-9_\-/.]+$/.test(trimmed) || trimmed.split('/').some((s) => s === '' || s === '.' || s === '..')) {
    throw new JibeError('JIBE_ERR_BAD_REQUEST', `Consul KV prefix ${JSON.stringify(prefix)} is not a plain path`, { field: 'consul.kvPrefix', hint: 'use letters, digits, -, _ and / (e.g. jibe or teams/jibe)' });
  }
  return trimmed + '/';
}

export function kvPath(key: string): string {
  return '/v1/kv/' + key;
}

/** Reads one key; undefined when it does not exist. */
export async function kvGet(client: ConsulClient, key: string): Promise<ConsulKvEntry | undefined> {
  const response = await client.get<ConsulKvEntry[]>(kvPath(key), { accept: [404] });
  return response.status === 404 ? undefined : response.body?.[0];
}

/** Every key under `prefix`, with the index a blocking query can wait past. */
export async function kvList(client: ConsulClient, prefix: string, block?: { index: number; waitMs: number; signal: AbortSignal }): Promise<{ entries: ConsulKvEntry[]; index: number }> {
  const options = { accept: [404], query: { recurse: true } };
  const response = block
    ? await client.blockingGet<ConsulKvEntry[]>(kvPath(prefix), block.index, block.waitMs, { ...options, signal: block.signal })
    : await client.get<ConsulKvEntry[]>(kvPath(prefix), options);
  return { entries: response.status === 404 || !Array.isArray(response.body) ? [] : response.body, index: response.index ?? 0 };
}

export type TxnOp =
  | { Verb: 'set'; Key: string; Value: string }
  | { Verb: 'cas'; Key: string; Value: string; Index: number }
  | { Verb: 'delete-cas'; Key: string; Index: number };

export type TxnResult = { ok: true; modifyIndex: Map<string, number> } | { ok: false; errors: Array<{ OpIndex: number; What: string }> };

/** Runs operations atomically: all apply or none (a failed CAS rolls the whole transaction back). */
export async function kvTxn(client: ConsulClient, ops: TxnOp[]): Promise<TxnResult> {
  if (ops.length > MAX_TXN_OPS) {
    throw new JibeError('JIBE_ERR_BAD_REQUEST', `one change touches ${ops.length - 1} resources; Consul applies at most ${MAX_TXN_OPS - 1} atomically`, {
      hint: 'split the change into smaller applies',
    });
  }
  const response = await client.put<{ Results?: Array<{ KV?: ConsulKvEntry }> | null; Errors?: Array<{ OpIndex: number; What: string }> | null }>(
    '/v1/txn',
    ops.map((op) => ({ KV: op })),
    { accept: [409] },
  );
  if (response.status === 409) return { ok: false, errors: response.body?.Errors ?? [] };
  const modifyIndex = new Map<string, number>();
  for (const r of response.body?.Results ?? []) if (r.KV) modifyIndex.set(r.KV.Key, r.KV.ModifyIndex);
  return { ok: true, modifyIndex };
}

export function toBase64(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64');
}

export function fromBase64(value: string | null): string {
  return value === null ? '' : Buffer.from(value, 'base64').toString('utf8');
}

/** Short random pause before retrying a lost compare-and-set race, so racers spread out. */
export function raceDelay(attempt: number): number {
  return Math.round(Math.random() * Math.min(200, 5 * 2 ** attempt));
}
