// A keep-alive pool of raw TCP connections to one upstream endpoint, speaking
// HTTP/1.1 without node:http's client (ClientRequest, IncomingMessage,
// streams and their events cost about as much CPU per request as the whole
// proxy should). Each connection carries one request at a time; its socket
// listeners are attached once, are module-level functions, and find the
// connection through a symbol, so a request allocates nothing here. Idle
// connections are reused last-in first-out; beyond `maxConnections` requests
// wait in a queue. A connection goes back to the pool only after a complete,
// framed response (not read-until-close, no `connection: close`) to a request
// whose body was fully sent.
import net from 'node:net';
import tls from 'node:tls';
import type { Socket } from 'node:net';
import { ALPN_HTTP1 } from '../tls/tls-upstream.ts';
import type { UpstreamTlsDial } from '../tls/tls-upstream.ts';
import type { ClusterStats } from '../stats/proxy-stats.ts';
import { Http1ResponseParser } from './http1-response-parser.ts';
import type { Http1ResponseHandler } from './http1-response-parser.ts';

/** Why a request's connection failed. */
export const FAIL_CONNECT = 1; // never connected (refused, unreachable, connect timeout)
export const FAIL_RESET = 2; // closed or reset after connecting
export const FAIL_PROTOCOL = 3; // the response broke HTTP/1.1

/** What the pool calls back into for the request a connection carries (one module-level object, no closures). */
export interface Http1Handler<T> {
  /** A connection is assigned: write the request. Return false if the owner no longer wants it. */
  start(owner: T, conn: Http1Connection<T>): boolean;
  head(owner: T, status: number, headers: string[]): void;
  body(owner: T, chunk: Buffer): void;
  complete(owner: T): void;
  /** The socket took everything written so far (request body backpressure). */
  drain(owner: T): void;
  /** `retriable`: a reused connection closed before any byte of a response arrived. */
  fail(owner: T, kind: number, retriable: boolean): void;
}

export interface Http1PoolOptions {
  maxConnections: number;
  maxIdle: number;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  /** A connection is closed after carrying this many requests (circuit breakers' maxRequestsPerConnection). */
  maxRequestsPerConnection?: number;
  /** Connections the whole cluster may hold (shared across its endpoints' pools through the stats gauge). */
  clusterMaxConnections?: number;
  /** SO_KEEPALIVE with this initial delay (connectionPool.tcp.tcpKeepalive.time). */
  keepAliveMs?: number;
}

/** Both pools (HTTP/1.1, HTTP/2) destroy a dial that outlives connectTimeoutMs with this; its code is what TLS and retry logic classify. */
export class UpstreamConnectTimeoutError extends Error {
  readonly code = 'UPSTREAM_CONNECT_TIMEOUT';
  constructor(ms: number) {
    super(`upstream connect timeout after ${ms}ms`);
  }
}

const kConn = Symbol('jibe.http1.connection');
type TaggedSocket = Socket & { [kConn]?: Http1Connection<unknown> };

export class Http1Connection<T> implements Http1ResponseHandler {
  readonly socket: TaggedSocket;
  readonly pool: Http1Pool<T>;
  readonly parser: Http1ResponseParser;
  owner: T | undefined = undefined;
  handler: Http1Handler<T> | undefined = undefined;
  connected = false;
  /** Has carried a request before the current one. */
  reused = false;
  /** The current request (head and body) is fully written. */
  requestDone = false;
  closed = false;
  /** The current response reached its end (the owner has everything it will get). */
  responseComplete = false;
  errorCode = '';
  /** Requests this connection has been given. */
  requests = 0;
  connectTimer: ReturnType<typeof setTimeout> | undefined = undefined;

  constructor(pool: Http1Pool<T>, socket: TaggedSocket) {
    this.pool = pool;
    this.socket = socket;
    this.parser = new Http1ResponseParser(this);
  }

  /** Sets what the response will be parsed as; call before writing the request head. */
  expectResponse(head: boolean, upgrade = false): void {
    this.responseComplete = false;
    this.parser.expect(head, upgrade);
  }

  onResponseHead(status: number, headers: string[]): void {
    if (this.owner !== undefined) this.handler!.head(this.owner, status, headers);
  }

  onResponseBody(chunk: Buffer): void {
    if (this.owner !== undefined) this.handler!.body(this.owner, chunk);
  }

  onResponseComplete(): void {
    this.responseComplete = true;
    if (this.owner !== undefined) this.handler!.complete(this.owner);
  }

  /** The owner gives the connection up mid-exchange (client gone, timeout): it cannot be reused. */
  abort(): void {
    this.owner = undefined;
    this.handler = undefined;
    this.parser.abort();
    this.socket.destroy();
  }
}

