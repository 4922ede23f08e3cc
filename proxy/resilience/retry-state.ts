// Retries on the request path (Envoy's router retry state): whether a failed
// try may be sent again, and the bookkeeping a retried exchange carries — the
// request body kept for a replay, the hosts already tried, the per-try and
// backoff timers, the maxRetries slot. The protocol paths (forward-request.ts
// for HTTP/1.1, http2-forward.ts for HTTP/2) ask `retryDecision` at each
// retriable outcome and, on yes, abandon the try and call `scheduleRetry`.
//
// The state object is made only when a request needs it (a body to keep, a
// per-try timeout, or an actual retry), so a bodyless request that succeeds
// on its first try allocates nothing here.
import type { Exchange } from '../http/exchange.ts';
import { ResponseFlag } from '../http/response-flags.ts';
import type { UpstreamHost } from '../cluster/upstream-pool.ts';
import { backoffMs } from './retry-policy.ts';

/** Envoy's default per_request_buffer_limit: request bodies up to this size are kept for a replay or a mirror. */
export const RETRY_BUFFER_LIMIT = 64 * 1024;
/** Istio's host_selection_retry_max_attempts with the previous-hosts predicate. */
const HOST_SELECTION_ATTEMPTS = 5;

export const RETRY_NO = 0;
export const RETRY_YES = 1;
/** Retriable, but out of attempts, budget or maxRetries slots: the failure goes to the client as is, flagged URX. */
export const RETRY_DENIED = 2;

/** Sends the exchange again on `ex.host` (the protocol path's own start function). */
export type Resend = (ex: Exchange) => void;

/** A mirror that waits for the request body to end (see mirror-request.ts). */
export interface PendingMirror {
  headers: string[];
  path: string;
}

export class RetryState {
  /** Retries taken so far. */
  retries = 0;
  /** A retry was sent and its outcome is not yet known (retry_success is counted then). */
  inRetry = false;
  /** A maxRetries slot is held, from the retry decision until the retried try's outcome. */
  holdsSlot = false;
  /** Hosts tried before (Envoy's previous_hosts predicate); undefined until the first retry. */
  previousHosts: UpstreamHost[] | undefined = undefined;
  /** The request body as received, while it fits RETRY_BUFFER_LIMIT; undefined when not kept. */
  body: Buffer[] | undefined = undefined;
  bodyBytes = 0;
  /** The whole request body came in (its end went through the forwarder). */
  bodyEnded = false;
  /** The body outgrew the buffer: no replay, no mirror. */
  bodyOverflow = false;
  mirror: PendingMirror | undefined = undefined;
  perTryTimer: ReturnType<typeof setTimeout> | undefined = undefined;
  backoffTimer: ReturnType<typeof setTimeout> | undefined = undefined;
  resend: Resend | undefined = undefined;
}

export function retryStateOf(ex: Exchange): RetryState {
  return (ex.retry ??= new RetryState());
}

/** Keeps a request body slice for a replay; past the limit the body is dropped and the request marked unreplayable. */
export function keepRequestBody(ex: Exchange, rs: RetryState, chunk: Buffer): void {
  const body = rs.body;
  if (body === undefined) return;
  rs.bodyBytes += chunk.length;
  if (rs.bodyBytes > RETRY_BUFFER_LIMIT) {
    rs.body = undefined;
    rs.bodyOverflow = true;
    ex.cluster!.stats.retry_or_shadow_abandoned++;
    return;
  }
  body.push(chunk);
}

/** Drops the kept body once nothing can replay it (the answer started) unless a mirror still waits for it. */
export function releaseRequestBody(rs: RetryState): void {
  if (rs.mirror === undefined) rs.body = undefined;
}

/**
 * The retry decision for one try's outcome (`retriable`: its status, gRPC
 * status or failure kind is in the route's retryOn). In Envoy's order:
 * attempts left, then the maxRetries circuit breaker, then the cluster's
 * retry budget. Also settles the previous retry: its slot is released and,
 * when this outcome is not retriable, it counts as a retry success.
 */
