// Request mirroring on the request path (Istio `mirror` + `mirrorPercentage`,
// Envoy's request_mirror_policies): a sampled copy of the request goes to the
// mirror cluster with the authority `<host>-shadow`, fire and forget. The
// shadow's answer is read and dropped; its failures are counted on the mirror
// cluster and never reach the main request. It never waits: a mirror cluster
// with no healthy host, over its circuit breakers, or whose endpoint has no
// free connection skips the copy (counted) instead of queueing it, and a copy
// that hangs is cut at the route timeout (Envoy's 15 s default when the route
// has none). A body is mirrored only whole and within the replay buffer limit
// (the caller hands over the kept slices), so a mirror never buffers without
// bound.
import type { Cluster } from '../cluster/cluster.ts';
import type { UpstreamHost } from '../cluster/upstream-pool.ts';
import type { Exchange } from '../http/exchange.ts';
import type { Http1Connection, Http1Handler } from '../http1/http1-connection-pool.ts';
import type { Http2Connection } from '../http2/http2-connection.ts';
import type { Http2Stream, Http2StreamEvents } from '../http2/http2-stream.ts';
import type { Http2StreamHandler } from '../http2/http2-upstream-pool.ts';
import { countClusterStatus } from '../stats/proxy-stats.ts';
import { shadowAuthority } from './mirror.ts';

/** Envoy's default route timeout, for shadows of routes that set none: a hung mirror must not hold a connection forever. */
export const SHADOW_TIMEOUT_MS = 15_000;

// Dropped from the copy: the body goes whole with its own length, and HTTP/2 forbids connection-specific fields.
const NOT_COPIED = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'proxy-connection', 'upgrade', 'te']);
const INVALID_VALUE = /[^\t\x20-\x7e\x80-\xff]/;

class ShadowRequest {
  readonly cluster: Cluster;
  readonly host: UpstreamHost;
  readonly method: string;
  readonly body: readonly Buffer[] | undefined;
  /** HTTP/1.1 head as one string, or the HTTP/2 field list (pseudo-headers first). */
  readonly head: string | string[];
  conn: Http1Connection<Exchange> | undefined = undefined;
  stream: Http2Stream | undefined = undefined;
  timer: ReturnType<typeof setTimeout> | undefined = undefined;
  done = false;
  answered = false;

  constructor(cluster: Cluster, host: UpstreamHost, method: string, head: string | string[], body: readonly Buffer[] | undefined) {
    this.cluster = cluster;
    this.host = host;
    this.method = method;
    this.head = head;
    this.body = body;
  }
}

/**
 * Sends the shadow copy of `ex`: `headers` is the flat upstream header list
 * of the main request (`host` first), `body` its whole body when it has one.
 */
export function sendMirror(ex: Exchange, headers: readonly string[], path: string, body: readonly Buffer[] | undefined): void {
  const mirror = ex.route!.mirror!;
  const cluster = ex.state.clusters.get(mirror.cluster);
  if (cluster === undefined) return;
  const stats = cluster.stats;
  const host = cluster.pick(ex);
  if (host === undefined) {
    stats.upstream_rq_no_healthy++;
    stats.upstream_rq_shadow_skipped++;
    return;
  }
  const http2 = cluster.config.protocol === 'http2';
  if ((cluster.circuitBreaker !== undefined && cluster.circuitBreaker.overflows(host)) || (!http2 && host.pool.wouldQueue())) {
    stats.upstream_rq_shadow_skipped++;
    return;
  }
  let length = 0;
  if (body !== undefined) for (let i = 0; i < body.length; i++) length += body[i].length;
  const authority = shadowAuthority(headers[1]);
  const head = http2 ? h2Head(ex.method, authority, path, headers, body !== undefined ? length : -1) : h1Head(ex.method, authority, path, headers, body !== undefined ? length : -1);
  if (head === undefined) {
    stats.upstream_rq_shadow_skipped++;
    return;
  }
  const shadow = new ShadowRequest(cluster, host, ex.method, head, body);
  stats.upstream_rq_shadow++;
  stats.upstream_rq_total++;
  stats.upstream_rq_active++;
  host.active++;
  const timeoutMs = ex.route!.timeoutMs > 0 ? ex.route!.timeoutMs : SHADOW_TIMEOUT_MS;
  shadow.timer = setTimeout(onShadowTimeout, timeoutMs, shadow);
  // The pools hand the owner back to its own handler only, so a shadow can ride them as an exchange would.
  const owner = shadow as unknown as Exchange;
  if (http2) host.h2Pool().request(owner, SHADOW_H2_HANDLER);
  else host.pool.request(owner, SHADOW_H1_HANDLER);
}

