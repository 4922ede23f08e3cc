// The HTTP/1.1 server under every listener: accepts connections, turns each
// request into an Exchange and routes it, answers malformed requests with
// 400/431/408 without ever throwing, counts connections, and drains on close
// (stop accepting, answer in-flight requests with `connection: close`, cut
// whatever is left at the deadline).
import http from '../http/node-http.ts';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { JibeError } from '../../core/errors/errors.ts';
import type { ProxyState } from '../config/proxy-state.ts';
import { Exchange, kExchange } from '../http/exchange.ts';
import type { Tagged } from '../http/exchange.ts';
import { abortUpstream } from '../http/forward-request.ts';
import type { ListenerContext, ListenerKind } from '../http/listener-context.ts';
import { BODY_BAD_REQUEST, sendLocalReply } from '../http/local-reply.ts';
import { ResponseFlag, formatResponseFlags } from '../http/response-flags.ts';
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
}

const kCounted = Symbol('jibe.downstream.counted');

const CLIENT_ERROR_RESPONSES: Record<number, string> = {};
for (const status of [400, 408, 431]) {
  CLIENT_ERROR_RESPONSES[status] = `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nserver: jibe\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`;
}

export class HttpListener implements ListenerContext {
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
  private readonly sockets = new Set<Socket>();
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
    this.server = http.createServer({
      // A proxy streams bodies of any size and duration; slow headers are still bounded.
      requestTimeout: 0,
      headersTimeout: 60_000,
      keepAliveTimeout: 60_000,
    });
    this.server.on('request', (req: IncomingMessage, res: ServerResponse) => this.onRequest(req, res));
    this.server.on('connection', (socket: Socket) => this.onConnection(socket));
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => this.onClientError(err, socket));
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
        resolve(this.port);
      };
      this.server.once('error', onError);
      this.server.once('listening', onListening);
      this.server.listen({ host: this.address, port: this.port, exclusive: true });
    });
  }

  private onConnection(socket: Socket & { [kCounted]?: boolean }): void {
    // A CONNECT tunnel feeds its socket back in: count the connection once.
    if (socket[kCounted]) return;
    socket[kCounted] = true;
    this.stats.downstream_cx_total++;
    this.stats.downstream_cx_active++;
    this.sockets.add(socket);
    socket.once('close', () => {
      this.stats.downstream_cx_active--;
      this.sockets.delete(socket);
    });
  }

  private onClientError(err: NodeJS.ErrnoException, socket: Socket): void {
    this.stats.downstream_rq_client_error++;
    const inFlight = (socket as Socket & { _httpMessage?: ServerResponse })._httpMessage;
    if (err.code === 'ECONNRESET' || !socket.writable || (inFlight !== undefined && inFlight !== null && inFlight.headersSent)) {
      socket.destroy();
      return;
    }
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    if (this.debug) this.logger.debug({ listener: this.name, code: err.code, status }, 'malformed request');
    socket.end(CLIENT_ERROR_RESPONSES[status]);
  }

  private onRequest(req: IncomingMessage, res: Tagged<ServerResponse>): void {
    const stats = this.stats;
    stats.downstream_rq_total++;
    stats.downstream_rq_active++;
    const state = this.holder.current;
    const ex = new Exchange(req, res, this, state, performance.now());
    res[kExchange] = ex;
    res.on('close', onResponseClose);
    if (!ex.parseTarget()) {
      sendLocalReply(ex, 400, BODY_BAD_REQUEST, 0);
      return;
    }
    routeExchange(ex, this.routeTable(state), this.dispatch);
  }

  /** Bookkeeping once the downstream response is over, finished or not. */
  finish(ex: Exchange): void {
    ex.done = true;
    if (ex.timer !== undefined) {
      clearTimeout(ex.timer);
      ex.timer = undefined;
    }
    const res = ex.res;
    if (!res.writableFinished) ex.flags |= ResponseFlag.DC;
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
      this.server.closeIdleConnections();
      if (this.sockets.size === 0) return resolve();
      const started = Date.now();
      const poll = setInterval(() => {
        this.server.closeIdleConnections();
        if (this.sockets.size === 0 || Date.now() - started >= deadlineMs) {
          clearInterval(poll);
          for (const socket of this.sockets) socket.destroy();
          resolve();
        }
      }, 25);
    });
    return this.closing;
  }
}

function onResponseClose(this: Tagged<ServerResponse>): void {
  const ex = this[kExchange];
  if (ex === undefined || ex.done) return;
  (ex.listener as HttpListener).finish(ex);
}
