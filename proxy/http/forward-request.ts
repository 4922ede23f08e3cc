// Forwarding one request to the upstream host routing picked, over the host's
// raw HTTP/1.1 keep-alive pool (proxy/http1): the request head is written as
// one string, the request body and the upstream response body are pumped with
// backpressure both ways, never buffered.
// Headers are rewritten in one pass over the raw header list: hop-by-hop
// headers (RFC 9110 §7.6.1, plus those the Connection header names) dropped,
// route mutations applied, x-forwarded-* and x-request-id added.
// Event handlers are module-level functions that find their exchange through
// a symbol, so a request allocates no closures here.
import { randomUUID } from 'node:crypto';
import { FAIL_CONNECT, FAIL_PROTOCOL } from '../http1/http1-connection-pool.ts';
import type { Http1Connection, Http1Handler } from '../http1/http1-connection-pool.ts';
import { INVALID_VALUE } from '../http1/http1-syntax.ts';
import { cancelHttp2Upstream, endHttp2RequestBody, forwardHttp2, startHttp2Attempt, writeHttp2RequestBody } from '../http2/http2-forward.ts';
import type { Http2ForwardHooks } from '../http2/http2-forward.ts';
import { shouldMirror } from '../resilience/mirror.ts';
import { sendMirror } from '../resilience/mirror-request.ts';
import { retryableFailure, retryableStatus } from '../resilience/retry-policy.ts';
import type { FailureKind } from '../resilience/retry-policy.ts';
import {
  RETRY_YES,
  clearPerTryTimer,
  endRetries,
  keepRequestBody,
  releaseRequestBody,
  retryDecision,
  retryStateOf,
  scheduleRetry,
  startPerTryTimer,
} from '../resilience/retry-state.ts';
import type { RetryState } from '../resilience/retry-state.ts';
import { countClusterStatus } from '../stats/proxy-stats.ts';
import { observeResponseBody, responseAtMessageBoundary } from '../telemetry/exchange-telemetry.ts';
import type { Exchange } from './exchange.ts';
import {
  BODY_BAD_REQUEST,
  BODY_CONNECT_FAILURE,
  BODY_CONNECTION_TERMINATION,
  BODY_PROTOCOL_ERROR,
  BODY_TIMEOUT,
  GRPC_DEADLINE_EXCEEDED,
  encodeGrpcMessage,
  sendLocalReply,
} from './local-reply.ts';
import { ResponseFlag } from './response-flags.ts';
import { unmapIpv4 } from './client-address.ts';

export const UPSTREAM_SERVICE_TIME = 'x-jibe-upstream-service-time';
const GRPC_TIMEOUT_MESSAGE = encodeGrpcMessage(BODY_TIMEOUT.toString());

// Codes given to each incoming header name the forwarder treats specially.
const DROP = 1; // hop-by-hop, or the proxy sets it itself
const HOST = 2;
const XFF = 3;
const XFP = 4;
const XFH = 5;
const REQUEST_ID = 6;
const CONTENT_LENGTH = 7;
const TRANSFER_ENCODING = 8;

const REQUEST_SPECIAL = new Map<string, number>([
  ['connection', DROP],
  ['keep-alive', DROP],
  ['proxy-connection', DROP],
  ['te', DROP],
  ['trailer', DROP],
  ['upgrade', DROP],
  ['proxy-authorization', DROP],
  // The downstream connection already answered `100 Continue` itself.
  ['expect', DROP],
  ['transfer-encoding', TRANSFER_ENCODING],
  ['host', HOST],
  ['x-forwarded-for', XFF],
  ['x-forwarded-proto', XFP],
  ['x-forwarded-host', XFH],
  ['x-request-id', REQUEST_ID],
  ['content-length', CONTENT_LENGTH],
]);

const RESPONSE_HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authenticate']);

