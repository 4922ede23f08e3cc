// The sidecar's capture ports, where iptables REDIRECT sends an app's
// traffic: outbound (15001 in Istio) and inbound (15006). Each connection's
// destination before the redirect (SO_ORIGINAL_DST) picks what serves it:
//  - outbound: the virtual listener covering that address and port (most
//    specific address wins); none → ALLOW_ANY relays to the original
//    destination (PassthroughCluster), REGISTRY_ONLY refuses (BlackHoleCluster);
//    a connection made to the port itself (no redirect: the app uses the
//    sidecar as an explicit HTTP proxy) goes to the outbound HTTP listener;
//  - inbound: the inbound listener of the original destination port; none →
//    relayed to the app as is (Istio's InboundPassthroughCluster), after the
//    workload's AuthorizationPolicies (as Istio's passthrough filter chains).
// Loops are refused: a relay must never reach the proxy again, either
// because the destination is one of the proxy's own ports on this host, or
// because the proxy's own outgoing connection was captured back to it (its
// uid not excluded from capture), spotted by matching the accepted
// connection's peer to the local end of one of our upstream connections.
import net from 'node:net';
import { networkInterfaces } from 'node:os';
import type { Server, Socket } from 'node:net';
import type { ListenerResource } from '../../core/model/proxy-config.ts';
import { ResponseFlag } from '../http/response-flags.ts';
import { authorizeConnection } from '../security/authz-connection.ts';
import type { ProxyLogger } from '../proxy-logger.ts';
import type { Dispatch } from '../router/router.ts';
import type { ProxyStats } from '../stats/proxy-stats.ts';
import type { TlsGate } from '../tls/tls-gate.ts';
import { originalDestination, originalDestinationUnavailable, rememberOriginalDestination } from '../tcp/original-destination.ts';
import type { OriginalDestination } from '../tcp/original-destination.ts';
import { BLACKHOLE_CLUSTER, PASSTHROUGH_CLUSTER, PASSTHROUGH_CONNECT_TIMEOUT_MS } from '../tcp/tcp-proxy.ts';
import type { TcpSession } from '../tcp/tcp-proxy.ts';
import { bindServer, stopAccepting } from './listener-bind.ts';
import { ConnectionRouter } from './listener-connection.ts';
import { serveHttpSocket } from './listener-http.ts';
import type { HttpListener, StateHolder } from './listener-http.ts';
import { listenerIndex } from './listener-index.ts';
import { unmapIpv4 } from '../http/client-address.ts';

export type CaptureDirection = 'outbound' | 'inbound';

/** Istio's name for relays of undeclared inbound ports to the app. */
export const INBOUND_PASSTHROUGH_CLUSTER = 'InboundPassthroughCluster';

export interface CaptureListenerOptions {
  direction: CaptureDirection;
  /** Addresses to accept on, all with the same port; `::` ones are bound IPv6-only so `0.0.0.0` can sit beside them. */
  addresses: string[];
  /** 0 binds an ephemeral port (the first address picks it, the others follow). */
  port: number;
  holder: StateHolder;
  dispatch: Dispatch;
  stats: ProxyStats;
  logger: ProxyLogger;
  drainTimeoutMs: number;
  /** Outbound: serves connections that were not redirected (the app uses the sidecar as an explicit proxy). */
  direct?: HttpListener;
  /** Ports the proxy itself holds on this host; a relay to one of them would loop. */
  ownPorts: () => Iterable<number>;
  sniffTimeoutMs?: number;
  idleTimeoutMs?: number;
  random?: () => number;
  /** Mesh mTLS termination for inbound listeners reached through the capture port. */
  tlsGate?: TlsGate;
  /** Where a connection was going; SO_ORIGINAL_DST by default (tests replace it). */
  originalDestination?: (socket: Socket) => OriginalDestination | undefined;
}

export class CaptureListener {
  readonly direction: CaptureDirection;
  readonly name: string;
  port: number;
  private readonly options: CaptureListenerOptions;
  private readonly servers: Server[] = [];
  private readonly router: ConnectionRouter;
  private readonly lookup: (socket: Socket) => OriginalDestination | undefined;
  private readonly sockets = new Set<Socket>();
  /** Accepted connections by their peer `address:port`. */
  private readonly accepted = new Map<string, Socket>();
  /** Local `address:port` of our upstream connections, by session. */
  private readonly upstreamEnds = new Map<TcpSession, string>();
  private readonly localEnds = new Set<string>();
  /** Passthrough relays not connected yet, by destination, and connections waiting on them. */
  private readonly unconnected = new Map<TcpSession, string>();
  private readonly waiting = new Map<string, Array<() => void>>();
  private loopLogged = false;
  private closing: Promise<void> | undefined;

