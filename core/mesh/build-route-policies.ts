// The per-route resilience policies of a VirtualService http route, compiled
// for the proxy: retries (with Istio's default policy when none is written),
// fault injection, and CORS. Durations and names become numbers here so the
// proxy never parses them per request.
import { tryParseDuration } from '../config/duration.ts';
import { stringMatcher } from './mesh-match.ts';
import type { CorsPolicy as IstioCorsPolicy, HTTPFaultInjection, HTTPRetry, Percent } from '../model/networking.ts';
import type { CorsPolicy, FaultPolicy, RetryPolicy, StringMatcher } from '../model/proxy-config.ts';

/** Envoy's jittered exponential backoff defaults, which Istio keeps. */
export const RETRY_BACKOFF_BASE_MS = 25;
export const RETRY_BACKOFF_MAX_MS = 250;

/**
 * Istio's retry.DefaultPolicy(): what a route without `retries` gets — two
 * retries on failures where the request surely did not reach the app
 * (connection failures, refused streams, gRPC unavailable/cancelled) or the
 * app said so (503).
 */
const DEFAULT_RETRY_ON = ['connect-failure', 'refused-stream', 'unavailable', 'cancelled', 'retriable-status-codes'];
const DEFAULT_RETRIABLE_STATUS_CODES = [503];
const DEFAULT_RETRY_ATTEMPTS = 2;

export function defaultRetryPolicy(): RetryPolicy {
  return {
    attempts: DEFAULT_RETRY_ATTEMPTS,
    retryOn: [...DEFAULT_RETRY_ON],
    retriableStatusCodes: [...DEFAULT_RETRIABLE_STATUS_CODES],
    backoffBaseMs: RETRY_BACKOFF_BASE_MS,
    backoffMaxMs: RETRY_BACKOFF_MAX_MS,
  };
}

/** `retries` absent → Istio's default; `attempts: 0` → none (undefined). */
export function compileRetry(retries: HTTPRetry | undefined): RetryPolicy | undefined {
  if (!retries) return defaultRetryPolicy();
  if (!(typeof retries.attempts === 'number' && retries.attempts > 0)) return undefined;
  const policy = defaultRetryPolicy();
  policy.attempts = Math.floor(retries.attempts);
  if (typeof retries.retryOn === 'string' && retries.retryOn.trim() !== '') {
    // As Istio's parseRetryOn: names pass through, numbers become retriable status codes.
    const retryOn: string[] = [];
    const codes: number[] = [];
    for (const raw of retries.retryOn.split(',')) {
      const condition = raw.trim();
      if (condition === '') continue;
      if (/^\d+$/.test(condition)) {
        const code = Number(condition);
        if (!codes.includes(code)) codes.push(code);
      } else if (!retryOn.includes(condition)) {
        retryOn.push(condition);
      }
    }
    if (codes.length && !retryOn.includes('retriable-status-codes')) retryOn.push('retriable-status-codes');
    policy.retryOn = retryOn;
    policy.retriableStatusCodes = codes;
  }
  const perTry = retries.perTryTimeout !== undefined ? tryParseDuration(retries.perTryTimeout) : undefined;
  if (perTry !== undefined && perTry > 0) policy.perTryTimeoutMs = Math.round(perTry);
  return policy;
}

/** gRPC status code names (as Istio's `grpcStatus` takes them) → their numbers. */
export const GRPC_STATUS_CODES: Readonly<Record<string, number>> = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
};

/** Istio: a fault without a percentage applies to every request. */
export function percentage(p: Percent | undefined): number {
  const value = p?.value;
  if (typeof value !== 'number' || !Number.isFinite(value)) return 100;
  return Math.min(100, Math.max(0, value));
}

export function compileFault(fault: HTTPFaultInjection | undefined): FaultPolicy | undefined {
  if (!fault) return undefined;
  const out: FaultPolicy = {};
  const delayMs = fault.delay ? tryParseDuration(fault.delay.fixedDelay) : undefined;
  if (fault.delay && delayMs !== undefined) out.delay = { fixedDelayMs: Math.round(delayMs), percentage: percentage(fault.delay.percentage) };
  const abort = fault.abort;
  if (abort) {
    if (typeof abort.httpStatus === 'number') {
      out.abort = { httpStatus: abort.httpStatus, percentage: percentage(abort.percentage) };
    } else if (typeof abort.grpcStatus === 'string' && GRPC_STATUS_CODES[abort.grpcStatus.toUpperCase()] !== undefined) {
      out.abort = { grpcStatus: GRPC_STATUS_CODES[abort.grpcStatus.toUpperCase()], percentage: percentage(abort.percentage) };
    }
  }
  return out.delay || out.abort ? out : undefined;
}

export function compileCors(cors: IstioCorsPolicy | undefined): CorsPolicy | undefined {
  if (!cors) return undefined;
  const out: CorsPolicy = {
    allowOrigins: (cors.allowOrigins ?? []).map(stringMatcher).filter((m): m is StringMatcher => m !== undefined),
    allowMethods: [...(cors.allowMethods ?? [])],
    allowHeaders: [...(cors.allowHeaders ?? [])],
    exposeHeaders: [...(cors.exposeHeaders ?? [])],
  };
  const maxAge = cors.maxAge !== undefined ? tryParseDuration(cors.maxAge) : undefined;
  // Access-Control-Max-Age counts whole seconds.
  if (maxAge !== undefined) out.maxAgeSeconds = Math.floor(maxAge / 1000);
  if (typeof cors.allowCredentials === 'boolean') out.allowCredentials = cors.allowCredentials;
  return out;
}