// Lowercasing every header name allocates; a name can only be special when its
// length is one of the special names' lengths, so most names skip it.
function lengthsOf(names: Iterable<string>): Uint8Array {
  const table = new Uint8Array(64);
  for (const n of names) table[n.length] = 1;
  return table;
}
const REQUEST_SPECIAL_LENGTHS = lengthsOf(REQUEST_SPECIAL.keys());
const RESPONSE_SPECIAL_LENGTHS = lengthsOf(RESPONSE_HOP_BY_HOP);

/**
 * Tokens of a Connection header beyond keep-alive/close name more hop-by-hop
 * headers; undefined in the usual case so the hot path skips the check.
 */
function connectionTokens(value: string): Set<string> | undefined {
  const lower = value.toLowerCase();
  if (lower === 'keep-alive' || lower === 'close') return undefined;
  let tokens: Set<string> | undefined;
  for (const part of lower.split(',')) {
    const t = part.trim();
    if (t === '' || t === 'keep-alive' || t === 'close') continue;
    (tokens ??= new Set()).add(t);
  }
  return tokens;
}

/** Removes, in place, the headers a Connection header named (rare: a second pass only then). */
function dropNamed(headers: string[], named: Set<string>, from: number): string[] {
  let w = from;
  for (let r = from; r < headers.length; r += 2) {
    if (named.has(headers[r].toLowerCase())) continue;
    headers[w++] = headers[r];
    headers[w++] = headers[r + 1];
  }
  headers.length = w;
  return headers;
}


/** Builds the upstream request headers (flat list) and records what forwarding needs on the exchange. */
export function buildUpstreamHeaders(ex: Exchange): string[] {
  const raw = ex.down.rawHeaders;
  const route = ex.route!;
  const mutation = route.requestHeaders[ex.clusterIndex];
  const drop = mutation.empty ? undefined : mutation.drop;
  const edge = ex.listener.edge;
  const out: string[] = ['host', ''];
  let named: Set<string> | undefined;
  let xffIndex = -1;
  let hasXfp = false;
  let hasXfh = false;
  let contentLength = '';
  let chunked = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    const special = name.length < 64 && REQUEST_SPECIAL_LENGTHS[name.length] === 1;
    if (!special && drop === undefined) {
      out.push(name, raw[i + 1]);
      continue;
    }
    const lower = name.toLowerCase();
    const code = special ? REQUEST_SPECIAL.get(lower) : undefined;
    if (code !== undefined) {
      switch (code) {
        case DROP:
          if (lower === 'upgrade') {
            // WebSocket is passed through to HTTP/1.1 upstreams (RFC 6455 §4.1); other upgrades are dropped as hop-by-hop.
            if (raw[i + 1].toLowerCase() === 'websocket' && ex.down.httpVersion === 1 && ex.cluster?.config.protocol !== 'http2') {
              ex.upgrade = true;
              out.push(name, raw[i + 1]);
            }
            continue;
          }
          if (lower === 'connection') {
            const tokens = connectionTokens(raw[i + 1]);
            if (tokens !== undefined) for (const t of tokens) (named ??= new Set()).add(t);
          }
          continue;
        case HOST:
          continue;
        case TRANSFER_ENCODING:
          chunked = true;
          continue;
        case CONTENT_LENGTH:
          contentLength = raw[i + 1];
          break;
        case XFF:
          if (drop?.has(lower)) continue;
          if (xffIndex >= 0) {
            out[xffIndex] += ', ' + raw[i + 1];
            continue;
          }
          xffIndex = out.length + 1;
          break;
        case XFP:
          if (edge || drop?.has(lower)) continue;
          hasXfp = true;
          break;
        case XFH:
          if (drop?.has(lower)) continue;
          hasXfh = true;
          break;
        case REQUEST_ID:
          if (drop?.has(lower) || raw[i + 1] === '' || ex.requestId !== '') continue;
          ex.requestId = raw[i + 1];
          break;
      }
    }
    if (drop !== undefined && drop.has(lower)) continue;
    out.push(name, raw[i + 1]);
  }
  if (ex.upgrade) {
    named?.delete('upgrade');
    out.push('connection', 'upgrade');
  }
  if (named !== undefined) {
    dropNamed(out, named, 2);
    xffIndex = -1;
    for (let i = 2; i < out.length; i += 2) if (out[i].toLowerCase() === 'x-forwarded-for') xffIndex = i + 1;
  }
  out[1] = route.rewriteAuthority ?? (ex.authority || ex.host!.key);
  const client = unmapIpv4(ex.down.remoteAddress);
  if (xffIndex >= 0) out[xffIndex] += ', ' + client;
  else out.push('x-forwarded-for', client);
  if (!hasXfp) out.push('x-forwarded-proto', ex.scheme);
  if (!hasXfh && ex.authority !== '') out.push('x-forwarded-host', ex.authority);
  if (ex.requestId === '') {
    ex.requestId = randomUUID();
    out.push('x-request-id', ex.requestId);
  }
  // An HTTP/2 body needs no length (gRPC never sends one): HTTP/1.1 upstream, it goes chunked.
  if (!chunked && contentLength === '' && ex.down.httpVersion === 2 && !ex.down.bodyComplete) chunked = true;
  // The request parser removed the chunked framing; the upstream request re-frames it.
  ex.requestChunked = chunked;
  if (chunked) {
    out.push('transfer-encoding', 'chunked');
    ex.hasBody = true;
  } else {
    ex.hasBody = contentLength !== '' && contentLength !== '0';
  }
  const append = mutation.append;
  for (let i = 0; i < append.length; i++) out.push(append[i]);
  return out;
}

