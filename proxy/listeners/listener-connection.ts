// What happens to one accepted connection once the listener resource it
// belongs to is known (a bound tcp/auto listener, or a virtual listener found
// by original destination on a capture port): `http` goes to HTTP serving
// with the listener's route config, `tcp` is relayed to a cluster of its
// tcpRoute, `auto` is sniffed first. The HTTP servers behind virtual
// listeners are never bound; one is kept per (listener, route config) and
// drained when the config changes it, as Envoy drains a changed filter chain.
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { ListenerResource } from '../../core/model/proxy-config.ts';
import { resourceKey } from '../config/proxy-state.ts';
import type { ProxyState } from '../config/proxy-state.ts';
import type { ListenerKind } from '../http/listener-context.ts';
import { ResponseFlag } from '../http/response-flags.ts';
import { debugEnabled } from '../proxy-logger.ts';
import { authorizeConnection } from '../security/authz-connection.ts';
import type { ProxyLogger } from '../proxy-logger.ts';
import type { Dispatch } from '../router/router.ts';
import type { ProxyStats } from '../stats/proxy-stats.ts';
import { TcpSession, pickWeightedCluster } from '../tcp/tcp-proxy.ts';
import type { TcpProxyContext } from '../tcp/tcp-proxy.ts';
import { HttpListener, serveHttpSocket } from './listener-http.ts';
import type { StateHolder } from './listener-http.ts';
import type { TlsGate } from '../tls/tls-gate.ts';
import { DEFAULT_SNIFF_TIMEOUT_MS, sniffProtocol, sniffUntil } from './listener-sniff.ts';

export interface ConnectionRouterOptions {
  /** Name for logs (the bound listener, or the capture port). */
  name: string;
  holder: StateHolder;
  dispatch: Dispatch;
  stats: ProxyStats;
  logger: ProxyLogger;
  random?: () => number;
  sniffTimeoutMs?: number;
  idleTimeoutMs?: number;
  drainTimeoutMs: number;
  /** Route table of HTTP on an outbound virtual listener without its own route config. */
  fallbackRouteConfig?: string;
  /** Told about sessions' upstream sockets (loop detection). */
  onUpstreamConnect?: TcpProxyContext['onUpstreamConnect'];
  onSessionClose?: TcpProxyContext['onClose'];
  /** TLS termination on inbound and gateway listeners (PeerAuthentication, Gateway tls); absent = bytes served as they come. */
  tlsGate?: TlsGate;
}

// How long an HTTP client may take to send its first bytes through the TLS decision (as the HTTP head timeout).
const HTTP_FIRST_BYTES_MS = 60_000;

interface HttpEntry {
  key: string;
  http: HttpListener;
}

export class ConnectionRouter {
  readonly tcp: TcpProxyContext;
  private readonly options: ConnectionRouterOptions;
  private readonly random: () => number;
  private readonly sniffTimeoutMs: number;
  private readonly http = new Map<string, HttpEntry>();
  private seenState: ProxyState | undefined;
  private closing = false;
  private readonly sessions = new Set<TcpSession>();

  constructor(options: ConnectionRouterOptions) {
    this.options = options;
    this.random = options.random ?? Math.random;
    this.sniffTimeoutMs = options.sniffTimeoutMs ?? DEFAULT_SNIFF_TIMEOUT_MS;
    this.tcp = {
      listener: options.name,
      stats: options.stats,
      logger: options.logger,
      debug: debugEnabled(options.logger),
      idleTimeoutMs: options.idleTimeoutMs,
      onUpstreamConnect: options.onUpstreamConnect,
      onClose: (session) => {
        this.sessions.delete(session);
        options.onSessionClose?.(session);
      },
    };
  }

  /** Serves `socket` as `resource` says. `head`: bytes already read from it. */
  route(resource: ListenerResource, socket: Socket, head?: Buffer): void {
    const gate = this.options.tlsGate;
    if (gate !== undefined && (socket as Partial<TLSSocket>).encrypted !== true && gate.applies(resource)) {
      void this.gateAndRoute(gate, resource, socket, head);
      return;
    }
    this.routeClear(resource, socket, head);
  }

  /** Terminates TLS (mesh mTLS, a gateway's certificate), refuses, or serves as is, per the first bytes. */
  private async gateAndRoute(gate: TlsGate, resource: ListenerResource, socket: Socket, earlier: Buffer | undefined): Promise<void> {
    const timeoutMs = resource.protocol === 'http' ? HTTP_FIRST_BYTES_MS : this.sniffTimeoutMs;
    const sniffed = await sniffUntil(socket, earlier, (head, final) => gate.decide(resource, head, final), timeoutMs);
    if (sniffed === undefined) {
      socket.destroy();
      return;
    }
    const { value: decision, head } = sniffed;
    if (decision.verdict === 'refuse' || (decision.verdict === 'tls' && decision.acceptor === undefined)) {
      gate.refused(resource.name, socket, resource);
      socket.destroy();
      return;
    }
    if (decision.verdict === 'tls') {
      decision.acceptor!.accept(socket, head, resource.name, (secure) => this.routeClear(resource, secure, undefined));
      return;
    }
    this.routeClear(resource, socket, head);
  }

