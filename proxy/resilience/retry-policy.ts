// What a route's retry policy (Istio HTTPRetry, Envoy retry_on) allows to be
// retried, and how long to wait before the next try. Pure functions for the
// retry interceptor: the conditions are compiled once into a bit set, so the
// per-response check is a few integer tests.
import type { RetryPolicy } from '../../core/model/proxy-config.ts';

export const RETRY_5XX = 1 << 0;
export const RETRY_GATEWAY_ERROR = 1 << 1;
export const RETRY_CONNECT_FAILURE = 1 << 2;
export const RETRY_REFUSED_STREAM = 1 << 3;
export const RETRY_RESET = 1 << 4;
export const RETRY_RETRIABLE_4XX = 1 << 5;
export const RETRY_RETRIABLE_STATUS_CODES = 1 << 6;
export const RETRY_GRPC_CANCELLED = 1 << 7;
export const RETRY_GRPC_DEADLINE_EXCEEDED = 1 << 8;
export const RETRY_GRPC_INTERNAL = 1 << 9;
export const RETRY_GRPC_RESOURCE_EXHAUSTED = 1 << 10;
export const RETRY_GRPC_UNAVAILABLE = 1 << 11;

const CONDITIONS: Record<string, number> = {
  '5xx': RETRY_5XX,
  'gateway-error': RETRY_GATEWAY_ERROR,
  'connect-failure': RETRY_CONNECT_FAILURE,
  'refused-stream': RETRY_REFUSED_STREAM,
  reset: RETRY_RESET,
  'retriable-4xx': RETRY_RETRIABLE_4XX,
  'retriable-status-codes': RETRY_RETRIABLE_STATUS_CODES,
  cancelled: RETRY_GRPC_CANCELLED,
  'deadline-exceeded': RETRY_GRPC_DEADLINE_EXCEEDED,
  internal: RETRY_GRPC_INTERNAL,
  'resource-exhausted': RETRY_GRPC_RESOURCE_EXHAUSTED,
  unavailable: RETRY_GRPC_UNAVAILABLE,
};

/** gRPC status codes (grpc/doc/statuscodes.md). */
const GRPC_CANCELLED = 1;
const GRPC_DEADLINE_EXCEEDED = 4;
const GRPC_RESOURCE_EXHAUSTED = 8;
const GRPC_INTERNAL = 13;
const GRPC_UNAVAILABLE = 14;

/** How an attempt failed without a response (the pool's and HTTP/2's failure kinds, by meaning; a per-try timeout is one too). */
export type FailureKind = 'connect-failure' | 'reset' | 'refused-stream' | 'per-try-timeout';

/** A route's retry policy with its conditions as bits. */
export class CompiledRetryPolicy {
  readonly attempts: number;
  readonly perTryTimeoutMs: number;
  readonly conditions: number;
  readonly statusCodes: ReadonlySet<number>;
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;

  constructor(policy: RetryPolicy) {
    this.attempts = Math.max(0, policy.attempts);
    this.perTryTimeoutMs = policy.perTryTimeoutMs ?? 0;
    let bits = 0;
    // Unknown names were refused when the rule was applied; ignored here rather than fatal.
    for (const name of policy.retryOn) bits |= CONDITIONS[name.trim()] ?? 0;
    this.conditions = bits;
    this.statusCodes = new Set(policy.retriableStatusCodes);
    this.backoffBaseMs = policy.backoffBaseMs;
    this.backoffMaxMs = Math.max(policy.backoffMaxMs, policy.backoffBaseMs);
  }
}

/**
 * Whether an answer is retried: by HTTP status (5xx, gateway-error,
 * retriable-4xx = 409, retriable-status-codes) or, for gRPC, by the
 * grpc-status it carries (headers or trailers-only answer).
 */
export function retryableStatus(policy: CompiledRetryPolicy, status: number, grpcStatus?: number): boolean {
  const c = policy.conditions;
  if (status >= 500) {
    if (c & RETRY_5XX) return true;
    if (c & RETRY_GATEWAY_ERROR && (status === 502 || status === 503 || status === 504)) return true;
  }
  if (c & RETRY_RETRIABLE_4XX && status === 409) return true;
  if (c & RETRY_RETRIABLE_STATUS_CODES && policy.statusCodes.has(status)) return true;
  if (grpcStatus !== undefined) {
    switch (grpcStatus) {
      case GRPC_CANCELLED:
        return (c & RETRY_GRPC_CANCELLED) !== 0;
      case GRPC_DEADLINE_EXCEEDED:
        return (c & RETRY_GRPC_DEADLINE_EXCEEDED) !== 0;
      case GRPC_RESOURCE_EXHAUSTED:
        return (c & RETRY_GRPC_RESOURCE_EXHAUSTED) !== 0;
      case GRPC_INTERNAL:
        return (c & RETRY_GRPC_INTERNAL) !== 0;
      case GRPC_UNAVAILABLE:
        return (c & RETRY_GRPC_UNAVAILABLE) !== 0;
    }
  }
  return false;
}

/**
 * Whether an attempt that got no answer is retried. As in Envoy, 5xx and
 * gateway-error also cover connect failures, resets and per-try timeouts (the
 * proxy would have answered 503 or 504 for them); a refused stream never
 * reached the application.
 */
export function retryableFailure(policy: CompiledRetryPolicy, kind: FailureKind): boolean {
  const c = policy.conditions;
  switch (kind) {
    case 'connect-failure':
      return (c & (RETRY_CONNECT_FAILURE | RETRY_5XX | RETRY_GATEWAY_ERROR)) !== 0;
    case 'reset':
      return (c & (RETRY_RESET | RETRY_5XX | RETRY_GATEWAY_ERROR)) !== 0;
    case 'refused-stream':
      return (c & (RETRY_REFUSED_STREAM | RETRY_5XX)) !== 0;
    case 'per-try-timeout':
      // Envoy: the try would have ended in a 504; `reset` covers "no answer at all" as well.
      return (c & (RETRY_5XX | RETRY_GATEWAY_ERROR | RETRY_RESET)) !== 0;
  }
}

/**
 * Envoy's fully jittered exponential backoff: the n-th retry (1-based) waits
 * a uniform random time in [0, min(base × 2^(n-1), max)).
 */
export function backoffMs(attempt: number, baseMs: number, maxMs: number, random: () => number): number {
  const exp = Math.min(Math.max(attempt, 1) - 1, 30);
  const ceiling = Math.min(baseMs * 2 ** exp, maxMs);
  return Math.floor(random() * ceiling);
}