/** The path sent upstream: a prefix rewrite replaces the matched prefix, any other rewrite the whole path. */
export function upstreamPath(ex: Exchange): string {
  const rewrite = ex.route!.rewriteUri;
  if (rewrite === undefined) return ex.pathAndQuery();
  let path = ex.matchedPrefixLength >= 0 ? rewrite + ex.path.slice(ex.matchedPrefixLength) : rewrite;
  if (path === '') path = '/';
  return ex.query === '' ? path : path + '?' + ex.query;
}

/** Sends the exchange to `ex.host` (already picked and counted by the router). */
export function forwardRequest(ex: Exchange): void {
  const headers = buildUpstreamHeaders(ex);
  const path = upstreamPath(ex);
  const route = ex.route!;
  const cluster = ex.cluster!;
  // A gRPC deadline bounds the request as the route timeout does; the smaller wins.
  let timeoutMs = route.timeoutMs;
  const grpcTimeoutMs = ex.grpcTimeoutMs;
  if (grpcTimeoutMs > 0 && (timeoutMs <= 0 || grpcTimeoutMs < timeoutMs)) timeoutMs = grpcTimeoutMs;
  if (timeoutMs > 0 && ex.timer === undefined) ex.timer = setTimeout(onRouteTimeout, timeoutMs, ex);
  // Every request deposits into the budget its retries withdraw from.
  cluster.retryBudget?.recordRequest();
  // A body is kept (up to the buffer limit) only where a retry could replay it.
  const retry = route.retry;
  if (ex.hasBody && retry !== undefined && retry.attempts > 0) retryStateOf(ex).body = [];
  const mirror = route.mirror;
  const mirrored = mirror !== undefined && shouldMirror(mirror.percentage, cluster.random);
  if (mirrored && ex.hasBody) {
    // The copy goes once the whole body is in (onRequestBodyEnd), if it fits the buffer.
    const rs = retryStateOf(ex);
    rs.body ??= [];
    rs.mirror = { headers, path };
  }
  if (cluster.config.protocol === 'http2') forwardHttp2(ex, headers, path, HTTP2_HOOKS);
  else sendUpstream(ex, headers, path);
  // After the main request went: the copy never delays it.
  if (mirrored && !ex.hasBody && !ex.done) sendMirror(ex, headers, path, undefined);
}

