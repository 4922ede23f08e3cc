// Local rate limiting (jibe.dev/v1alpha1 RateLimit, Envoy's local_ratelimit)
// as a dispatch interceptor, enforced on the listener the limits are
// configured on (the destination's inbound side). Each limit applies to the
// requests its matches select and takes a token from its bucket — one bucket,
// or one per header value, source principal or source IP; a request that finds
// a bucket empty is answered 429 (gRPC: RESOURCE_EXHAUSTED) with flag RL and
// x-ratelimit-limit / -remaining / -reset headers, and goes no further.
// Buckets are keyed by limit name and survive config updates that keep a
// limit's numbers; a limit that changes or disappears starts afresh.
import type { LocalRateLimit } from '../../core/model/proxy-config.ts';
import type { Exchange } from '../http/exchange.ts';
import { sendLocalReply } from '../http/local-reply.ts';
import { ResponseFlag } from '../http/response-flags.ts';
import { CompiledMatch } from '../router/route-matcher.ts';
import type { Dispatch, Interceptor } from '../router/router.ts';
import { DEFAULT_MAX_KEYED_BUCKETS, RateLimitBuckets } from './rate-limit-bucket.ts';
import { unmapIpv4 } from '../http/client-address.ts';

export const BODY_RATE_LIMITED = Buffer.from('local_rate_limited');

export interface RateLimitDeps {
  /** Milliseconds, monotonic; performance.now unless a test pins it. */
  now: () => number;
  /** The caller's workload identity (mTLS peer); '' or undefined when unknown. */
  principal?: (ex: Exchange) => string | undefined;
  maxKeyedBuckets?: number;
}

const KEY_NONE = 0;
const KEY_HEADER = 1;
const KEY_PRINCIPAL = 2;
const KEY_SOURCE_IP = 3;

export class CompiledRateLimit {
  readonly name: string;
  readonly matches: readonly CompiledMatch[];
  readonly keyKind: number;
  readonly header: string;
  readonly buckets: RateLimitBuckets;

  constructor(limit: LocalRateLimit, buckets: RateLimitBuckets) {
    this.name = limit.name;
    this.matches = (limit.match ?? []).map((m) => new CompiledMatch(m));
    const key = limit.key;
    if (key === undefined) {
      this.keyKind = KEY_NONE;
      this.header = '';
    } else if ('header' in key) {
      this.keyKind = KEY_HEADER;
      this.header = key.header.toLowerCase();
    } else if ('sourcePrincipal' in key) {
      this.keyKind = KEY_PRINCIPAL;
      this.header = '';
    } else {
      this.keyKind = KEY_SOURCE_IP;
      this.header = '';
    }
    this.buckets = buckets;
  }

  applies(ex: Exchange): boolean {
    const matches = this.matches;
    if (matches.length === 0) return true;
    const saved = ex.matchedPrefixLength;
    let hit = false;
    for (let i = 0; i < matches.length && !hit; i++) hit = matches[i].test(ex);
    ex.matchedPrefixLength = saved;
    return hit;
  }
}

/** The rate limits of every listener, compiled once per listener resource. */
export class RateLimiter {
  private readonly deps: RateLimitDeps;
  private readonly compiled = new WeakMap<readonly LocalRateLimit[], CompiledRateLimit[]>();
  /** Buckets by limit name, kept across config updates. */
  private readonly buckets = new Map<string, RateLimitBuckets>();

  constructor(deps: RateLimitDeps) {
    this.deps = deps;
  }

  limitsFor(list: readonly LocalRateLimit[]): CompiledRateLimit[] {
    let out = this.compiled.get(list);
    if (out === undefined) {
      out = list.map((l) => new CompiledRateLimit(l, this.bucketsFor(l)));
      this.compiled.set(list, out);
    }
    return out;
  }

  private bucketsFor(limit: LocalRateLimit): RateLimitBuckets {
    let b = this.buckets.get(limit.name);
    if (b === undefined || !b.sameSettings(limit)) {
      b = new RateLimitBuckets(limit, this.deps.maxKeyedBuckets ?? DEFAULT_MAX_KEYED_BUCKETS);
      this.buckets.set(limit.name, b);
    }
    return b;
  }

  /** Forgets buckets of limits no longer configured anywhere (call after a config swap). */
  retain(names: ReadonlySet<string>): void {
    for (const name of this.buckets.keys()) if (!names.has(name)) this.buckets.delete(name);
  }

  /** True when the request may go on; otherwise it has been answered 429. */
  admit(ex: Exchange, list: readonly LocalRateLimit[]): boolean {
    const limits = this.limitsFor(list);
    const now = this.deps.now();
    for (let i = 0; i < limits.length; i++) {
      const limit = limits[i];
      if (!limit.applies(ex)) continue;
      const buckets = limit.buckets;
      const bucket = buckets.bucket(this.keyOf(limit, ex), now);
      if (buckets.take(bucket)) continue;
      ex.listener.stats.local_rate_limit_rate_limited++;
      sendLocalReply(ex, 429, BODY_RATE_LIMITED, ResponseFlag.RL, [
        'x-ratelimit-limit',
        String(buckets.maxTokens),
        'x-ratelimit-remaining',
        '0',
        'x-ratelimit-reset',
        String(Math.ceil(buckets.msToNextFill(bucket, now) / 1000)),
      ]);
      return false;
    }
    ex.listener.stats.local_rate_limit_ok++;
    return true;
  }

  /**
   * The bucket key; requests without the keyed value share the '' bucket, so
   * leaving the header out does not escape the limit.
   */
  private keyOf(limit: CompiledRateLimit, ex: Exchange): string | undefined {
    switch (limit.keyKind) {
      case KEY_HEADER:
        return ex.header(limit.header) ?? '';
      case KEY_PRINCIPAL:
        return this.deps.principal?.(ex) ?? '';
      case KEY_SOURCE_IP:
        return unmapIpv4(ex.down.remoteAddress);
      default:
        return undefined;
    }
  }
}

/** The interceptor: looks up the rate limits of the listener the request came in on. */
export function createRateLimitInterceptor(limiter: RateLimiter): Interceptor {
  return (next: Dispatch): Dispatch =>
    (ex: Exchange): void => {
      if (ex.listener.kind === 'outbound') {
        next(ex);
        return;
      }
      const limits = ex.state.listenersByPort.get(ex.listenerPort)?.resource.rateLimits;
      if (limits === undefined || limits.length === 0 || limiter.admit(ex, limits)) next(ex);
    };
}
