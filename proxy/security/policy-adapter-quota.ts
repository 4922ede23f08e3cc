// A quota adapter: a token bucket per value of one attribute (or one for all),
// refilled lazily on use so idle keys cost no timer. Denials answer 429 as
// Envoy's local rate limit does. Buckets idle long enough to be full again
// are dropped when the map grows, so a scan of source addresses cannot grow
// it without bound.
import { parseConditionKey } from '../../core/model/security.ts';
import type { PolicyAdapter, PolicyVerdict } from './policy-adapter.ts';
import { ALLOW } from './policy-adapter.ts';

export interface QuotaOptions {
  maxTokens: number;
  tokensPerFill: number;
  fillIntervalMs: number;
  /** Istio attribute key; absent = one bucket for every request. */
  key?: string;
  now?: () => number;
}

interface Bucket {
  tokens: number;
  at: number;
}

const DENIED: PolicyVerdict = Object.freeze({ allow: false, status: 429, body: 'local_rate_limited' });
const SWEEP_AT = 10_000;

export function createQuotaAdapter(name: string, options: QuotaOptions): PolicyAdapter {
  const { maxTokens, tokensPerFill, fillIntervalMs } = options;
  if (!(maxTokens > 0 && tokensPerFill > 0 && fillIntervalMs > 0)) throw new Error(`policy adapter ${name}: maxTokens, tokensPerFill and fillIntervalMs must be positive`);
  const key = options.key === undefined ? undefined : parseConditionKey(options.key);
  if (options.key !== undefined && key === undefined) throw new Error(`policy adapter ${name}: unknown attribute ${JSON.stringify(options.key)}`);
  const now = options.now ?? (() => performance.now());
  const buckets = new Map<string, Bucket>();
  const fullAfterMs = Math.ceil(maxTokens / tokensPerFill) * fillIntervalMs;

  function take(id: string): boolean {
    const t = now();
    let b = buckets.get(id);
    if (b === undefined) {
      if (buckets.size >= SWEEP_AT) for (const [k, v] of buckets) if (t - v.at >= fullAfterMs) buckets.delete(k);
      buckets.set(id, (b = { tokens: maxTokens, at: t }));
    } else {
      const fills = Math.floor((t - b.at) / fillIntervalMs);
      if (fills > 0) {
        b.tokens = Math.min(maxTokens, b.tokens + fills * tokensPerFill);
        b.at += fills * fillIntervalMs;
      }
    }
    if (b.tokens < 1) return false;
    b.tokens--;
    return true;
  }

  return {
    name,
    check(a) {
      const id = key === undefined ? '' : (a.values(key.base, key.args)[0] ?? '');
      return take(id) ? ALLOW : DENIED;
    },
  };
}