const HTTP2_HOOKS: Http2ForwardHooks = { relayHead: onUpstreamHead, tryStarted, retryFailure };

/** A try has its connection or stream: the per-try timeout runs from here (as Envoy's, from pool ready). */
function tryStarted(ex: Exchange): void {
  const retry = ex.route!.retry;
  if (retry !== undefined && retry.perTryTimeoutMs > 0) startPerTryTimer(ex, onPerTryTimeout);
}

/** A try ended without an answer (`kind`): true when it is retried, else the caller answers with the failure. */
function retryFailure(ex: Exchange, kind: FailureKind): boolean {
  const rs = ex.retry;
  if (rs !== undefined) clearPerTryTimer(rs);
  const policy = ex.route!.retry;
  if (policy === undefined) return false;
  if (retryDecision(ex, retryableFailure(policy, kind)) !== RETRY_YES) return false;
  scheduleRetry(ex, ex.cluster!.config.protocol === 'http2' ? resendHttp2 : resendHttp1);
  return true;
}

function resendHttp1(ex: Exchange): void {
  ex.upstreamStart = performance.now();
  ex.host!.pool.request(ex, UPSTREAM_HANDLER);
}

function resendHttp2(ex: Exchange): void {
  startHttp2Attempt(ex);
}

const LAST_CHUNK = '0\r\n\r\n';
const CRLF = '\r\n';

/** The request head as one string, or undefined when a value cannot be sent. */
export function requestHead(method: string, path: string, headers: readonly string[]): string | undefined {
  let head = method + ' ' + path + ' HTTP/1.1\r\n';
  for (let i = 0; i < headers.length; i += 2) {
    const value = headers[i + 1];
    if (INVALID_VALUE.test(value)) return undefined;
    head += headers[i] + ': ' + value + '\r\n';
  }
  return head + '\r\n';
}

function sendUpstream(ex: Exchange, headers: string[], path: string): void {
  const head = requestHead(ex.method, path, headers);
  if (head === undefined) {
    // Node's parser accepts some values a client must not send (e.g. control characters).
    sendLocalReply(ex, 400, BODY_BAD_REQUEST, 0);
    return;
  }
  ex.upstreamHead = head;
  ex.upstreamStart = performance.now();
  ex.host!.pool.request(ex, UPSTREAM_HANDLER);
}

const UPSTREAM_HANDLER: Http1Handler<Exchange> = {
  start: onUpstreamStart,
  head: onUpstreamHead,
  body: onUpstreamBody,
  complete: onUpstreamComplete,
  drain: onUpstreamDrain,
  fail: onUpstreamFail,
};

function onUpstreamStart(ex: Exchange, conn: Http1Connection<Exchange>): boolean {
  // Only the exchange's current try may take a connection (a stale queued one may not).
  if (ex.done || ex.responseStarted || ex.upstream !== undefined) return false;
  ex.upstream = conn;
  conn.expectResponse(ex.method === 'HEAD', ex.upgrade);
  const socket = conn.socket;
  socket.write(ex.upstreamHead, 'latin1');
  tryStarted(ex);
  const rs = ex.retry;
  // A retry replays the body kept from the first try.
  if (rs !== undefined && rs.retries > 0 && ex.hasBody && rs.body !== undefined) {
    replayHttp1Body(ex, rs, conn);
    return true;
  }
  if (!ex.hasBody) {
    conn.requestDone = true;
    return true;
  }
  ex.down.readBody();
  return true;
}

function replayHttp1Body(ex: Exchange, rs: RetryState, conn: Http1Connection<Exchange>): void {
  const socket = conn.socket;
  const body = rs.body!;
  for (let i = 0; i < body.length; i++) {
    const chunk = body[i];
    if (ex.requestChunked) {
      socket.write(chunk.length.toString(16) + CRLF, 'latin1');
      socket.write(chunk);
      socket.write(CRLF, 'latin1');
    } else {
      socket.write(chunk);
    }
  }
  // Retries wait for the whole body (retryDecision), so its end is always here.
  if (ex.requestChunked) socket.write(LAST_CHUNK, 'latin1');
  conn.requestDone = true;
}

