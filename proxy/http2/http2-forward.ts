// One request forwarded as a stream on an endpoint's HTTP/2 sessions (http2
// clusters): the upstream headers built by forward-request.ts become
// pseudo-headers plus lower-case fields, bodies are pumped with backpressure
// both ways (a paused stream stops granting flow-control window, so a slow
// side never makes the proxy buffer without bound), trailers are relayed at
// the end, and resets travel both ways: a client that goes away cancels the
// upstream stream, an upstream reset resets the client's stream with the same
// code where that means something to the client.
// The stream's events are one module-level handler object; the stream's owner
// is its exchange, as on the HTTP/1.1 path.
import type { Exchange } from '../http/exchange.ts';
import {
  BODY_CONNECT_FAILURE,
  BODY_CONNECTION_TERMINATION,
  BODY_REFUSED_STREAM,
  BODY_REMOTE_RESET,
  sendLocalReply,
} from '../http/local-reply.ts';
import { ResponseFlag } from '../http/response-flags.ts';
import { OUTLIER_CONNECT_FAILURE, OUTLIER_RESET } from '../cluster/outlier-detector.ts';
import type { FailureKind } from '../resilience/retry-policy.ts';
import { clearPerTryTimer } from '../resilience/retry-state.ts';
import { observeGrpcStatus, observeResponseBody } from '../telemetry/exchange-telemetry.ts';
import type { Http2Connection } from './http2-connection.ts';
import { H2_CANCEL, H2_INTERNAL_ERROR, H2_NO_ERROR, H2_REFUSED_STREAM, relayedResetCode } from './http2-frame.ts';
import type { Http2Stream, Http2StreamEvents } from './http2-stream.ts';
import type { Http2StreamHandler } from './http2-upstream-pool.ts';
import { streamSessionState } from './http2-upstream-pool.ts';

/** What the HTTP/1.1 path does with a response head; forward-request.ts passes its own. */
export type RelayHead = (ex: Exchange, status: number, headers: string[]) => void;

/** What forward-request.ts does at the points both protocols share (passed in, so neither module imports the other back). */
export interface Http2ForwardHooks {
  /** Writes the response head to the client, or abandons the try for a retry. */
  relayHead: RelayHead;
  /** A try has its stream: per-try timeout from here. */
  tryStarted(ex: Exchange): void;
  /** A try failed with no answer; true when a retry was scheduled. */
  retryFailure(ex: Exchange, kind: FailureKind): boolean;
}

// Fields HTTP/2 forbids (RFC 9113 §8.2.2) or that become pseudo-headers; `te` is re-added as `trailers` only.
const NOT_FORWARDED = new Set(['host', 'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings', 'te']);
const TE_TRAILERS = /(^|,)\s*trailers\s*(;|,|$)/i;

let hooks: Http2ForwardHooks;

/**
 * Sends the exchange on `ex.host`'s HTTP/2 sessions. `headers` is the flat
 * list buildUpstreamHeaders made (`host` first); `relay` writes the response
 * head to the client as the HTTP/1.1 path does.
 */
export function forwardHttp2(ex: Exchange, headers: string[], path: string, forwardHooks: Http2ForwardHooks): void {
  hooks = forwardHooks;
  const out: string[] = [':method', ex.method, ':scheme', 'http', ':authority', headers[1], ':path', path];
  for (let i = 2; i < headers.length; i += 2) {
    const name = headers[i].toLowerCase();
    if (NOT_FORWARDED.has(name)) continue;
    out.push(name, headers[i + 1]);
  }
  const te = ex.header('te');
  if (te !== undefined && TE_TRAILERS.test(te)) out.push('te', 'trailers');
  ex.upstreamH2Head = out;
  startHttp2Attempt(ex);
}

/** Starts (or, after a refused stream, restarts) the upstream attempt on `ex.host` with the head already built. */
export function startHttp2Attempt(ex: Exchange): void {
  ex.upstreamStart = performance.now();
  ex.host!.h2Pool().request(ex, STREAM_HANDLER);
}