export function retryDecision(ex: Exchange, retriable: boolean): number {
  const rs = ex.retry;
  const cluster = ex.cluster!;
  const stats = cluster.stats;
  if (rs !== undefined) {
    if (rs.holdsSlot) {
      rs.holdsSlot = false;
      cluster.circuitBreaker?.retryDone();
    }
    if (rs.inRetry) {
      rs.inRetry = false;
      if (!retriable) stats.upstream_rq_retry_success++;
    }
  }
  const policy = ex.route!.retry;
  if (!retriable || policy === undefined || policy.attempts === 0 || ex.responseStarted) return RETRY_NO;
  if (ex.hasBody && (rs === undefined || rs.body === undefined || !rs.bodyEnded)) {
    // Too big to have been kept (counted when it outgrew the buffer), or still arriving (Envoy does not retry those either).
    if (rs === undefined || !rs.bodyOverflow) stats.upstream_rq_retry_skipped_request_not_complete++;
    return RETRY_NO;
  }
  if ((rs?.retries ?? 0) >= policy.attempts) {
    stats.upstream_rq_retry_limit_exceeded++;
    ex.flags |= ResponseFlag.URX;
    return RETRY_DENIED;
  }
  const breaker = cluster.circuitBreaker;
  // tryRetry counts its own overflow.
  if (breaker !== undefined && !breaker.tryRetry()) {
    ex.flags |= ResponseFlag.URX;
    return RETRY_DENIED;
  }
  const budget = cluster.retryBudget;
  if (budget !== undefined && !budget.tryRetry()) {
    breaker?.retryDone();
    stats.upstream_rq_retry_overflow++;
    stats.upstream_rq_retry_budget_exhausted++;
    ex.flags |= ResponseFlag.URX;
    return RETRY_DENIED;
  }
  const state = retryStateOf(ex);
  state.holdsSlot = breaker !== undefined;
  state.inRetry = true;
  state.retries++;
  stats.upstream_rq_retry++;
  return RETRY_YES;
}

/**
 * After a yes from retryDecision and the try abandoned: waits the jittered
 * backoff (a timer, never blocking), then sends again, on another host when
 * the balancer offers one.
 */
export function scheduleRetry(ex: Exchange, resend: Resend): void {
  const rs = retryStateOf(ex);
  const policy = ex.route!.retry!;
  (rs.previousHosts ??= []).push(ex.host!);
  rs.resend = resend;
  const delay = backoffMs(rs.retries, policy.backoffBaseMs, policy.backoffMaxMs, ex.cluster!.random);
  rs.backoffTimer = setTimeout(onBackoffDone, delay, ex);
}

function onBackoffDone(ex: Exchange): void {
  const rs = ex.retry!;
  rs.backoffTimer = undefined;
  if (ex.done) return;
  pickRetryHost(ex, rs.previousHosts!);
  // Per-try state starts over: a stale keep-alive retry and the gRPC status belong to one try.
  ex.retried = false;
  ex.bodySent = false;
  ex.grpcStatus = -1;
  rs.resend!(ex);
}

/** A host not tried before when the balancer offers one within a few picks, else the last one it offered (Envoy's previous_hosts). */
function pickRetryHost(ex: Exchange, previous: readonly UpstreamHost[]): void {
  const cluster = ex.cluster!;
  let host: UpstreamHost | undefined;
  for (let i = 0; i < HOST_SELECTION_ATTEMPTS; i++) {
    const candidate = cluster.pick(ex);
    if (candidate === undefined) break;
    host = candidate;
    if (!previous.includes(candidate)) break;
  }
  const current = ex.host!;
  if (host === undefined || host === current) return;
  current.active--;
  host.active++;
  ex.host = host;
}

/** Arms the route's per-try timeout for the try starting now (no-op without one). */
export function startPerTryTimer(ex: Exchange, onTimeout: (ex: Exchange) => void): void {
  const policy = ex.route!.retry;
  if (policy === undefined || policy.perTryTimeoutMs <= 0) return;
  const rs = retryStateOf(ex);
  if (rs.perTryTimer !== undefined) clearTimeout(rs.perTryTimer);
  rs.perTryTimer = setTimeout(onTimeout, policy.perTryTimeoutMs, ex);
}

export function clearPerTryTimer(rs: RetryState): void {
  if (rs.perTryTimer !== undefined) {
    clearTimeout(rs.perTryTimer);
    rs.perTryTimer = undefined;
  }
}

/** The exchange is over: timers stop, a held maxRetries slot goes back, the body is let go. */
export function endRetries(ex: Exchange, rs: RetryState): void {
  clearPerTryTimer(rs);
  if (rs.backoffTimer !== undefined) {
    clearTimeout(rs.backoffTimer);
    rs.backoffTimer = undefined;
  }
  if (rs.holdsSlot) {
    rs.holdsSlot = false;
    ex.cluster!.circuitBreaker?.retryDone();
  }
  rs.body = undefined;
  rs.mirror = undefined;
}