/** A slice of the request body (framing removed) for the upstream. */
export function onRequestBody(ex: Exchange, chunk: Buffer): void {
  const rs = ex.retry;
  if (rs !== undefined && rs.body !== undefined) keepRequestBody(ex, rs, chunk);
  const stream = ex.upstreamStream;
  if (stream !== undefined) {
    if (!ex.done) writeHttp2RequestBody(ex, stream, chunk);
    return;
  }
  const conn = ex.upstream;
  if (conn === undefined || ex.done) return;
  const socket = conn.socket;
  let ok: boolean;
  if (ex.requestChunked) {
    // The parser removed the client's chunk framing; the upstream request is re-framed.
    socket.write(chunk.length.toString(16) + CRLF, 'latin1');
    socket.write(chunk);
    ok = socket.write(CRLF, 'latin1');
  } else {
    ok = socket.write(chunk);
  }
  if (!ok) ex.down.pauseBody();
}

export function onRequestBodyEnd(ex: Exchange): void {
  const rs = ex.retry;
  if (rs !== undefined) requestBodyEnded(ex, rs);
  const stream = ex.upstreamStream;
  if (stream !== undefined) {
    if (!ex.done) endHttp2RequestBody(ex, stream);
    return;
  }
  const conn = ex.upstream;
  if (conn === undefined || ex.done) return;
  if (ex.upgrade && ex.responseStarted) {
    // The client half-closed an upgraded connection: so does the upstream side.
    conn.socket.end();
    return;
  }
  if (ex.requestChunked) conn.socket.write(LAST_CHUNK, 'latin1');
  conn.requestDone = true;
}

function requestBodyEnded(ex: Exchange, rs: RetryState): void {
  rs.bodyEnded = true;
  const mirror = rs.mirror;
  if (mirror === undefined) return;
  rs.mirror = undefined;
  if (rs.body !== undefined) {
    sendMirror(ex, mirror.headers, mirror.path, rs.body);
  } else {
    // Outgrew the buffer: counted as abandoned on the main cluster, as skipped on the mirror's.
    const target = ex.state.clusters.get(ex.route!.mirror!.cluster);
    if (target !== undefined) target.stats.upstream_rq_shadow_skipped++;
  }
  // No retry can need the body any more once the answer started.
  if (ex.responseStarted) rs.body = undefined;
}

function onUpstreamDrain(ex: Exchange): void {
  if ((ex.hasBody || ex.upgrade) && !ex.done) ex.down.resumeBody();
}

