// Forwarding one request to the upstream host routing picked, over the host's
// keep-alive agent: the request body is piped to the upstream request and the
// upstream response piped back, both with backpressure, never buffered.
// Headers are rewritten in one pass over the raw header list: hop-by-hop
// headers (RFC 9110 §7.6.1, plus those the Connection header names) dropped,
// route mutations applied, x-forwarded-* and x-request-id added.
// Event handlers are module-level functions that find their exchange through
// a symbol, so a request allocates no closures here.
import { randomUUID } from 'node:crypto';
import http from './node-http.ts';
import type { ClientRequest, IncomingMessage, ServerResponse } from 'node:http';
import { kConnected } from '../cluster/upstream-pool.ts';
import { countClusterStatus } from '../stats/proxy-stats.ts';
import { kExchange } from './exchange.ts';
import type { Exchange, Tagged } from './exchange.ts';
import {
  BODY_BAD_REQUEST,
  BODY_CONNECT_FAILURE,
  BODY_CONNECTION_TERMINATION,
  BODY_PROTOCOL_ERROR,
  BODY_TIMEOUT,
  sendLocalReply,
} from './local-reply.ts';
import { ResponseFlag } from './response-flags.ts';

export const UPSTREAM_SERVICE_TIME = 'x-jibe-upstream-service-time';

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
  // The downstream server already answered `100 Continue` itself.
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

function clientAddress(ex: Exchange): string {
  const a = ex.req.socket.remoteAddress ?? '';
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}

/** Builds the upstream request headers (flat list) and records what forwarding needs on the exchange. */
export function buildUpstreamHeaders(ex: Exchange): string[] {
  const raw = ex.req.rawHeaders;
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
  if (named !== undefined) {
    dropNamed(out, named, 2);
    xffIndex = -1;
    for (let i = 2; i < out.length; i += 2) if (out[i].toLowerCase() === 'x-forwarded-for') xffIndex = i + 1;
  }
  out[1] = route.rewriteAuthority ?? (ex.authority || ex.host!.key);
  const client = clientAddress(ex);
  if (xffIndex >= 0) out[xffIndex] += ', ' + client;
  else out.push('x-forwarded-for', client);
  if (!hasXfp) out.push('x-forwarded-proto', ex.scheme);
  if (!hasXfh && ex.authority !== '') out.push('x-forwarded-host', ex.authority);
  if (ex.requestId === '') {
    ex.requestId = randomUUID();
    out.push('x-request-id', ex.requestId);
  }
  // Node's parser removed the chunked framing; the upstream request re-frames it.
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
  if (route.timeoutMs > 0 && ex.timer === undefined) ex.timer = setTimeout(onRouteTimeout, route.timeoutMs, ex);
  sendUpstream(ex, headers, path);
}

function sendUpstream(ex: Exchange, headers: string[], path: string): void {
  const host = ex.host!;
  let upstream: Tagged<ClientRequest>;
  try {
    upstream = http.request({ host: host.address, port: host.port, method: ex.method, path, headers, agent: host.agent });
  } catch {
    // Node's client validates harder than its parser (e.g. control characters in a header value).
    sendLocalReply(ex, 400, BODY_BAD_REQUEST, 0);
    return;
  }
  upstream[kExchange] = ex;
  ex.upstreamReq = upstream;
  ex.upstreamStart = performance.now();
  upstream.on('response', onUpstreamResponse);
  upstream.on('error', onUpstreamError);
  if (ex.hasBody) {
    ex.req.pipe(upstream);
  } else {
    // Kept for one retry over a fresh connection if a reused one turns out stale.
    ex.upstreamHeaders = headers;
    upstream.end();
  }
}

