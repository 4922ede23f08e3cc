// The HTTP server under every listener: accepts connections, tells HTTP/2
// (the prior-knowledge preface) from HTTP/1.1 by a connection's first bytes,
// turns each request (HTTP/1.1 request or HTTP/2 stream) into an Exchange and routes it, answers malformed requests with
// 400/431/408 without ever throwing, counts connections, and drains on close
// (stop accepting, answer in-flight requests with `connection: close`, cut
// whatever is left at the deadline).
import net from 'node:net';
import type { Server, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { ListenerResource } from '../../core/model/proxy-config.ts';
import type { ProxyState } from '../config/proxy-state.ts';
import { Exchange } from '../http/exchange.ts';
import { abortUpstream, onDownstreamDrain, onRequestBody, onRequestBodyEnd } from '../http/forward-request.ts';
import type { ListenerContext, ListenerKind } from '../http/listener-context.ts';
import { BODY_BAD_REQUEST, sendLocalReply } from '../http/local-reply.ts';
import { ResponseFlag, formatResponseFlags } from '../http/response-flags.ts';
import { Http1ServerConnection } from '../http1/http1-server-connection.ts';
import { Http2Downstream } from '../http2/http2-downstream.ts';
import { Http2Connection, connectionOf } from '../http2/http2-connection.ts';
import type { Http2ConnectionHandler } from '../http2/http2-connection.ts';
import { sniffHttp2 } from '../http2/http2-frame.ts';
import type { Http2Stream } from '../http2/http2-stream.ts';
import type { Http1ServerHandler } from '../http1/http1-server-connection.ts';
import { debugEnabled } from '../proxy-logger.ts';
import type { ProxyLogger } from '../proxy-logger.ts';
import { routeExchange } from '../router/router.ts';
import { observeRequestBody } from '../telemetry/exchange-telemetry.ts';
import type { Dispatch } from '../router/router.ts';
import type { RouteTable } from '../router/route-table.ts';
import type { ProxyStats } from '../stats/proxy-stats.ts';
import type { TlsGate } from '../tls/tls-gate.ts';
import { bindServer } from './listener-bind.ts';

/** Where the current config is read from; the proxy swaps `current` in one assignment. */
export interface StateHolder {
  readonly current: ProxyState;
}

export interface HttpListenerOptions {
  kind: ListenerKind;
  /** Name for logs and errors (listener resource name, or `outbound`). */
  name: string;
  address: string;
  port: number;
  edge: boolean;
  holder: StateHolder;
  routeTable: (state: ProxyState) => RouteTable | undefined;
  dispatch: Dispatch;
  stats: ProxyStats;
  logger: ProxyLogger;
  /** Answers a CONNECT (written to the socket); true when the bytes after it are requests to serve. Default: 405-less refusal (400, close). */
  connect?: (listener: HttpListener, conn: Http1ServerConnection<Exchange>, target: string) => boolean;
  /**
   * Bound inbound and gateway listeners: TLS termination (mesh mTLS per
   * PeerAuthentication, the gateway's certificate) decided on each
   * connection's first bytes, with the listener resource current then.
   */
  tls?: { gate: TlsGate; resource: (state: ProxyState) => ListenerResource | undefined };
}

// A request head (or the wait for one on a keep-alive connection) may take this long.
const HEAD_TIMEOUT_MS = 60_000;
// HTTP/2 settings the proxy announces to clients. Envoy's default stream limit is effectively unlimited; 1000 keeps one client's burst bounded.
const H2_SERVER_OPTIONS = { maxConcurrentStreams: 1000 };
const kSniff = Symbol('jibe.sniff');
type SniffingSocket = Socket & { [kSniff]?: { listener: HttpListener; head: Buffer | undefined; since: number } };
const TUNNEL_REFUSED = 'HTTP/1.1 400 Bad Request\r\nserver: jibe\r\nconnection: close\r\ncontent-length: 0\r\n\r\n';

export class HttpListener implements ListenerContext, Http1ServerHandler<Exchange> {
  readonly kind: ListenerKind;
  readonly name: string;
  readonly address: string;
  port: number;
  readonly scheme = 'http' as const;
  readonly edge: boolean;
  readonly stats: ProxyStats;
  readonly logger: ProxyLogger;
  draining = false;
  readonly server: Server;
  readonly routeTable: (state: ProxyState) => RouteTable | undefined;
  private readonly holder: StateHolder;
  private readonly dispatch: Dispatch;
  private readonly debug: boolean;
  private readonly connections = new Set<Http1ServerConnection<Exchange>>();
  /** Accepted sockets whose first bytes have not yet said which HTTP they speak. */
  private readonly sniffing = new Set<SniffingSocket>();
  private readonly h2sessions = new Set<Http2Connection>();
  private readonly connectHook: HttpListenerOptions['connect'];
  private readonly tls: HttpListenerOptions['tls'];
  private sweep: ReturnType<typeof setInterval> | undefined = undefined;
  private closing: Promise<void> | undefined;

  constructor(options: HttpListenerOptions) {
    this.kind = options.kind;
    this.name = options.name;
    this.address = options.address;
    this.port = options.port;
    this.edge = options.edge;
    this.holder = options.holder;
    this.routeTable = options.routeTable;
    this.dispatch = options.dispatch;
    this.stats = options.stats;
    this.logger = options.logger;
    this.debug = debugEnabled(options.logger);
    this.connectHook = options.connect;
    this.tls = options.tls;
    // Half-open: a client that ends its side after a request still gets the answer.
    this.server = net.createServer({ allowHalfOpen: true, noDelay: true });
    this.server.on('connection', (socket: Socket) => this.onConnection(socket));
    this.server.on('error', (err: Error) => this.logger.error({ listener: this.name, err: err.message }, 'listener error'));
  }

  /** Binds the port. @throws JibeError JIBE_ERR_PORT_IN_USE when it is taken. */
  async listen(): Promise<number> {
    this.port = await bindServer(this.server, this.name, this.address, this.port);
    this.sweep = setInterval(sweepTimeouts, 1000, this);
    this.sweep.unref();
    return this.port;
  }

  /**
   * Serves a connection accepted elsewhere (a capture port, a sniffing
   * listener); `head` holds bytes already read from it. Such listeners never
   * bind, so the head-timeout sweep starts with their first connection.
   */
  adopt(socket: Socket, head?: Buffer): void {
    if (this.sweep === undefined && this.closing === undefined) {
      this.sweep = setInterval(sweepTimeouts, 1000, this);
      this.sweep.unref();
    }
    this.serve(socket, head);
  }

  private onConnection(socket: Socket): void {
    this.serve(socket, undefined);
  }

  /**
   * Serves an accepted socket as HTTP; `head` is what was already read from it
   * (by a sniffing listener). `counted`: the connection was counted already
   * (the decrypted side of a connection this listener terminated TLS on).
   */
  serve(socket: Socket, head: Buffer | undefined, counted = false): void {
    if (!counted) {
      this.stats.downstream_cx_total++;
      this.stats.downstream_cx_active++;
      socket.once('close', () => this.stats.downstream_cx_active--);
    }
    socket.on('error', ignoreError);
    const tagged = socket as SniffingSocket;
    const sniff = { listener: this, head, since: performance.now() };
    if (head !== undefined && head.length > 0 && this.route(tagged, head)) return;
    tagged[kSniff] = sniff;
    this.sniffing.add(tagged);
    socket.on('data', onSniffData);
    socket.on('end', onSniffEnd);
    socket.once('close', onSniffClose);
    // A socket handed over by a sniffing listener may be paused.
    socket.resume();
  }

  /** Hands the socket to the protocol its first bytes name; false while they are a prefix of the HTTP/2 preface. */
  route(socket: SniffingSocket, head: Buffer): boolean {
    if (this.tls !== undefined && (socket as Partial<TLSSocket>).encrypted !== true) {
      const resource = this.tls.resource(this.holder.current);
      if (resource !== undefined && this.tls.gate.applies(resource)) {
        const decision = this.tls.gate.decide(resource, head, false);
        if (decision === undefined) return false;
        if (decision.verdict === 'refuse' || (decision.verdict === 'tls' && decision.acceptor === undefined)) {
          this.unsniff(socket);
          this.tls.gate.refused(this.name, socket, resource);
          socket.destroy();
          return true;
        }
        if (decision.verdict === 'tls') {
          this.unsniff(socket);
          decision.acceptor!.accept(socket, head, this.name, (secure) => this.serve(secure, undefined, true));
          return true;
        }
      }
    }
    const verdict = sniffHttp2(head);
    if (verdict < 0) return false;
    this.unsniff(socket);
    if (verdict === 1) {
      this.serveHttp2(socket, head);
      return true;
    }
    const conn = new Http1ServerConnection<Exchange>(socket, this);
    this.connections.add(conn);
    socket.once('close', () => this.connections.delete(conn));
    // Flowing again before the head is fed: data events come on a later tick, after it.
    socket.resume();
    conn.receive(head);
    return true;
  }

  private unsniff(socket: SniffingSocket): void {
    if (socket[kSniff] === undefined) return;
    socket[kSniff] = undefined;
    this.sniffing.delete(socket);
    socket.removeListener('data', onSniffData);
    socket.removeListener('end', onSniffEnd);
    socket.removeListener('close', onSniffClose);
  }

  private serveHttp2(socket: Socket, head: Buffer): void {
    socket.pause();
    if (this.draining) {
      socket.destroy();
      return;
    }
    const conn = new Http2Connection(socket, true, H2_SERVER_HANDLER, H2_SERVER_OPTIONS);
    conn.owner = this;
    this.h2sessions.add(conn);
    // As for HTTP/1.1 heads: a connection with no traffic for this long is closed (GOAWAY first).
    socket.setTimeout(HEAD_TIMEOUT_MS, closeIdleSession);
    socket.resume();
    conn.receive(head);
  }

  http2Closed(conn: Http2Connection): void {
    this.h2sessions.delete(conn);
  }

  http2Request(conn: Http2Connection, stream: Http2Stream, fields: string[], endStream: boolean): void {
    const stats = this.stats;
    stats.downstream_rq_total++;
    stats.downstream_rq_active++;
    const down = new Http2Downstream<Exchange>(stream, fields, endStream, conn.socket.remoteAddress ?? '', this);
    const state = this.holder.current;
    const ex = new Exchange(down, this, state, performance.now());
    down.owner = ex;
    // CONNECT over HTTP/2 (RFC 9113 §8.5) is not a request the proxy routes.
    if (down.method === 'CONNECT' || !ex.parseTarget()) {
      sendLocalReply(ex, 400, BODY_BAD_REQUEST, 0);
      return;
    }
    routeExchange(ex, this.routeTable(state), this.dispatch);
  }

  forgetSniffing(socket: Socket): void {
    this.sniffing.delete(socket as SniffingSocket);
  }

  /** Closes connections whose request head (or the next one) is overdue. */
  checkTimeouts(): void {
    const limit = performance.now() - HEAD_TIMEOUT_MS;
    for (const socket of this.sniffing) if (socket[kSniff]!.since < limit) socket.destroy();
    for (const conn of this.connections) {
      if (conn.current === undefined && conn.idleSince !== 0 && conn.idleSince < limit) conn.timedOut();
    }
  }

  clientError(_conn: Http1ServerConnection<Exchange>, status: number, reason: string): void {
    this.stats.downstream_rq_client_error++;
    if (this.debug) this.logger.debug({ listener: this.name, reason, status }, 'malformed request');
  }

  connect(conn: Http1ServerConnection<Exchange>, target: string): boolean {
    if (this.connectHook !== undefined) return this.connectHook(this, conn, target);
    conn.socket.end(TUNNEL_REFUSED);
    return false;
  }

  request(conn: Http1ServerConnection<Exchange>): void {
    const stats = this.stats;
    stats.downstream_rq_total++;
    stats.downstream_rq_active++;
    const state = this.holder.current;
    const ex = new Exchange(conn, this, state, performance.now());
    conn.current = ex;
    if (!ex.parseTarget()) {
      sendLocalReply(ex, 400, BODY_BAD_REQUEST, 0);
      return;
    }
    routeExchange(ex, this.routeTable(state), this.dispatch);
  }

  body(ex: Exchange, chunk: Buffer): void {
    observeRequestBody(ex, chunk);
    onRequestBody(ex, chunk);
  }

  bodyEnd(ex: Exchange): void {
    onRequestBodyEnd(ex);
  }

  drain(ex: Exchange): void {
    onDownstreamDrain(ex);
  }

  done(ex: Exchange): void {
    if (!ex.done) this.finish(ex);
  }

  /** Bookkeeping once the downstream response is over, finished or not. */
  finish(ex: Exchange): void {
    ex.done = true;
    if (ex.timer !== undefined) {
      clearTimeout(ex.timer);
      ex.timer = undefined;
    }
    const res = ex.down;
    if (!res.finished) ex.flags |= ResponseFlag.DC;
    abortUpstream(ex);
    const host = ex.host;
    if (host !== undefined) {
      host.active--;
      ex.cluster!.stats.upstream_rq_active--;
    }
    this.stats.downstream_rq_active--;
    if (res.headersSent) this.stats.countDownstreamStatus(res.statusCode);
    this.stats.telemetry?.recordExchange(ex);
    if (this.debug) {
      this.logger.debug(
        {
          listener: this.name,
          method: ex.method,
          authority: ex.authority,
          path: ex.path,
          status: res.headersSent ? res.statusCode : 0,
          flags: formatResponseFlags(ex.flags),
          route: ex.route?.name,
          cluster: ex.cluster?.name,
          upstream: host?.key,
          requestId: ex.requestId,
          durationMs: Math.round((performance.now() - ex.startTime) * 1000) / 1000,
        },
        'request',
      );
    }
  }

  /**
   * Stops accepting, lets in-flight requests finish until `deadlineMs`, then
   * cuts what is left. Idempotent.
   */
  close(deadlineMs: number): Promise<void> {
    if (this.closing !== undefined) return this.closing;
    this.draining = true;
    this.closing = new Promise<void>((resolve) => {
      this.server.close();
      if (this.sweep !== undefined) clearInterval(this.sweep);
      this.closeIdle();
      // GOAWAY: HTTP/2 clients finish their streams and open no new ones.
      for (const session of this.h2sessions) session.close();
      if (this.connections.size === 0 && this.h2sessions.size === 0) return resolve();
      const started = Date.now();
      const poll = setInterval(() => {
        this.closeIdle();
        if ((this.connections.size === 0 && this.h2sessions.size === 0) || Date.now() - started >= deadlineMs) {
          clearInterval(poll);
          for (const conn of this.connections) conn.socket.destroy();
          for (const session of this.h2sessions) session.destroy();
          resolve();
        }
      }, 25);
    });
    return this.closing;
  }

  private closeIdle(): void {
    for (const socket of this.sniffing) socket.destroy();
    for (const conn of this.connections) {
      if (conn.idle) {
        conn.closing = true;
        conn.socket.end();
      }
    }
  }
}

/**
 * Serves an accepted socket as HTTP on `listener`: HTTP/2 when its first bytes
 * are the prior-knowledge preface, else HTTP/1.1. `head` holds bytes already
 * read from the socket (by a TCP or capture listener that sniffed it); they
 * are served first. The socket must not have other 'data' listeners.
 */
export function serveHttpSocket(listener: HttpListener, socket: Socket, head?: Buffer): void {
  listener.adopt(socket, head);
}

function closeIdleSession(this: Socket): void {
  const conn = connectionOf(this);
  if (conn !== undefined && conn.activeStreams === 0) conn.close();
}

function ignoreHttp2Event(): void {
  // Server role: the client's SETTINGS and GOAWAY need nothing from the listener (its streams finish or close on their own).
}

const H2_SERVER_HANDLER: Http2ConnectionHandler = {
  stream(conn, stream, fields, endStream) {
    (conn.owner as HttpListener).http2Request(conn, stream, fields, endStream);
  },
  settings: ignoreHttp2Event,
  goaway: ignoreHttp2Event,
  streamClosed: ignoreHttp2Event,
  close(conn) {
    (conn.owner as HttpListener).http2Closed(conn);
  },
};

function ignoreError(): void {
  // 'close' follows; the request in flight (if any) is finished there.
}

function onSniffData(this: SniffingSocket, chunk: Buffer): void {
  const sniff = this[kSniff];
  if (sniff === undefined) return;
  const head = sniff.head === undefined || sniff.head.length === 0 ? chunk : Buffer.concat([sniff.head, chunk]);
  sniff.head = head;
  sniff.listener.route(this, head);
}

function onSniffEnd(this: SniffingSocket): void {
  // The client closed before saying anything decisive.
  this.end();
}

function onSniffClose(this: SniffingSocket): void {
  const sniff = this[kSniff];
  if (sniff !== undefined) sniff.listener.forgetSniffing(this);
}

function sweepTimeouts(listener: HttpListener): void {
  listener.checkTimeouts();
}