const STREAM_HANDLER: Http2StreamHandler<Exchange> = { start: openStream };

function openStream(ex: Exchange, conn: Http2Connection): Http2Stream | undefined {
  // Only the exchange's current try may open a stream (a stale queued one may not).
  if (ex.done || ex.responseStarted || ex.upstreamStream !== undefined) return undefined;
  const stream = conn.request(ex.upstreamH2Head!, !ex.hasBody, UPSTREAM_EVENTS, ex);
  if (stream === undefined) {
    // The connection went away between the pool's pick and now.
    sendLocalReply(ex, 503, BODY_CONNECTION_TERMINATION, ResponseFlag.UC);
    return undefined;
  }
  ex.upstreamStream = stream;
  hooks.tryStarted(ex);
  if (ex.hasBody) {
    const rs = ex.retry;
    // A retry replays the body kept so far, then goes on with the rest as it comes.
    if (rs !== undefined && rs.body !== undefined && (rs.body.length > 0 || rs.bodyEnded)) replayBody(ex, stream, rs.body, rs.bodyEnded);
    else ex.down.readBody();
  }
  return stream;
}

function replayBody(ex: Exchange, stream: Http2Stream, body: readonly Buffer[], ended: boolean): void {
  for (let i = 0; i < body.length; i++) stream.write(body[i]);
  if (body.length > 0) ex.bodySent = true;
  if (ended) endHttp2RequestBody(ex, stream);
  else ex.down.readBody();
}

/** A slice of the request body for the upstream stream. */
export function writeHttp2RequestBody(ex: Exchange, stream: Http2Stream, chunk: Buffer): void {
  ex.bodySent = true;
  if (!stream.write(chunk)) ex.down.pauseBody();
}

/** The request is complete: its end goes upstream, with the client's trailers if it sent any. */
export function endHttp2RequestBody(ex: Exchange, stream: Http2Stream): void {
  if (stream.localEnded) return;
  const trailers = ex.down.requestTrailers;
  if (trailers === undefined || trailers.length === 0) {
    stream.end();
    return;
  }
  const out: string[] = [];
  for (let i = 0; i < trailers.length; i += 2) out.push(trailers[i].toLowerCase(), trailers[i + 1]);
  stream.endWithTrailers(out);
}

/** The exchange ends before the upstream stream did: cancel it (RST_STREAM CANCEL, as Envoy for a downstream reset). */
export function cancelHttp2Upstream(stream: Http2Stream): void {
  // Response complete, request still going (the upstream answered early): NO_ERROR, as RFC 9113 §8.1 has servers do.
  if (!stream.closed) stream.reset(stream.remoteEnded ? H2_NO_ERROR : H2_CANCEL);
}

function exOf(stream: Http2Stream): Exchange | undefined {
  const ex = stream.owner as Exchange;
  return ex.upstreamStream === stream ? ex : undefined;
}

/** Response fields without the `:status` pseudo-header, as the HTTP/1.1 path passes them. */
function regularFields(fields: string[]): string[] {
  let start = 0;
  while (start < fields.length && fields[start].charCodeAt(0) === 58 /* : */) start += 2;
  return start === 0 ? fields : fields.slice(start);
}

function onResponse(stream: Http2Stream, fields: string[]): void {
  const ex = exOf(stream);
  if (ex === undefined || ex.done) return;
  const regular = regularFields(fields);
  observeGrpcStatus(ex, regular);
  // A head that ends the stream (gRPC's trailers-only answer) reaches the client as one: `end` follows in this tick.
  hooks.relayHead(ex, stream.status, regular);
}

function onData(stream: Http2Stream, chunk: Buffer): void {
  const ex = exOf(stream);
  if (ex === undefined || ex.done) return;
  observeResponseBody(ex, chunk);
  if (!ex.down.write(chunk)) stream.pause();
}

function onTrailers(stream: Http2Stream, fields: string[]): void {
  const ex = exOf(stream);
  if (ex === undefined) return;
  observeGrpcStatus(ex, fields);
  ex.upstreamTrailers = fields;
}

