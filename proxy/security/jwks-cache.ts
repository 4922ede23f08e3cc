// Key sets fetched from jwksUri (or found through the issuer's OpenID
// discovery document), shared by every listener of the proxy: one fetch in
// flight per URI, kept for `refreshMs` (Istio refreshes every 20 minutes), and
// refetched early — at most every `minRefetchMs` — when a token names a key
// the cached set lacks (the issuer rotated its keys).
import { JwtError, parseJwks } from './jwt-verify.ts';
import type { Jwk } from './jwt-verify.ts';

interface Entry {
  keys: Jwk[] | undefined;
  fetchedAt: number;
  pending: Promise<Jwk[]> | undefined;
}

export interface JwksCacheOptions {
  refreshMs?: number;
  minRefetchMs?: number;
  now?: () => number;
}

export class JwksCache {
  private readonly entries = new Map<string, Entry>();
  private readonly refreshMs: number;
  private readonly minRefetchMs: number;
  private readonly now: () => number;

  constructor(options: JwksCacheOptions = {}) {
    this.refreshMs = options.refreshMs ?? 20 * 60_000;
    this.minRefetchMs = options.minRefetchMs ?? 30_000;
    this.now = options.now ?? Date.now;
  }

  /** Cached keys when fresh (the hot path stays synchronous), else undefined. */
  peek(uri: string): Jwk[] | undefined {
    const e = this.entries.get(uri);
    return e?.keys !== undefined && this.now() - e.fetchedAt < this.refreshMs ? e.keys : undefined;
  }

  /** Keys for `uri`, fetching when stale or when `missingKid` asks for a key rotation. Falls back to stale keys when a refetch fails. */
  async get(uri: string, timeoutMs: number, missingKid = false): Promise<Jwk[]> {
    let e = this.entries.get(uri);
    if (e === undefined) this.entries.set(uri, (e = { keys: undefined, fetchedAt: 0, pending: undefined }));
    const age = this.now() - e.fetchedAt;
    const stale = e.keys === undefined || age >= this.refreshMs || (missingKid && age >= this.minRefetchMs);
    if (!stale) return e.keys!;
    const entry = e;
    entry.pending ??= fetchJwks(uri, timeoutMs)
      .then((keys) => {
        entry.keys = keys;
        entry.fetchedAt = this.now();
        return keys;
      })
      .finally(() => (entry.pending = undefined));
    try {
      return await entry.pending;
    } catch (err) {
      if (entry.keys !== undefined) return entry.keys;
      throw err;
    }
  }
}

async function fetchJwks(uri: string, timeoutMs: number): Promise<Jwk[]> {
  return parseJwks(await fetchText(uri, timeoutMs));
}

/** `<issuer>/.well-known/openid-configuration` → its jwks_uri. */
export async function discoverJwksUri(issuer: string, timeoutMs: number): Promise<string> {
  const text = await fetchText(`${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`, timeoutMs);
  let uri: unknown;
  try {
    uri = (JSON.parse(text) as { jwks_uri?: unknown }).jwks_uri;
  } catch {
    uri = undefined;
  }
  if (typeof uri !== 'string') throw new JwtError('Jwks remote fetch is failed');
  return uri;
}

async function fetchText(uri: string, timeoutMs: number): Promise<string> {
  let res: Response;
  try {
    res = await fetch(uri, { signal: AbortSignal.timeout(timeoutMs), redirect: 'follow' });
  } catch {
    throw new JwtError('Jwks remote fetch is failed');
  }
  if (!res.ok) {
    await res.body?.cancel();
    throw new JwtError('Jwks remote fetch is failed');
  }
  return res.text();
}