export class Http1Pool<T> {
  readonly address: string;
  readonly port: number;
  readonly options: Http1PoolOptions;
  readonly stats: ClusterStats;
  /** TLS to dial with (mesh mTLS or the DestinationRule's); undefined = plaintext. */
  readonly tls: UpstreamTlsDial | undefined;
  private readonly idle: Http1Connection<T>[] = [];
  private readonly all = new Set<Http1Connection<T>>();
  private readonly waiting: { owner: T; handler: Http1Handler<T> }[] = [];
  private total = 0;
  private retired = false;

  constructor(address: string, port: number, options: Http1PoolOptions, stats: ClusterStats, tlsDial?: UpstreamTlsDial) {
    this.address = address;
    this.port = port;
    this.options = options;
    this.stats = stats;
    this.tls = tlsDial;
  }

  /**
   * Sends `owner`'s request over an idle connection, a new one, or the next
   * one freed. `fresh` (a retry after a stale keep-alive connection) always
   * opens a new connection, even above the limit.
   */
  request(owner: T, handler: Http1Handler<T>, fresh = false): void {
    if (!fresh) {
      const conn = this.idle.pop();
      if (conn !== undefined) {
        this.assign(conn, owner, handler);
        return;
      }
    }
    if (fresh || this.retired || this.mayConnect(true)) {
      this.assign(this.connect(), owner, handler);
      return;
    }
    this.waiting.push({ owner, handler });
    this.stats.upstream_rq_pending_active++;
  }

  /**
   * Below this endpoint's limit and the cluster's. A pool with no connection
   * may always open one (as Envoy), or requests queued to it could wait forever
   * while other endpoints hold the cluster's connections.
   */
  private mayConnect(count: boolean): boolean {
    if (this.total >= this.options.maxConnections) return false;
    const cap = this.options.clusterMaxConnections;
    if (cap === undefined || this.total === 0 || this.stats.upstream_cx_active < cap) return true;
    if (count) this.stats.upstream_cx_overflow++;
    return false;
  }

  /** Whether a request sent now would wait for a connection (circuit breakers' pending limit). */
  wouldQueue(): boolean {
    return this.idle.length === 0 && !this.retired && !this.mayConnect(false);
  }

  private assign(conn: Http1Connection<T>, owner: T, handler: Http1Handler<T>): void {
    conn.owner = owner;
    conn.handler = handler;
    conn.requestDone = false;
    conn.requests++;
    if (!handler.start(owner, conn)) this.release(conn, true);
  }

  private connect(): Http1Connection<T> {
    const keepAliveMs = this.options.keepAliveMs;
    const connectOptions = { host: this.address, port: this.port, noDelay: true, keepAlive: keepAliveMs !== undefined, keepAliveInitialDelay: keepAliveMs };
    const dial = this.tls;
    // A TLS connection counts as connected once its handshake is done: a refused peer is a connect failure (UF).
    const socket: TaggedSocket = dial === undefined ? net.connect(connectOptions) : tls.connect({ ...connectOptions, ...dial.options(ALPN_HTTP1) });
    const conn = new Http1Connection<T>(this, socket);
    socket[kConn] = conn as Http1Connection<unknown>;
    this.total++;
    this.all.add(conn);
    this.stats.upstream_cx_total++;
    this.stats.upstream_cx_active++;
    if (this.options.connectTimeoutMs > 0) conn.connectTimer = setTimeout(onConnectTimeout, this.options.connectTimeoutMs, conn);
    if (this.options.idleTimeoutMs > 0) socket.setTimeout(this.options.idleTimeoutMs, onSocketTimeout);
    socket.on(dial === undefined ? 'connect' : 'secureConnect', onSocketConnect);
    socket.on('data', onSocketData);
    socket.on('end', onSocketEnd);
    socket.on('drain', onSocketDrain);
    socket.on('error', onSocketError);
    socket.on('close', onSocketClose);
    return conn;
  }

  /** The owner is done with the connection; it is pooled when `reusable`, else closed. */
  release(conn: Http1Connection<T>, reusable: boolean): void {
    conn.owner = undefined;
    conn.handler = undefined;
    if (conn.closed) return;
    const maxRequests = this.options.maxRequestsPerConnection;
    if (!reusable || this.retired || (maxRequests !== undefined && conn.requests >= maxRequests)) {
      conn.socket.destroy();
      return;
    }
    conn.reused = true;
    conn.parser.abort();
    // Paused by downstream backpressure while its response completed.
    if (conn.socket.isPaused()) conn.socket.resume();
    const next = this.waiting.shift();
    if (next !== undefined) {
      this.stats.upstream_rq_pending_active--;
      this.assign(conn, next.owner, next.handler);
      return;
    }
    if (this.idle.length >= this.options.maxIdle) {
      conn.socket.destroy();
      return;
    }
    this.idle.push(conn);
  }

