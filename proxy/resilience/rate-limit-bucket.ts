// Token buckets for the local rate limit. A bucket holds at most maxTokens
// and gains tokensPerFill every fillIntervalMs, computed lazily from the clock
// when it is used (Envoy fills on a timer; the result is the same for every
// request and needs no timer per bucket). Keyed buckets (one per header value,
// source principal or source IP) live in a bounded map, least recently used
// first out, so a client sending a new key per request cannot grow memory
// without bound: at worst an evicted key starts again from a full bucket.
import type { LocalRateLimit } from '../../core/model/proxy-config.ts';

export class TokenBucket {
  tokens: number;
  /** Clock time of the last fill boundary. */
  lastFill: number;

  constructor(maxTokens: number, now: number) {
    this.tokens = maxTokens;
    this.lastFill = now;
  }
}

/** Keyed buckets kept at most (the map is the LRU: re-inserted on use, oldest evicted). */
export const DEFAULT_MAX_KEYED_BUCKETS = 10_000;

export class RateLimitBuckets {
  readonly maxTokens: number;
  readonly tokensPerFill: number;
  readonly fillIntervalMs: number;
  private readonly maxKeys: number;
  private readonly keyed = new Map<string, TokenBucket>();
  private single: TokenBucket | undefined;

  constructor(limit: Pick<LocalRateLimit, 'maxTokens' | 'tokensPerFill' | 'fillIntervalMs'>, maxKeys = DEFAULT_MAX_KEYED_BUCKETS) {
    this.maxTokens = limit.maxTokens;
    this.tokensPerFill = limit.tokensPerFill;
    this.fillIntervalMs = Math.max(1, limit.fillIntervalMs);
    this.maxKeys = Math.max(1, maxKeys);
  }

  sameSettings(limit: LocalRateLimit): boolean {
    return this.maxTokens === limit.maxTokens && this.tokensPerFill === limit.tokensPerFill && this.fillIntervalMs === Math.max(1, limit.fillIntervalMs);
  }

  /** The bucket for `key` (undefined: the limit's single bucket), filled up to `now`. */
  bucket(key: string | undefined, now: number): TokenBucket {
    let b: TokenBucket | undefined;
    if (key === undefined) {
      b = this.single ??= new TokenBucket(this.maxTokens, now);
    } else {
      b = this.keyed.get(key);
      if (b === undefined) {
        b = new TokenBucket(this.maxTokens, now);
        if (this.keyed.size >= this.maxKeys) this.keyed.delete(this.keyed.keys().next().value!);
      } else {
        this.keyed.delete(key);
      }
      this.keyed.set(key, b);
    }
    this.fill(b, now);
    return b;
  }

  /** Takes one token; false when the bucket is empty. */
  take(b: TokenBucket): boolean {
    if (b.tokens < 1) return false;
    b.tokens--;
    return true;
  }

  /** Milliseconds until the bucket next gains tokens. */
  msToNextFill(b: TokenBucket, now: number): number {
    return Math.max(0, b.lastFill + this.fillIntervalMs - now);
  }

  get keyCount(): number {
    return this.keyed.size;
  }

  private fill(b: TokenBucket, now: number): void {
    const elapsed = now - b.lastFill;
    if (elapsed < this.fillIntervalMs) return;
    const fills = Math.floor(elapsed / this.fillIntervalMs);
    b.lastFill += fills * this.fillIntervalMs;
    b.tokens = Math.min(this.maxTokens, b.tokens + fills * this.tokensPerFill);
  }
}
