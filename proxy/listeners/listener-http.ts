// The HTTP/1.1 server under every listener: accepts connections, turns each
// request into an Exchange and routes it, answers malformed requests with
// 400/431/408 without ever throwing, counts connections, and drains on close
// (stop accepting, answer in-flight requests with `connection: close`, cut
// whatever is left at the deadline).
import net from 'node:net';
import type { Server, Socket } from 'node:net';
import { JibeError } from '../../core/errors/errors.ts';
import type { ProxyState } from '../config/proxy-state.ts';
import { Exchange } from '../http/exchange.ts';
import { abortUpstream, onDownstreamDrain, onRequestBody, onRequestBodyEnd } from '../http/forward-request.ts';
import type { ListenerContext, ListenerKind } from '../http/listener-context.ts';
import { BODY_BAD_REQUEST, sendLocalReply } from '../http/local-reply.ts';
import { ResponseFlag, formatResponseFlags } from '../http/response-flags.ts';
import { Http1ServerConnection } from '../http1/http1-server-connection.ts';
import type { Http1ServerHandler } from '../http1/http1-server-connection.ts';
import { debugEnabled } from '../proxy-logger.ts';
import type { ProxyLogger } from '../proxy-logger.ts';
import { routeExchange } from '../router/router.ts';
import type { Dispatch } from '../router/router.ts';
import type { RouteTable } from '../router/route-table.ts';
import type { ProxyStats } from '../stats/proxy-stats.ts';

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
}

// A request head (or the wait for one on a keep-alive connection) may take this long.
const HEAD_TIMEOUT_MS = 60_000;
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
  private readonly connectHook: HttpListenerOptions['connect'];
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
    // Half-open: a client that ends its side after a request still gets the answer.
    this.server = net.createServer({ allowHalfOpen: true, noDelay: true });
    this.server.on('connection', (socket: Socket) => this.onConnection(socket));
    this.server.on('error', (err: Error) => this.logger.error({ listener: this.name, err: err.message }, 'listener error'));
  }

  /** Binds the port. @throws JibeError JIBE_ERR_PORT_IN_USE when it is taken. */
  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        this.server.removeListener('listening', onListening);
        if (err.code === 'EADDRINUSE' || err.code === 'EACCES') {
          reject(
            new JibeError('JIBE_ERR_PORT_IN_USE', `port ${this.port} is in use`, {
              resource: `listener/${this.name}`,
              hint: err.code === 'EACCES' ? `binding ${this.address}:${this.port} is not permitted` : `another process holds ${this.address}:${this.port}`,
            }),
          );
        } else {
          reject(err);
        }
      };
      const onListening = () => {
        this.server.removeListener('error', onError);
        const address = this.server.address();
        if (address !== null && typeof address === 'object') this.port = address.port;
        this.sweep = setInterval(sweepTimeouts, 1000, this);
        this.sweep.unref();
        resolve(this.port);
      };
      this.server.once('error', onError);
      this.server.once('listening', onListening);
      this.server.listen({ host: this.address, port: this.port, exclusive: true });
    });
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
    if (head !== undefined && head.length > 0) socket.unshift(head);
    this.onConnection(socket);
    socket.resume();
  }

  private onConnection(socket: Socket): void {
    this.stats.downstream_cx_total++;
    this.stats.downstream_cx_active++;
    const conn = new Http1ServerConnection<Exchange>(socket, this);
    this.connections.add(conn);
    socket.once('close', () => {
      this.stats.downstream_cx_active--;
      this.connections.delete(conn);
    });
  }

  /** Closes connections whose request head (or the next one) is overdue. */
  checkTimeouts(): void {
    const limit = performance.now() - HEAD_TIMEOUT_MS;
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
      if (this.connections.size === 0) return resolve();
      const started = Date.now();
      const poll = setInterval(() => {
        this.closeIdle();
        if (this.connections.size === 0 || Date.now() - started >= deadlineMs) {
          clearInterval(poll);
          for (const conn of this.connections) conn.socket.destroy();
          resolve();
        }
      }, 25);
    });
    return this.closing;
  }

  private closeIdle(): void {
    for (const conn of this.connections) {
      if (conn.idle) {
        conn.closing = true;
        conn.socket.end();
      }
    }
  }
}

function sweepTimeouts(listener: HttpListener): void {
  listener.checkTimeouts();
}

/** Serves an already accepted socket on `listener` (see HttpListener.adopt). */
export function serveHttpSocket(listener: HttpListener, socket: Socket, head?: Buffer): void {
  listener.adopt(socket, head);
}