  constructor(options: CaptureListenerOptions) {
    this.options = options;
    this.direction = options.direction;
    this.name = `${options.direction}-capture`;
    this.port = options.port;
    this.lookup = options.originalDestination ?? originalDestination;
    this.router = new ConnectionRouter({
      name: this.name,
      holder: options.holder,
      dispatch: options.dispatch,
      stats: options.stats,
      logger: options.logger,
      random: options.random,
      sniffTimeoutMs: options.sniffTimeoutMs,
      idleTimeoutMs: options.idleTimeoutMs,
      drainTimeoutMs: options.drainTimeoutMs,
      fallbackRouteConfig: options.direct === undefined ? undefined : 'outbound',
      onUpstreamConnect: (session) => this.onUpstreamConnect(session),
      onSessionClose: (session) => this.onSessionClose(session),
      tlsGate: options.direction === 'inbound' ? options.tlsGate : undefined,
    });
  }

  /**
   * Binds every address on one port.
   * @throws JibeError JIBE_ERR_PORT_IN_USE; Error when SO_ORIGINAL_DST cannot be read on this host.
   */
  async listen(): Promise<number> {
    if (this.options.originalDestination === undefined) {
      const why = originalDestinationUnavailable();
      if (why !== undefined) throw new Error(`capture needs the original destination of connections: ${why}`);
    }
    try {
      for (const [i, address] of this.options.addresses.entries()) {
        const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true });
        server.on('connection', (socket: Socket) => this.onConnection(socket));
        server.on('error', (err: Error) => this.options.logger.error({ listener: this.name, err: err.message }, 'listener error'));
        try {
          this.port = await bindServer(server, this.name, address, this.port, net.isIPv6(address) && address === '::');
        } catch (err) {
          // A host without IPv6 still captures IPv4: only the first address is required.
          const code = (err as NodeJS.ErrnoException).code;
          if (i > 0 && (code === 'EADDRNOTAVAIL' || code === 'EAFNOSUPPORT')) {
            this.options.logger.warn({ listener: this.name, address, err: (err as Error).message }, 'capture address unavailable, skipped');
            continue;
          }
          throw err;
        }
        this.servers.push(server);
      }
    } catch (err) {
      await Promise.all(this.servers.map(stopAccepting));
      throw err;
    }
    if (this.options.direct !== undefined) this.options.direct.port = this.port;
    return this.port;
  }

  private onConnection(socket: Socket): void {
    const stats = this.options.stats;
    const peer = endKey(socket.remoteAddress, socket.remotePort);
    this.sockets.add(socket);
    socket.on('error', () => {});
    socket.once('close', () => {
      this.sockets.delete(socket);
      if (this.accepted.get(peer) === socket) this.accepted.delete(peer);
    });
    if (this.localEnds.has(peer)) {
      this.refuseLoop(socket);
      return;
    }
    this.accepted.set(peer, socket);

    const dst = this.lookup(socket);
    const direct = dst === undefined || (dst.port === socket.localPort && unmapIpv4(dst.address) === unmapIpv4(socket.localAddress ?? ''));
    const index = listenerIndex(this.options.holder.current);
    if (this.direction === 'outbound') {
      if (direct) {
        if (this.options.direct !== undefined) serveHttpSocket(this.options.direct, socket);
        else this.noRoute(socket);
        return;
      }
      const listener = index.outbound(dst.address, dst.port);
      if (listener !== undefined) {
        // HTTP routed to a PASSTHROUGH cluster goes on to this address.
        rememberOriginalDestination(socket, dst);
        return this.router.route(listener, socket);
      }
      if (index.outboundTrafficPolicy === 'REGISTRY_ONLY') {
        stats.tcp_blackhole_cx_total++;
        this.router.session(socket).refuse(ResponseFlag.UH, BLACKHOLE_CLUSTER);
        return;
      }
      this.passthrough(socket, dst, PASSTHROUGH_CLUSTER);
      return;
    }
    if (direct) return this.noRoute(socket);
    const listener = index.inboundByPort.get(dst.port);
    if (listener !== undefined) return this.router.route(listener, socket);
    // Every inbound listener carries the workload's policies (only destination.port differs): any one judges an undeclared port.
    let policies: ListenerResource | undefined;
    for (const r of index.inboundByPort.values()) {
      if (r.authz === undefined) continue;
      policies = r;
      break;
    }
    if (policies !== undefined) {
      const record = authorizeConnection(policies, socket, undefined, stats, this.options.logger, { destinationPort: dst.port, name: INBOUND_PASSTHROUGH_CLUSTER });
      if (record?.result === 'denied') {
        const session = this.router.session(socket);
        session.deny(record, INBOUND_PASSTHROUGH_CLUSTER);
        return;
      }
    }
    this.passthrough(socket, dst, INBOUND_PASSTHROUGH_CLUSTER);
  }

  private noRoute(socket: Socket): void {
    this.options.stats.tcp_downstream_cx_no_route++;
    this.router.session(socket).refuse(ResponseFlag.NR);
  }

  private passthrough(socket: Socket, dst: OriginalDestination, clusterName: string): void {
    if (this.isOwnPort(dst)) {
      this.refuseLoop(socket);
      return;
    }
    // A relay to this destination still connecting may be where this very
    // connection comes from (a capture loop): its local end is known only once
    // it connects, so wait for that rather than start a relay of our own.
    const key = endKey(dst.address, dst.port);
    for (const pending of this.unconnected.values()) {
      if (pending !== key) continue;
      let list = this.waiting.get(key);
      if (list === undefined) this.waiting.set(key, (list = []));
      list.push(() => {
        if (socket.destroyed) return;
        if (this.localEnds.has(endKey(socket.remoteAddress, socket.remotePort))) this.refuseLoop(socket);
        else this.passthrough(socket, dst, clusterName);
      });
      return;
    }
    const stats = this.options.stats;
    stats.tcp_passthrough_cx_total++;
    const session = this.router.session(socket);
    this.unconnected.set(session, key);
    session.start({ address: dst.address, port: dst.port, connectTimeoutMs: PASSTHROUGH_CONNECT_TIMEOUT_MS, clusterName, stats: stats.cluster(clusterName) });
  }

  /** A passthrough relay connected or ended: connections waiting on its destination go on. */
  private settled(session: TcpSession): void {
    const key = this.unconnected.get(session);
    if (key === undefined) return;
    this.unconnected.delete(session);
    for (const pending of this.unconnected.values()) if (pending === key) return;
    const list = this.waiting.get(key);
    if (list === undefined) return;
    this.waiting.delete(key);
    for (const resume of list) resume();
  }

  private isOwnPort(dst: OriginalDestination): boolean {
    let own = dst.port === this.port;
    if (!own) for (const p of this.options.ownPorts()) if (p === dst.port) own = true;
    return own && isLocalAddress(dst.address);
  }

  private refuseLoop(socket: Socket): void {
    this.options.stats.tcp_loop_refused++;
    if (!this.loopLogged) {
      this.loopLogged = true;
      this.options.logger.error(
        { listener: this.name, peer: `${socket.remoteAddress}:${socket.remotePort}` },
        "a relayed connection came back to the proxy's capture port: the proxy's own traffic is being captured (exclude the proxy's uid from capture); such connections are refused",
      );
    }
    socket.destroy();
  }

  private onUpstreamConnect(session: TcpSession): void {
    const up = session.upstream!;
    const end = endKey(up.localAddress, up.localPort);
    this.upstreamEnds.set(session, end);
    this.localEnds.add(end);
    // The captured copy of this very connection may already have been accepted.
    const looped = this.accepted.get(end);
    if (looped !== undefined) {
      this.accepted.delete(end);
      this.refuseLoop(looped);
    }
    this.settled(session);
  }

  private onSessionClose(session: TcpSession): void {
    this.settled(session);
    const end = this.upstreamEnds.get(session);
    if (end === undefined) return;
    this.upstreamEnds.delete(session);
    this.localEnds.delete(end);
  }

  /** Stops accepting, drains until `deadlineMs`, then cuts what is left. Idempotent. */
  close(deadlineMs: number): Promise<void> {
    this.closing ??= (async () => {
      await Promise.all(this.servers.map(stopAccepting));
      await this.router.close(deadlineMs);
      for (const s of this.sockets) s.destroy();
    })();
    return this.closing;
  }
}

function endKey(address: string | undefined, port: number | undefined): string {
  return `${unmapIpv4(address ?? '')}|${port ?? 0}`;
}


/** Loopback, or an address of one of this host's interfaces (read only when a relay targets one of our ports). */
export function isLocalAddress(address: string): boolean {
  const a = unmapIpv4(address);
  if (a === '::1' || a === '::' || a === '0.0.0.0' || a.startsWith('127.')) return true;
  for (const list of Object.values(networkInterfaces())) {
    for (const info of list ?? []) if (info.address === a) return true;
  }
  return false;
}