  /** A connection closed: forget it, and open one for a waiting request if there is room now. */
  closed(conn: Http1Connection<T>): void {
    this.total--;
    this.all.delete(conn);
    this.stats.upstream_cx_active--;
    if (!conn.connected) this.stats.upstream_cx_connect_fail++;
    const i = this.idle.indexOf(conn);
    if (i >= 0) this.idle.splice(i, 1);
    if (this.waiting.length > 0 && this.mayConnect(false)) {
      const next = this.waiting.shift()!;
      this.stats.upstream_rq_pending_active--;
      this.assign(this.connect(), next.owner, next.handler);
    }
  }

  /** Closes idle connections now and busy ones as their requests finish. */
  retire(): void {
    this.retired = true;
    for (const conn of this.idle.splice(0)) conn.socket.destroy();
  }

  /** Ends every connection now. */
  destroy(): void {
    this.retire();
    this.stats.upstream_rq_pending_active -= this.waiting.length;
    this.waiting.length = 0;
    for (const conn of this.all) conn.socket.destroy();
  }

  get connections(): number {
    return this.total;
  }
}

function connOf(socket: TaggedSocket): Http1Connection<unknown> {
  return socket[kConn]!;
}

function onConnectTimeout(conn: Http1Connection<unknown>): void {
  conn.connectTimer = undefined;
  if (!conn.connected) {
    conn.pool.stats.upstream_cx_connect_timeout++;
    conn.socket.destroy(new UpstreamConnectTimeoutError(conn.pool.options.connectTimeoutMs));
  }
}

function onSocketConnect(this: TaggedSocket): void {
  const conn = connOf(this);
  conn.connected = true;
  conn.pool.tls?.connected();
  if (conn.connectTimer !== undefined) {
    clearTimeout(conn.connectTimer);
    conn.connectTimer = undefined;
  }
}

function onSocketTimeout(this: TaggedSocket): void {
  // Only idle connections time out; a busy one is bounded by the route timeout.
  if (connOf(this).owner === undefined) this.destroy();
}

function onSocketData(this: TaggedSocket, chunk: Buffer): void {
  const conn = connOf(this);
  const owner = conn.owner;
  if (owner === undefined) {
    // Bytes on an idle connection: the upstream broke framing or sent an unsolicited answer.
    this.destroy();
    return;
  }
  const parser = conn.parser;
  if (!parser.execute(chunk)) {
    const handler = conn.handler;
    conn.owner = undefined;
    conn.handler = undefined;
    this.destroy();
    // Bytes after a complete response: the owner has its whole answer; only the connection is unusable.
    if (handler !== undefined && !conn.responseComplete) handler.fail(owner, FAIL_PROTOCOL, false);
    return;
  }
  // Released only after the whole chunk was parsed: extra bytes must not reach the next request.
  if (parser.complete && conn.owner === owner) conn.pool.release(conn, parser.keepAlive && conn.requestDone);
}

function onSocketEnd(this: TaggedSocket): void {
  const conn = connOf(this);
  const owner = conn.owner;
  if (owner !== undefined && conn.parser.readingUntilClose) {
    conn.parser.finish();
    if (conn.owner === owner) conn.pool.release(conn, false);
  }
}

function onSocketDrain(this: TaggedSocket): void {
  const conn = connOf(this);
  if (conn.owner !== undefined) conn.handler!.drain(conn.owner);
}

function onSocketError(this: TaggedSocket, err: NodeJS.ErrnoException): void {
  const conn = connOf(this);
  conn.errorCode = err.code ?? 'ERROR';
  if (!conn.connected && conn.pool.tls !== undefined) conn.pool.tls.failed(err, `${conn.pool.address}:${conn.pool.port}`);
}

function onSocketClose(this: TaggedSocket): void {
  const conn = connOf(this);
  conn.closed = true;
  if (conn.connectTimer !== undefined) {
    clearTimeout(conn.connectTimer);
    conn.connectTimer = undefined;
  }
  const owner = conn.owner;
  const handler = conn.handler;
  // A read-until-close body ends with the connection, unless it was reset (then it may be cut short).
  if (owner !== undefined && conn.parser.readingUntilClose && conn.errorCode === '') conn.parser.finish();
  conn.owner = undefined;
  conn.handler = undefined;
  conn.pool.closed(conn);
  if (owner === undefined || handler === undefined || conn.parser.complete) return;
  if (!conn.connected) handler.fail(owner, FAIL_CONNECT, false);
  else handler.fail(owner, FAIL_RESET, conn.reused && !conn.parser.received);
}