function onUpstreamHead(ex: Exchange, status: number, raw: string[]): void {
  if (ex.done || ex.responseStarted) return;
  const cluster = ex.cluster!;
  countClusterStatus(cluster.stats, status);
  cluster.outlier?.recordStatus(ex.host!, status);
  const retry = ex.route!.retry;
  if (retry !== undefined) {
    const retriable = retryableStatus(retry, status, ex.grpc ? grpcStatusIn(ex, raw) : undefined);
    // Nothing to settle and nothing to retry: the common answer costs the status test above only.
    if (retriable || ex.retry !== undefined) {
      if (retryDecision(ex, retriable) === RETRY_YES) {
        abortAttempt(ex);
        scheduleRetry(ex, cluster.config.protocol === 'http2' ? resendHttp2 : resendHttp1);
        return;
      }
      const rs = ex.retry;
      if (rs !== undefined) releaseRequestBody(rs);
    }
  }

  const mutation = ex.route!.responseHeaders[ex.clusterIndex];
  const drop = mutation.empty ? undefined : mutation.drop;
  let named: Set<string> | undefined;
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    const special = name.length < 64 && RESPONSE_SPECIAL_LENGTHS[name.length] === 1;
    if (!special && drop === undefined) {
      out.push(name, raw[i + 1]);
      continue;
    }
    const lower = name.toLowerCase();
    if (special && RESPONSE_HOP_BY_HOP.has(lower)) {
      if (lower === 'connection') named = connectionTokens(raw[i + 1]);
      continue;
    }
    if (drop !== undefined && drop.has(lower)) continue;
    out.push(name, raw[i + 1]);
  }
  if (named !== undefined) dropNamed(out, named, 0);
  if (status === 101) switchingProtocols(ex, raw, out);
  const append = mutation.append;
  for (let i = 0; i < append.length; i++) out.push(append[i]);
  if (ex.extraResponseHeaders !== undefined) for (const h of ex.extraResponseHeaders) out.push(h);
  out.push(UPSTREAM_SERVICE_TIME, String(Math.round(performance.now() - ex.upstreamStart)));
  if (ex.listener.draining) out.push('connection', 'close');

  // The upstream parser already refused values that cannot be sent on.
  ex.down.writeHead(status, out, false);
  ex.responseStarted = true;
}

/** The grpc-status of a trailers-only answer: HTTP/2 observed it already; an HTTP/1.1 head is searched. */
function grpcStatusIn(ex: Exchange, raw: readonly string[]): number | undefined {
  if (ex.grpcStatus >= 0) return ex.grpcStatus;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i].length === 11 && raw[i].toLowerCase() === 'grpc-status') {
      const code = Number(raw[i + 1]);
      return Number.isInteger(code) ? code : undefined;
    }
  }
  return undefined;
}

/** A 101 to a WebSocket upgrade: keep its upgrade headers, and no route timeout for the tunnel (as Envoy, the timeout covers the request). */
function switchingProtocols(ex: Exchange, raw: string[], out: string[]): void {
  for (let i = 0; i < raw.length; i += 2) if (raw[i].toLowerCase() === 'upgrade') out.push(raw[i], raw[i + 1]);
  out.push('connection', 'upgrade');
  if (ex.timer !== undefined) {
    clearTimeout(ex.timer);
    ex.timer = undefined;
  }
}

function onUpstreamBody(ex: Exchange, chunk: Buffer): void {
  if (ex.done) return;
  observeResponseBody(ex, chunk);
  if (!ex.down.write(chunk)) ex.upstream?.socket.pause();
}

/** The client took the response bytes it had pushed back on. */
export function onDownstreamDrain(ex: Exchange): void {
  if (ex.done) return;
  if (ex.upstream !== undefined) ex.upstream.socket.resume();
  else ex.upstreamStream?.resume();
}

function onUpstreamComplete(ex: Exchange): void {
  // The pool takes the connection back once the chunk that completed the response is parsed.
  ex.upstream = undefined;
  const rs = ex.retry;
  if (rs !== undefined) clearPerTryTimer(rs);
  if (ex.timer !== undefined) {
    clearTimeout(ex.timer);
    ex.timer = undefined;
  }
  if (!ex.done && ex.responseStarted) ex.down.end();
}

function onUpstreamFail(ex: Exchange, kind: number, retriable: boolean): void {
  ex.upstream = undefined;
  if (ex.done) return;
  if (ex.responseStarted) {
    // The upstream went away mid-body: the client must not take a truncated body for a whole one.
    ex.flags |= kind === FAIL_PROTOCOL ? ResponseFlag.UPE : ResponseFlag.UC;
    ex.down.destroy();
    return;
  }
  // A reused keep-alive connection the upstream closed just as we sent on it:
  // nothing reached the upstream application, so one retry on a fresh connection is safe.
  if (retriable && !ex.hasBody && !ex.retried) {
    ex.retried = true;
    ex.host!.pool.request(ex, UPSTREAM_HANDLER, true);
    return;
  }
  ex.cluster!.outlier?.recordFailure(ex.host!, kind);
  if (retryFailure(ex, kind === FAIL_CONNECT ? 'connect-failure' : 'reset')) return;
  if (kind === FAIL_CONNECT) sendLocalReply(ex, 503, BODY_CONNECT_FAILURE, ResponseFlag.UF);
  else if (kind === FAIL_PROTOCOL) sendLocalReply(ex, 502, BODY_PROTOCOL_ERROR, ResponseFlag.UPE);
  else sendLocalReply(ex, 503, BODY_CONNECTION_TERMINATION, ResponseFlag.UC);
}