function onUpstreamResponse(this: Tagged<ClientRequest>, ures: Tagged<IncomingMessage>): void {
  const ex = this[kExchange]!;
  if (ex.done || ex.responseStarted) {
    ures.resume();
    return;
  }
  ex.upstreamRes = ures;
  ures[kExchange] = ex;
  ures.on('error', onUpstreamResponseError);
  const status = ures.statusCode ?? 502;
  const cluster = ex.cluster!;
  countClusterStatus(cluster.stats, status);

  const raw = ures.rawHeaders;
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
  const append = mutation.append;
  for (let i = 0; i < append.length; i++) out.push(append[i]);
  out.push(UPSTREAM_SERVICE_TIME, String(Math.round(performance.now() - ex.upstreamStart)));
  if (ex.listener.draining) out.push('connection', 'close');

  const res: ServerResponse = ex.res;
  try {
    res.writeHead(status, out);
  } catch {
    // A header value node's client accepted but its server refuses to send.
    ures.destroy();
    sendLocalReply(ex, 502, BODY_PROTOCOL_ERROR, ResponseFlag.UPE);
    return;
  }
  ex.responseStarted = true;
  // A lean pump instead of pipe(): three listeners, no per-request closures,
  // the same backpressure (pause on a full socket, resume on drain).
  ures.on('data', onUpstreamData);
  ures.on('end', onUpstreamEnd);
}

function onUpstreamData(this: Tagged<IncomingMessage>, chunk: Buffer): void {
  const ex = this[kExchange]!;
  if (ex.done) return;
  if (!ex.res.write(chunk)) {
    this.pause();
    if (!ex.drainHooked) {
      ex.drainHooked = true;
      ex.res.on('drain', onDownstreamDrain);
    }
  }
}

function onDownstreamDrain(this: Tagged<ServerResponse>): void {
  const ex = this[kExchange];
  if (ex !== undefined && !ex.done) ex.upstreamRes?.resume();
}

function onUpstreamEnd(this: Tagged<IncomingMessage>): void {
  const ex = this[kExchange]!;
  if (ex.timer !== undefined) {
    clearTimeout(ex.timer);
    ex.timer = undefined;
  }
  if (!ex.done) ex.res.end();
}

function onUpstreamResponseError(this: Tagged<IncomingMessage>): void {
  const ex = this[kExchange]!;
  if (ex.done) return;
  // The upstream went away mid-body: the client must not take a truncated body for a whole one.
  ex.flags |= ResponseFlag.UC;
  ex.res.destroy();
}

const CONNECT_FAILURE_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EADDRNOTAVAIL', 'UPSTREAM_CONNECT_TIMEOUT']);

function onUpstreamError(this: Tagged<ClientRequest>, err: NodeJS.ErrnoException): void {
  const ex = this[kExchange]!;
  if (ex.done || this !== ex.upstreamReq) return;
  if (ex.responseStarted) {
    ex.flags |= ResponseFlag.UC;
    ex.res.destroy();
    return;
  }
  const code = err.code ?? '';
  const socket = this.socket as (typeof this.socket & { [kConnected]?: boolean }) | null;
  // A reused keep-alive connection the upstream closed just as we sent on it:
  // nothing reached the upstream application, so one retry on a fresh connection is safe.
  if (this.reusedSocket && !ex.hasBody && !ex.retried && (code === 'ECONNRESET' || code === 'EPIPE')) {
    ex.retried = true;
    const headers = ex.upstreamHeaders;
    if (headers !== undefined) {
      sendUpstream(ex, headers, this.path);
      return;
    }
  }
  if (CONNECT_FAILURE_CODES.has(code) || (socket != null && socket[kConnected] === false)) {
    sendLocalReply(ex, 503, BODY_CONNECT_FAILURE, ResponseFlag.UF);
  } else if (code.startsWith('HPE_')) {
    sendLocalReply(ex, 502, BODY_PROTOCOL_ERROR, ResponseFlag.UPE);
  } else {
    sendLocalReply(ex, 503, BODY_CONNECTION_TERMINATION, ResponseFlag.UC);
  }
}

function onRouteTimeout(ex: Exchange): void {
  ex.timer = undefined;
  if (ex.done) return;
  ex.cluster!.stats.upstream_rq_timeout++;
  const upstream = ex.upstreamReq;
  ex.upstreamReq = undefined;
  upstream?.destroy();
  if (ex.responseStarted) {
    ex.flags |= ResponseFlag.UT;
    ex.res.destroy();
  } else {
    sendLocalReply(ex, 504, BODY_TIMEOUT, ResponseFlag.UT);
  }
}

/** Ends the upstream side when the exchange ends (client gone, local reply sent, or done). */
export function abortUpstream(ex: Exchange): void {
  const upstream = ex.upstreamReq;
  if (upstream === undefined) return;
  if (ex.upstreamRes === undefined || !ex.upstreamRes.complete) upstream.destroy();
}
