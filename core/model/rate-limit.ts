// Jibe's local rate limit (`jibe.dev/v1alpha1` RateLimit): token buckets that
// the destination's own sidecar enforces on its inbound side, so a limit holds
// however many clients call and needs no rate-limit service. Istio has no API
// for this (it patches Envoy with EnvoyFilter), hence a Jibe kind. Example:
//
//   apiVersion: jibe.dev/v1alpha1
//   kind: RateLimit
//   metadata: { name: ratings, namespace: default }
//   spec:
//     host: ratings                 # a service in the mesh (short names resolve in this namespace)
//     limits:
//     - name: per-user-writes
//       match: [{ method: { exact: POST }, uri: { prefix: /ratings } }]
//       maxTokens: 10               # bucket size (burst)
//       tokensPerFill: 5            # tokens added every fillInterval (default 1, as Envoy)
//       fillInterval: 1s
//       per: { header: x-user }     # one bucket per value; or { sourcePrincipal: {} } / { sourceIp: {} }
//     - maxTokens: 1000             # no match: every request to the host
//       fillInterval: 1s
//       tokensPerFill: 1000
//
// A request is checked against every limit whose match it meets, in order; the
// first empty bucket answers 429.
import type { Resource } from './resource.ts';
import type { StringMatch } from './networking.ts';

/** Which requests a limit counts (HTTPMatchRequest's request-side fields); all set fields must match. */
export interface RateLimitMatch {
  uri?: StringMatch;
  method?: StringMatch;
  /** `{}` = the header must be present. */
  headers?: Record<string, StringMatch | Record<string, never>>;
  /** A service port of `host`; absent = every port. */
  port?: number;
}

/** One bucket per distinct value of exactly one of these; absent = one bucket shared by all. */
export interface RateLimitKey {
  header?: string;
  sourcePrincipal?: Record<string, never>;
  sourceIp?: Record<string, never>;
}

export interface RateLimitRule {
  name?: string;
  /** Any of these (OR); absent or empty = every request. */
  match?: RateLimitMatch[];
  maxTokens: number;
  /** Default 1 (Envoy's token bucket default). */
  tokensPerFill?: number;
  /** Duration, at least 50ms (Envoy's lower bound). */
  fillInterval: string;
  per?: RateLimitKey;
}

export interface RateLimitSpec {
  host: string;
  limits: RateLimitRule[];
}

export type RateLimit = Resource<'RateLimit', RateLimitSpec>;

/** Envoy refuses fill intervals under 50 ms: refilling faster costs more than it limits. */
export const MIN_FILL_INTERVAL_MS = 50;
export const DEFAULT_TOKENS_PER_FILL = 1;