  private routeClear(resource: ListenerResource, socket: Socket, head: Buffer | undefined): void {
    if (resource.protocol === 'tcp') {
      this.relay(resource, socket, head);
      return;
    }
    if (resource.protocol === 'http') {
      const http = this.httpFor(resource);
      if (http !== undefined) serveHttpSocket(http, socket, head);
      else this.relay(resource, socket, head);
      return;
    }
    void this.sniffAndRoute(resource, socket, head);
  }

  private async sniffAndRoute(resource: ListenerResource, socket: Socket, earlier: Buffer | undefined): Promise<void> {
    // The bytes the TLS gate already read are sniffed where they are: unshifting them would fail on a client that has half-closed.
    const sniffed = await sniffProtocol(socket, earlier, this.sniffTimeoutMs);
    if (sniffed === undefined) {
      socket.destroy();
      return;
    }
    if (sniffed.timedOut) this.options.stats.protocol_sniff_timeout++;
    if (sniffed.value === 'http1' || sniffed.value === 'http2') {
      const http = this.httpFor(resource);
      if (http !== undefined) {
        serveHttpSocket(http, socket, sniffed.head);
        return;
      }
    }
    this.relay(resource, socket, sniffed.head);
  }

  /** Relays to one cluster of the listener's tcpRoute (NR without one, NC for an unknown cluster). */
  relay(resource: ListenerResource, socket: Socket, head?: Buffer): TcpSession {
    const session = this.session(socket);
    if (resource.authz !== undefined && resource.direction !== 'outbound' && !session.downstream.destroyed) {
      // L4 AuthorizationPolicy, decided before the upstream is dialled.
      const record = authorizeConnection(resource, socket, session.peerPrincipal, this.options.stats, this.options.logger);
      session.authz = record;
      if (record?.result === 'denied') {
        session.deny(record, resource.tcpRoute?.clusters[0]?.cluster);
        return session;
      }
    }
    const state = this.options.holder.current;
    const picked = resource.tcpRoute === undefined ? undefined : pickWeightedCluster(resource.tcpRoute.clusters, this.random);
    if (picked === undefined) {
      this.options.stats.tcp_downstream_cx_no_route++;
      session.refuse(ResponseFlag.NR);
      return session;
    }
    const cluster = state.clusters.get(picked.cluster);
    if (cluster === undefined) {
      this.options.stats.tcp_downstream_cx_no_route++;
      session.refuse(ResponseFlag.NC, picked.cluster);
      return session;
    }
    session.start({ cluster }, head);
    return session;
  }

  /** A TCP session on `socket`, cut when the router closes. */
  session(socket: Socket): TcpSession {
    const session = new TcpSession(socket, this.tcp);
    this.sessions.add(session);
    if (this.closing) session.refuse(0);
    return session;
  }

  /** The HTTP server for a listener resource, or undefined when it has no route config to route with. */
  httpFor(resource: ListenerResource): HttpListener | undefined {
    const state = this.options.holder.current;
    if (state !== this.seenState) this.retireGone(state);
    const routeConfig = resource.routeConfig ?? (resource.direction === 'outbound' ? this.options.fallbackRouteConfig : undefined);
    if (routeConfig === undefined || !state.routeTables.has(routeConfig)) return undefined;
    const key = `${resource.port}\u0000${routeConfig}\u0000${resource.direction}`;
    const entry = this.http.get(resource.name);
    if (entry !== undefined && entry.key === key) return entry.http;
    if (entry !== undefined) void entry.http.close(this.options.drainTimeoutMs);
    const o = this.options;
    const kind: ListenerKind = resource.direction;
    const http = new HttpListener({
      kind,
      name: resource.name,
      address: resource.address,
      port: resource.port,
      edge: kind === 'gateway',
      holder: o.holder,
      routeTable: (s) => s.routeTables.get(routeConfig),
      dispatch: o.dispatch,
      stats: o.stats,
      logger: o.logger,
    });
    if (this.closing) void http.close(0);
    this.http.set(resource.name, { key, http });
    return http;
  }

  /** Drains the HTTP servers of listeners the new state no longer has. */
  private retireGone(state: ProxyState): void {
    this.seenState = state;
    for (const [name, entry] of this.http) {
      if (!state.resources.has(resourceKey('listener', name))) {
        this.http.delete(name);
        void entry.http.close(this.options.drainTimeoutMs);
      }
    }
  }

  /**
   * Drains: HTTP connections finish their requests; TCP sessions (which have
   * no request boundary to stop at) may run until the deadline, then are cut.
   */
  async close(deadlineMs: number): Promise<void> {
    this.closing = true;
    const all = [...this.http.values()];
    this.http.clear();
    await Promise.all([...all.map((e) => e.http.close(deadlineMs)), this.drainSessions(deadlineMs)]);
  }

  private drainSessions(deadlineMs: number): Promise<void> {
    if (this.sessions.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const started = Date.now();
      const poll = setInterval(() => {
        if (this.sessions.size === 0 || Date.now() - started >= deadlineMs) {
          clearInterval(poll);
          for (const s of this.sessions) s.abort();
          resolve();
        }
      }, 25);
    });
  }
}
