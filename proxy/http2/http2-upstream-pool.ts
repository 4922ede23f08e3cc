// HTTP/2 connections to one upstream endpoint (http2-connection.ts, client
// role), for clusters whose protocol is http2. Streams are multiplexed: a
// request goes on the first connection with room under the peer's
// SETTINGS_MAX_CONCURRENT_STREAMS; a new connection is opened only when every
// connection is full (up to `maxSessions`), beyond that requests wait here. A
// connection that received GOAWAY takes no new streams and is closed once its
// streams are over; the streams it did not process (above the GOAWAY's last
// stream id) are closed as refused and marked unprocessed, which the
// forwarder retries on another connection when that is safe.
import net from 'node:net';
import tls from 'node:tls';
import type { Socket } from 'node:net';
import { UpstreamConnectTimeoutError } from '../http1/http1-connection-pool.ts';
import type { ClusterStats } from '../stats/proxy-stats.ts';
import { ALPN_HTTP2 } from '../tls/tls-upstream.ts';
import type { UpstreamTlsDial } from '../tls/tls-upstream.ts';
import { Http2Connection } from './http2-connection.ts';
import type { Http2ConnectionHandler } from './http2-connection.ts';
import type { Http2Stream } from './http2-stream.ts';

export interface Http2PoolOptions {
  /** Upper bound of connections to the endpoint (a new one opens only when all are full). */
  maxSessions: number;
  connectTimeoutMs: number;
  /** A connection without streams is closed after this long. */
  idleTimeoutMs: number;
}

export interface Http2StreamHandler<T> {
  /** A connection has room: open the stream on it. Returns the stream, or undefined when the owner no longer wants one. */
  start(owner: T, conn: Http2Connection): Http2Stream | undefined;
}

// Until the peer's SETTINGS arrive, a connection takes at most this many streams (RFC 9113 §6.5.2: the initial value is unlimited; 100 is its recommended floor).
const INITIAL_MAX_STREAMS = 100;

const kEntry = Symbol('jibe.http2.session');
type TaggedSocket = Socket & { [kEntry]?: Http2SessionEntry };

export class Http2SessionEntry {
  readonly conn: Http2Connection;
  readonly pool: Http2Pool<unknown>;
  active = 0;
  maxStreams = INITIAL_MAX_STREAMS;
  connected = false;
  /** GOAWAY received (or sent): no new streams. */
  draining = false;
  closed = false;
  connectTimer: ReturnType<typeof setTimeout> | undefined = undefined;

  constructor(pool: Http2Pool<unknown>, conn: Http2Connection) {
    this.pool = pool;
    this.conn = conn;
  }

  get hasRoom(): boolean {
    return !this.draining && !this.closed && !this.conn.goingAway && this.active < this.maxStreams;
  }
}

export class Http2Pool<T> {
  readonly address: string;
  readonly port: number;
  readonly options: Http2PoolOptions;
  readonly stats: ClusterStats;
  /** TLS to dial with (mesh mTLS or the DestinationRule's); undefined = h2c. */
  readonly tls: UpstreamTlsDial | undefined;
  private readonly sessions: Http2SessionEntry[] = [];
  private readonly waiting: { owner: T; handler: Http2StreamHandler<T> }[] = [];
  private retired = false;

  constructor(address: string, port: number, options: Http2PoolOptions, stats: ClusterStats, tlsDial?: UpstreamTlsDial) {
    this.address = address;
    this.port = port;
    this.options = options;
    this.stats = stats;
    this.tls = tlsDial;
  }

  /** Opens `owner`'s stream on a session with room, a new session, or the first one that frees a slot. */
  request(owner: T, handler: Http2StreamHandler<T>): void {
    const entry = this.pick();
    if (entry !== undefined) {
      this.open(entry, owner, handler);
      return;
    }
    this.waiting.push({ owner, handler });
    this.stats.upstream_rq_pending_active++;
  }

  /** Whether a stream opened now would wait for a slot (circuit breakers' maxPendingRequests), as pick() would decide. */
  wouldQueue(): boolean {
    return this.withRoom() === undefined && !this.mayConnect();
  }

  private pick(): Http2SessionEntry | undefined {
    return this.withRoom() ?? (this.mayConnect() ? this.connect() : undefined);
  }

  private withRoom(): Http2SessionEntry | undefined {
    const sessions = this.sessions;
    for (let i = 0; i < sessions.length; i++) if (sessions[i].hasRoom) return sessions[i];
    return undefined;
  }

  /** A new session may open: not retired, and fewer live (not draining) sessions than maxSessions. */
  private mayConnect(): boolean {
    if (this.retired) return false;
    const sessions = this.sessions;
    let live = 0;
    for (let i = 0; i < sessions.length; i++) if (!sessions[i].draining) live++;
    return live < this.options.maxSessions;
  }

  private open(entry: Http2SessionEntry, owner: T, handler: Http2StreamHandler<T>): void {
    entry.active++;
    // A stream that opens is released by its close (POOL_HANDLER.streamClosed).
    if (handler.start(owner, entry.conn) === undefined) this.released(entry);
  }

