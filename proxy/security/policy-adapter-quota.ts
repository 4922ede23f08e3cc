// A quota adapter: a token bucket per value of one attribute (or one for all),
// the same buckets as the local rate limit (RateLimitBuckets: filled lazily
// from the clock, keyed buckets bounded LRU so a scan of source addresses
// cannot grow memory). Denials answer 429 as Envoy's local rate limit does.
import { parseConditionKey } from '../../core/model/security.ts';
import { RateLimitBuckets } from '../resilience/rate-limit-bucket.ts';
import type { PolicyAdapter, PolicyVerdict } from './policy-adapter.ts';
import { ALLOW } from './policy-adapter.ts';

export interface QuotaOptions {
  maxTokens: number;
  tokensPerFill: number;
  fillIntervalMs: number;
  /** Istio attribute key; absent = one bucket for every request. */
  key?: string;
  now?: () => number;
  /** Keyed buckets kept at most (default: the rate limit's). */
  maxKeys?: number;
}

const DENIED: PolicyVerdict = Object.freeze({ allow: false, status: 429, body: 'local_rate_limited' });

export function createQuotaAdapter(name: string, options: QuotaOptions): PolicyAdapter {
  const { maxTokens, tokensPerFill, fillIntervalMs } = options;
  if (!(maxTokens > 0 && tokensPerFill > 0 && fillIntervalMs > 0)) throw new Error(`policy adapter ${name}: maxTokens, tokensPerFill and fillIntervalMs must be positive`);
  const key = options.key === undefined ? undefined : parseConditionKey(options.key);
  if (options.key !== undefined && key === undefined) throw new Error(`policy adapter ${name}: unknown attribute ${JSON.stringify(options.key)}`);
  const now = options.now ?? (() => performance.now());
  const buckets = new RateLimitBuckets({ maxTokens, tokensPerFill, fillIntervalMs }, options.maxKeys);

  return {
    name,
    check(a) {
      // A request without the attribute shares the '' bucket, so omitting it is no way around the quota.
      const id = key === undefined ? undefined : (a.values(key.base, key.args)[0] ?? '');
      return buckets.take(buckets.bucket(id, now())) ? ALLOW : DENIED;
    },
  };
}