function onEnd(stream: Http2Stream): void {
  const ex = exOf(stream);
  if (ex !== undefined) finishResponse(ex, stream);
}

function finishResponse(ex: Exchange, stream: Http2Stream): void {
  // Both directions are over: nothing is left to cancel when the exchange finishes.
  if (stream.localEnded) ex.upstreamStream = undefined;
  if (ex.timer !== undefined) {
    clearTimeout(ex.timer);
    ex.timer = undefined;
  }
  if (ex.retry !== undefined) clearPerTryTimer(ex.retry);
  if (ex.done || !ex.responseStarted || ex.down.finished) return;
  const trailers = ex.upstreamTrailers;
  if (trailers !== undefined) {
    ex.upstreamTrailers = undefined;
    ex.down.endWithTrailers(trailers);
  } else {
    ex.down.end();
  }
}

function onDrain(stream: Http2Stream): void {
  const ex = exOf(stream);
  if (ex !== undefined && ex.hasBody && !ex.done) ex.down.resumeBody();
}

function onClose(stream: Http2Stream): void {
  const ex = exOf(stream);
  if (ex === undefined) return;
  if (stream.resetCode < 0) ex.upstreamStream = undefined;
  else upstreamClosed(ex, stream);
}

const UPSTREAM_EVENTS: Http2StreamEvents = { headers: onResponse, data: onData, trailers: onTrailers, end: onEnd, drain: onDrain, close: onClose };

/** The upstream stream closed or was reset before the exchange had its whole response. */
function upstreamClosed(ex: Exchange, stream: Http2Stream): void {
  ex.upstreamStream = undefined;
  if (ex.done || (ex.responseStarted && ex.down.finished)) return;
  const code = stream.resetCode < 0 ? H2_NO_ERROR : stream.resetCode;
  if (ex.responseStarted) {
    // Cut mid-response: the client must see a reset, not a short answer taken for whole.
    ex.flags |= code === H2_NO_ERROR ? ResponseFlag.UC : ResponseFlag.UR;
    ex.down.destroy(relayedResetCode(code === H2_NO_ERROR ? H2_INTERNAL_ERROR : code));
    return;
  }
  const session = streamSessionState(stream);
  const cluster = ex.cluster!;
  if (!session.connected) {
    cluster.outlier?.recordFailure(ex.host!, OUTLIER_CONNECT_FAILURE);
    if (hooks.retryFailure(ex, 'connect-failure')) return;
    sendLocalReply(ex, 503, BODY_CONNECT_FAILURE, ResponseFlag.UF);
    return;
  }
  // Never processed upstream (refused, or above the last stream id of a GOAWAY): one fresh stream is safe, and not
  // counted as a retry, unless body bytes went out that were not kept.
  const unprocessed = code === H2_REFUSED_STREAM || session.unprocessed;
  if (unprocessed && !ex.retried && (!ex.bodySent || (ex.retry?.body !== undefined && ex.retry.bodyEnded))) {
    ex.retried = true;
    startHttp2Attempt(ex);
    return;
  }
  if (!unprocessed) cluster.outlier?.recordFailure(ex.host!, OUTLIER_RESET);
  if (hooks.retryFailure(ex, unprocessed ? 'refused-stream' : 'reset')) return;
  if (code === H2_CANCEL && ex.down.httpVersion === 2) {
    // The upstream cancelled the call: the client's stream is cancelled too (gRPC maps it to CANCELLED).
    ex.flags |= ResponseFlag.UR;
    ex.down.destroy(H2_CANCEL);
    return;
  }
  if (code === H2_REFUSED_STREAM) sendLocalReply(ex, 503, BODY_REFUSED_STREAM, ResponseFlag.UR);
  else if (code !== H2_NO_ERROR) sendLocalReply(ex, 503, BODY_REMOTE_RESET, ResponseFlag.UR);
  else sendLocalReply(ex, 503, BODY_CONNECTION_TERMINATION, ResponseFlag.UC);
}