  private connect(): Http2SessionEntry {
    const { address, port } = this;
    const dial = this.tls;
    // Two proxies negotiate h2 over mesh mTLS and multiplex on it; the TLS options are read per dial (rotation).
    const socket: TaggedSocket = dial === undefined ? net.connect({ host: address, port, noDelay: true }) : dialTls(dial, address, port);
    const conn = new Http2Connection(socket, false, POOL_HANDLER);
    const entry = new Http2SessionEntry(this as Http2Pool<unknown>, conn);
    conn.owner = entry;
    socket[kEntry] = entry;
    this.sessions.push(entry);
    this.stats.upstream_cx_total++;
    this.stats.upstream_cx_active++;
    if (this.options.connectTimeoutMs > 0) entry.connectTimer = setTimeout(onConnectTimeout, this.options.connectTimeoutMs, entry);
    if (this.options.idleTimeoutMs > 0) socket.setTimeout(this.options.idleTimeoutMs, onSocketTimeout);
    socket.once(dial === undefined ? 'connect' : 'secureConnect', onSocketConnect);
    return entry;
  }

  /** A stream on `entry` is over: its slot goes to a waiting request, or the session winds down. */
  released(entry: Http2SessionEntry): void {
    entry.active--;
    this.dispatchWaiting();
    if (entry.active === 0 && (entry.draining || this.retired) && !entry.closed) entry.conn.close();
  }

  /** Hands waiting requests the slots that are free now. */
  dispatchWaiting(): void {
    while (this.waiting.length > 0) {
      const entry = this.pick();
      if (entry === undefined) return;
      const next = this.waiting.shift()!;
      this.stats.upstream_rq_pending_active--;
      this.open(entry, next.owner, next.handler);
    }
  }

  sessionClosed(entry: Http2SessionEntry): void {
    entry.closed = true;
    const i = this.sessions.indexOf(entry);
    if (i >= 0) this.sessions.splice(i, 1);
    this.stats.upstream_cx_active--;
    if (!entry.connected) this.stats.upstream_cx_connect_fail++;
    // Requests waiting for a slot on this endpoint get a new session.
    if (!this.retired) this.dispatchWaiting();
  }

  /** Stops taking streams: idle sessions close now, busy ones when their streams are over. */
  retire(): void {
    this.retired = true;
    for (const entry of this.sessions) {
      entry.draining = true;
      if (entry.active === 0) entry.conn.close();
    }
  }

  /** Ends every session now. */
  destroy(): void {
    this.retire();
    this.stats.upstream_rq_pending_active -= this.waiting.length;
    this.waiting.length = 0;
    for (const entry of [...this.sessions]) entry.conn.destroy();
  }

  get connections(): number {
    return this.sessions.length;
  }
}

/** How the connection that carried `stream` fared: whether it ever connected, and whether the peer's GOAWAY left the stream unprocessed. */
export function streamSessionState(stream: Http2Stream): { connected: boolean; unprocessed: boolean } {
  const entry = stream.conn.owner as Http2SessionEntry | undefined;
  return { connected: entry !== undefined && entry.connected, unprocessed: stream.unprocessed };
}

function onConnectTimeout(entry: Http2SessionEntry): void {
  entry.connectTimer = undefined;
  if (!entry.connected) {
    entry.pool.stats.upstream_cx_connect_timeout++;
    entry.conn.socket.destroy(new UpstreamConnectTimeoutError(entry.pool.options.connectTimeoutMs));
  }
}

function dialTls(dial: UpstreamTlsDial, address: string, port: number): tls.TLSSocket {
  const target = { host: address, port, noDelay: true };
  const socket = tls.connect({ ...target, ...dial.options(ALPN_HTTP2) });
  const key = address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
  const onError = (err: Error): void => dial.failed(err, key);
  socket.once('error', onError);
  socket.once('secureConnect', () => socket.removeListener('error', onError));
  return socket;
}

function onSocketConnect(this: TaggedSocket): void {
  const entry = this[kEntry]!;
  entry.connected = true;
  entry.pool.tls?.connected();
  if (entry.connectTimer !== undefined) {
    clearTimeout(entry.connectTimer);
    entry.connectTimer = undefined;
  }
}

function onSocketTimeout(this: TaggedSocket): void {
  const entry = this[kEntry]!;
  // Only idle connections time out; a busy one is bounded by its requests' timeouts.
  if (entry.active === 0) {
    entry.draining = true;
    entry.conn.close();
  }
}

const POOL_HANDLER: Http2ConnectionHandler = {
  stream(conn, stream) {
    // Client role: the upstream may not open streams (push is disabled); the connection never calls this.
    stream.reset(7);
  },
  settings(conn) {
    const entry = conn.owner as Http2SessionEntry;
    entry.maxStreams = conn.peerMaxStreams;
    entry.pool.dispatchWaiting();
  },
  goaway(conn) {
    (conn.owner as Http2SessionEntry).draining = true;
  },
  streamClosed(conn) {
    const entry = conn.owner as Http2SessionEntry;
    entry.pool.released(entry);
  },
  close(conn) {
    const entry = conn.owner as Http2SessionEntry;
    if (entry.connectTimer !== undefined) {
      clearTimeout(entry.connectTimer);
      entry.connectTimer = undefined;
    }
    entry.pool.sessionClosed(entry);
  },
};