function h1Head(method: string, authority: string, path: string, headers: readonly string[], length: number): string | undefined {
  let head = method + ' ' + path + ' HTTP/1.1\r\nhost: ' + authority + '\r\n';
  for (let i = 2; i < headers.length; i += 2) {
    const name = headers[i];
    if (NOT_COPIED.has(name.toLowerCase())) continue;
    const value = headers[i + 1];
    if (INVALID_VALUE.test(value)) return undefined;
    head += name + ': ' + value + '\r\n';
  }
  if (length >= 0) head += 'content-length: ' + length + '\r\n';
  return head + '\r\n';
}

function h2Head(method: string, authority: string, path: string, headers: readonly string[], length: number): string[] | undefined {
  const out: string[] = [':method', method, ':scheme', 'http', ':authority', authority, ':path', path];
  for (let i = 2; i < headers.length; i += 2) {
    const name = headers[i].toLowerCase();
    if (NOT_COPIED.has(name)) continue;
    if (INVALID_VALUE.test(headers[i + 1])) return undefined;
    out.push(name, headers[i + 1]);
  }
  if (length >= 0) out.push('content-length', String(length));
  return out;
}

function finishShadow(s: ShadowRequest, failed: boolean): void {
  if (s.done) return;
  s.done = true;
  if (s.timer !== undefined) {
    clearTimeout(s.timer);
    s.timer = undefined;
  }
  const stats = s.cluster.stats;
  if (failed) stats.upstream_rq_shadow_failed++;
  stats.upstream_rq_active--;
  s.host.active--;
}

function onShadowTimeout(s: ShadowRequest): void {
  s.timer = undefined;
  if (s.done) return;
  s.cluster.stats.upstream_rq_timeout++;
  const conn = s.conn;
  s.conn = undefined;
  if (conn !== undefined && conn.owner === (s as unknown as Exchange)) conn.abort();
  const stream = s.stream;
  s.stream = undefined;
  if (stream !== undefined && !stream.closed) stream.reset(0x8 /* CANCEL */);
  finishShadow(s, true);
}

function shadowOf(owner: Exchange): ShadowRequest {
  return owner as unknown as ShadowRequest;
}

const SHADOW_H1_HANDLER: Http1Handler<Exchange> = {
  start(owner: Exchange, conn: Http1Connection<Exchange>): boolean {
    const s = shadowOf(owner);
    if (s.done) return false;
    s.conn = conn;
    conn.expectResponse(s.method === 'HEAD');
    const socket = conn.socket;
    socket.write(s.head as string, 'latin1');
    if (s.body !== undefined) for (let i = 0; i < s.body.length; i++) socket.write(s.body[i]);
    conn.requestDone = true;
    return true;
  },
  head(owner: Exchange, status: number): void {
    const s = shadowOf(owner);
    s.answered = true;
    countClusterStatus(s.cluster.stats, status);
    if (status >= 500) finishShadow(s, true);
  },
  body(): void {
    // Read and dropped.
  },
  complete(owner: Exchange): void {
    const s = shadowOf(owner);
    s.conn = undefined;
    finishShadow(s, false);
  },
  drain(): void {
    // The whole body was written at once.
  },
  fail(owner: Exchange): void {
    const s = shadowOf(owner);
    s.conn = undefined;
    finishShadow(s, true);
  },
};

const SHADOW_H2_HANDLER: Http2StreamHandler<Exchange> = {
  start(owner: Exchange, conn: Http2Connection): Http2Stream | undefined {
    const s = shadowOf(owner);
    if (s.done) return undefined;
    const stream = conn.request(s.head as string[], s.body === undefined, SHADOW_EVENTS, s);
    if (stream === undefined) {
      finishShadow(s, true);
      return undefined;
    }
    s.stream = stream;
    if (s.body !== undefined) {
      for (let i = 0; i < s.body.length; i++) stream.write(s.body[i]);
      stream.end();
    }
    return stream;
  },
};

function onShadowResponse(stream: Http2Stream): void {
  const s = stream.owner as ShadowRequest;
  s.answered = true;
  countClusterStatus(s.cluster.stats, stream.status);
  if (stream.status >= 500) finishShadow(s, true);
}

function ignoreShadowEvent(): void {
  // The shadow's body and trailers are read and dropped: its flow-control window keeps opening.
}

function onShadowClose(stream: Http2Stream): void {
  const s = stream.owner as ShadowRequest;
  s.stream = undefined;
  finishShadow(s, !s.answered || stream.resetCode > 0);
}

const SHADOW_EVENTS: Http2StreamEvents = {
  headers: onShadowResponse,
  data: ignoreShadowEvent,
  trailers: ignoreShadowEvent,
  end: ignoreShadowEvent,
  drain: ignoreShadowEvent,
  close: onShadowClose,
};