function onRouteTimeout(ex: Exchange): void {
  ex.timer = undefined;
  if (ex.done) return;
  const cluster = ex.cluster!;
  cluster.stats.upstream_rq_timeout++;
  // As Envoy: a try cut before its answer counts as a 504 from its host, in the stats and for outlier detection.
  if (!ex.responseStarted && (ex.upstream !== undefined || ex.upstreamStream !== undefined)) {
    countClusterStatus(cluster.stats, 504);
    cluster.outlier?.recordStatus(ex.host!, 504);
  }
  abortUpstream(ex);
  if (ex.responseStarted) cutTimedOutResponse(ex);
  else sendLocalReply(ex, 504, BODY_TIMEOUT, ResponseFlag.UT);
}

/**
 * A timeout after the answer started. A gRPC call over HTTP/2 between two
 * messages still gets its status: its headers are out, so DEADLINE_EXCEEDED
 * goes in trailers, as a gRPC server ends a call it gave up on. Anything else
 * is cut (a reset, or a closed HTTP/1.1 connection), so a short answer is not
 * taken for whole.
 */
function cutTimedOutResponse(ex: Exchange): void {
  ex.flags |= ResponseFlag.UT;
  const down = ex.down;
  if (ex.grpc && down.httpVersion === 2 && !down.finished && responseAtMessageBoundary(ex)) {
    ex.grpcStatus = Number(GRPC_DEADLINE_EXCEEDED);
    down.endWithTrailers(['grpc-status', GRPC_DEADLINE_EXCEEDED, 'grpc-message', GRPC_TIMEOUT_MESSAGE]);
    return;
  }
  down.destroy();
}

/**
 * The try's timeout (perTryTimeoutMs) fired: before the answer started the
 * try is abandoned and retried when retryOn allows (5xx, gateway-error,
 * reset), else answered 504 UT; after it started, the client is cut as on a
 * route timeout.
 */
function onPerTryTimeout(ex: Exchange): void {
  ex.retry!.perTryTimer = undefined;
  if (ex.done) return;
  const cluster = ex.cluster!;
  cluster.stats.upstream_rq_per_try_timeout++;
  if (ex.responseStarted) {
    abortUpstream(ex);
    cutTimedOutResponse(ex);
    return;
  }
  cluster.outlier?.recordStatus(ex.host!, 504);
  abortAttempt(ex);
  if (retryFailure(ex, 'per-try-timeout')) return;
  countClusterStatus(cluster.stats, 504);
  sendLocalReply(ex, 504, BODY_TIMEOUT, ResponseFlag.UT);
}

/** Ends the upstream side when the exchange ends before its response did (client gone, local reply, timeout). */
export function abortUpstream(ex: Exchange): void {
  abortAttempt(ex);
  const rs = ex.retry;
  if (rs !== undefined) endRetries(ex, rs);
}

/** Abandons the current try (its connection or stream), leaving the exchange to a retry or a local reply. */
function abortAttempt(ex: Exchange): void {
  const stream = ex.upstreamStream;
  if (stream !== undefined) {
    ex.upstreamStream = undefined;
    cancelHttp2Upstream(stream);
  }
  const conn = ex.upstream;
  if (conn === undefined) return;
  ex.upstream = undefined;
  if (conn.owner === ex) conn.abort();
}
