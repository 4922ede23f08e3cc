// Fault injection (Istio's HTTPFaultInjection, Envoy's fault filter) as a
// dispatch interceptor: a sampled share of requests is delayed by a fixed
// time before it goes on, and a sampled share is aborted with an HTTP status
// or a gRPC status, without reaching the upstream. Delay and abort are drawn
// independently, delay first, as Envoy. The delay timer lives in `ex.timer`,
// so a client that leaves during the delay clears it with the exchange.
import type { FaultPolicy } from '../../core/model/proxy-config.ts';
import type { Exchange } from '../http/exchange.ts';
import { sendLocalReply } from '../http/local-reply.ts';
import { ResponseFlag } from '../http/response-flags.ts';
import type { Dispatch, Interceptor } from '../router/router.ts';

export const BODY_FAULT_ABORT = Buffer.from('fault filter abort');

export interface FaultDeps {
  /** Uniform in [0, 1); Math.random unless a test pins it. */
  random: () => number;
}

/** Whether a request falls in `percentage` (0–100, fractions allowed). */
export function sampled(percentage: number, random: () => number): boolean {
  if (percentage >= 100) return true;
  if (percentage <= 0) return false;
  return random() * 100 < percentage;
}

export function createFaultInterceptor(deps: FaultDeps): Interceptor {
  const random = deps.random;
  return (next: Dispatch): Dispatch => {
    function abortOrContinue(ex: Exchange, fault: FaultPolicy): void {
      const abort = fault.abort;
      if (abort !== undefined && sampled(abort.percentage, random)) {
        ex.listener.stats.fault_aborts_injected++;
        sendFaultAbort(ex, abort);
        return;
      }
      next(ex);
    }
    function afterDelay(ex: Exchange): void {
      ex.timer = undefined;
      if (ex.done) return;
      abortOrContinue(ex, ex.route!.fault!);
    }
    return (ex: Exchange): void => {
      const fault = ex.route?.fault;
      if (fault === undefined) {
        next(ex);
        return;
      }
      const delay = fault.delay;
      if (delay !== undefined && delay.fixedDelayMs > 0 && sampled(delay.percentage, random)) {
        ex.flags |= ResponseFlag.DI;
        ex.listener.stats.fault_delays_injected++;
        ex.timer = setTimeout(afterDelay, delay.fixedDelayMs, ex);
        return;
      }
      abortOrContinue(ex, fault);
    };
  };
}

function sendFaultAbort(ex: Exchange, abort: NonNullable<FaultPolicy['abort']>): void {
  if (abort.grpcStatus !== undefined) {
    // gRPC clients read the status from grpc-status on an HTTP 200 (trailers-only answer).
    sendLocalReply(ex, 200, undefined, ResponseFlag.FI, [
      'content-type',
      'application/grpc',
      'grpc-status',
      String(abort.grpcStatus),
      'grpc-message',
      'fault filter abort',
    ]);
    return;
  }
  sendLocalReply(ex, abort.httpStatus ?? 503, BODY_FAULT_ABORT, ResponseFlag.FI);
}
