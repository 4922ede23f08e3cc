// Relays one downstream connection to one upstream connection, Envoy's
// tcp_proxy: the endpoint is picked once per connection by the cluster's
// balancer, bytes flow both ways through pipes (so a slow reader pauses the
// fast writer), a FIN on one side is passed on as a FIN to the other (half
// close), a reset on one side resets the other. Failures end up as Envoy's
// response flags on the session (UH no healthy host, UF connect failure or
// timeout, UC upstream reset, DC downstream reset, NC unknown cluster) and
// as counters; nothing here throws on a peer's behaviour.
import net from 'node:net';
import tls from 'node:tls';
import type { Socket } from 'node:net';
import type { WeightedCluster } from '../../core/model/proxy-config.ts';
import type { Cluster } from '../cluster/cluster.ts';
import type { UpstreamHost } from '../cluster/upstream-pool.ts';
import { ResponseFlag, formatResponseFlags } from '../http/response-flags.ts';
import type { ProxyLogger } from '../proxy-logger.ts';
import type { ClusterStats, ProxyStats } from '../stats/proxy-stats.ts';
import type { ConnectionAuthzRecord } from '../security/authz-connection.ts';
import { peerIdentityOf } from '../tls/tls-inbound.ts';
import { ALPN_TCP } from '../tls/tls-upstream.ts';
import type { UpstreamTlsDial } from '../tls/tls-upstream.ts';

/** Envoy's tcp_proxy default idle timeout: a connection with no bytes either way for an hour is closed. */
export const DEFAULT_TCP_IDLE_TIMEOUT_MS = 3_600_000;
/** Connect timeout of passthrough connections (Istio's default connectTimeout). */
export const PASSTHROUGH_CONNECT_TIMEOUT_MS = 10_000;
/** Istio's names for the clusters of unknown destinations, kept so logs read the same. */
export const PASSTHROUGH_CLUSTER = 'PassthroughCluster';
export const BLACKHOLE_CLUSTER = 'BlackHoleCluster';

export interface TcpProxyContext {
  /** Listener name, for logs. */
  listener: string;
  stats: ProxyStats;
  logger: ProxyLogger;
  debug: boolean;
  idleTimeoutMs?: number;
  /** Told about every upstream socket once connected (capture listeners use it to spot loops). */
  onUpstreamConnect?: (session: TcpSession) => void;
  /** Told when a session is over, after its counters are settled. */
  onClose?: (session: TcpSession) => void;
}

/** Where a session goes: a cluster (balanced), or an address (passthrough). */
export type TcpTarget =
  | { cluster: Cluster }
  | { address: string; port: number; connectTimeoutMs: number; clusterName: string; stats?: ClusterStats };

export class TcpSession {
  readonly downstream: Socket;
  upstream: Socket | undefined;
  /** ResponseFlag bits. */
  flags = 0;
  clusterName = '';
  upstreamKey = '';
  readonly startTime = performance.now();
  /** Verified SPIFFE ID of the downstream peer when this proxy terminated mesh mTLS on it; undefined for plaintext. */
  readonly peerPrincipal: string | undefined;
  /** How AuthorizationPolicy decided the connection (inbound listeners with policies). */
  authz: ConnectionAuthzRecord | undefined = undefined;
  private readonly ctx: TcpProxyContext;
  private host: UpstreamHost | undefined;
  private clusterStats: ClusterStats | undefined;
  private connectTimer: ReturnType<typeof setTimeout> | undefined;
  private connected = false;
  private openSockets = 1;
  private finished = false;
  private head: Buffer | undefined;

  constructor(downstream: Socket, ctx: TcpProxyContext) {
    this.downstream = downstream;
    this.peerPrincipal = peerIdentityOf(downstream);
    this.ctx = ctx;
    ctx.stats.tcp_downstream_cx_total++;
    ctx.stats.tcp_downstream_cx_active++;
    // Nothing is read until the upstream is there; the kernel buffers meanwhile.
    downstream.pause();
    downstream.on('error', () => this.onDownstreamError());
    downstream.once('close', () => this.onSocketClosed());
  }

  /** Ends the session at once with `flag` (no upstream is opened). */
  refuse(flag: number, clusterName = ''): void {
    this.flags |= flag;
    if (clusterName !== '') this.clusterName = clusterName;
    this.downstream.destroy();
  }

  /** Authorization refused the connection: reset at once, before any byte is relayed (Envoy's network RBAC closes without flushing). */
  deny(record: ConnectionAuthzRecord, clusterName = ''): void {
    this.authz = record;
    // Named so the connection is counted under the workload it was for.
    if (clusterName !== '') this.clusterName = clusterName;
    reset(this.downstream);
  }

  /** Cuts both sides now (proxy shutdown after the drain deadline). */
  abort(): void {
    this.closeBoth();
  }

  /** Opens the upstream connection and relays; `head` (bytes already read from the client, e.g. while sniffing) goes first. */
  start(target: TcpTarget, head?: Buffer): void {
    if (head !== undefined && head.length > 0) this.head = head;
    if (this.downstream.destroyed) {
      this.flags |= ResponseFlag.DC;
      return;
    }
    let address: string;
    let port: number;
    let timeoutMs: number;
    let dial: UpstreamTlsDial | undefined;
    if ('cluster' in target) {
      const cluster = target.cluster;
      this.clusterName = cluster.name;
      this.clusterStats = cluster.stats;
      // cluster.pick, not the balancer directly: it skips hosts outlier detection ejected.
      const host = cluster.pick();
      if (host === undefined) {
        cluster.stats.upstream_cx_none_healthy++;
        this.refuse(ResponseFlag.UH);
        return;
      }
      this.host = host;
      host.active++;
      address = host.address;
      port = host.port;
      timeoutMs = cluster.pool.settings.connectTimeoutMs;
      dial = host.tls;
    } else {
      this.clusterName = target.clusterName;
      this.clusterStats = target.stats;
      address = target.address;
      port = target.port;
      timeoutMs = target.connectTimeoutMs;
    }
    this.upstreamKey = address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
    const stats = this.clusterStats;
    if (stats !== undefined) {
      stats.upstream_cx_total++;
      stats.upstream_cx_active++;
    }
    // To an endpoint with a Jibe proxy the bytes travel inside mesh mTLS; relaying starts once the handshake is done.
    const upstream =
      dial === undefined
        ? net.connect({ host: address, port, allowHalfOpen: true, noDelay: true })
        : tls.connect({ ...{ host: address, port, allowHalfOpen: true, noDelay: true }, ...dial.options(ALPN_TCP) });
    this.upstream = upstream;
    this.openSockets++;
    this.connectTimer = setTimeout(() => this.onConnectTimeout(), timeoutMs);
    if (dial !== undefined) {
      const key = this.upstreamKey;
      upstream.once('secureConnect', () => {
        dial.connected();
        this.onConnect();
      });
      upstream.once('error', (err: Error) => {
        if (!this.connected) dial.failed(err, key);
      });
    } else {
      upstream.once('connect', () => this.onConnect());
    }
    upstream.on('error', () => this.onUpstreamError());
    upstream.once('close', () => this.onSocketClosed());
  }

  private onConnect(): void {
    clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
    this.connected = true;
    const down = this.downstream;
    const up = this.upstream!;
    this.ctx.onUpstreamConnect?.(this);
    this.ctx.stats.telemetry?.tcpOpened(this);
    if (down.destroyed) {
      up.destroy();
      return;
    }
    const idle = this.ctx.idleTimeoutMs ?? DEFAULT_TCP_IDLE_TIMEOUT_MS;
    if (idle > 0) {
      // Node refreshes a socket's timer on reads and writes alike, so each
      // side's timer only fires when nothing moved in either direction.
      down.setTimeout(idle, () => this.closeBoth());
      up.setTimeout(idle, () => this.closeBoth());
    }
    if (this.head !== undefined) {
      up.write(this.head);
      this.head = undefined;
    }
    // pipe() ends the destination when the source ends (even one that already
    // ended while sniffing): a FIN travels on as a FIN.
    down.pipe(up);
    up.pipe(down);
  }

  private onConnectTimeout(): void {
    this.connectTimer = undefined;
    if (this.connected) return;
    if (this.clusterStats !== undefined) this.clusterStats.upstream_cx_connect_timeout++;
    this.failConnect();
  }

  private failConnect(): void {
    this.flags |= ResponseFlag.UF;
    if (this.clusterStats !== undefined) this.clusterStats.upstream_cx_connect_fail++;
    this.upstream?.destroy();
    this.downstream.destroy();
  }

  private onUpstreamError(): void {
    if (!this.connected) {
      if (this.connectTimer !== undefined) {
        clearTimeout(this.connectTimer);
        this.connectTimer = undefined;
        this.failConnect();
      }
      return;
    }
    if (this.flags & ResponseFlag.DC) return;
    this.flags |= ResponseFlag.UC;
    reset(this.downstream);
  }

  private onDownstreamError(): void {
    if (this.flags & ResponseFlag.UC) return;
    this.flags |= ResponseFlag.DC;
    if (this.upstream !== undefined) reset(this.upstream);
  }

  private closeBoth(): void {
    this.downstream.destroy();
    this.upstream?.destroy();
  }

  private onSocketClosed(): void {
    if (--this.openSockets > 0) {
      // The downstream left before the upstream answered the connect: give up on it.
      if (!this.connected && this.downstream.destroyed && this.upstream !== undefined && !this.upstream.destroyed) {
        if ((this.flags & (ResponseFlag.UF | ResponseFlag.UH)) === 0) this.flags |= ResponseFlag.DC;
        this.upstream.destroy();
      }
      return;
    }
    this.finish();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.connectTimer !== undefined) clearTimeout(this.connectTimer);
    const ctx = this.ctx;
    ctx.stats.tcp_downstream_cx_active--;
    if (this.host !== undefined) this.host.active--;
    const up = this.upstream;
    const stats = this.clusterStats;
    if (up !== undefined && stats !== undefined) {
      stats.upstream_cx_active--;
      stats.upstream_cx_rx_bytes_total += up.bytesRead;
      stats.upstream_cx_tx_bytes_total += up.bytesWritten;
    }
    ctx.onClose?.(this);
    ctx.stats.telemetry?.tcpClosed(this);
    if (ctx.debug) {
      ctx.logger.debug(
        {
          listener: ctx.listener,
          cluster: this.clusterName,
          upstream: this.upstreamKey,
          downstream: `${this.downstream.remoteAddress}:${this.downstream.remotePort}`,
          flags: formatResponseFlags(this.flags),
          bytesReceived: this.downstream.bytesRead,
          bytesSent: this.downstream.bytesWritten,
          durationMs: Math.round((performance.now() - this.startTime) * 1000) / 1000,
        },
        'tcp connection',
      );
    }
  }
}

/** Sends a TCP reset (RST) rather than a FIN, so the peer learns the other side failed. */
function reset(socket: Socket): void {
  if (socket.destroyed) return;
  try {
    socket.resetAndDestroy();
  } catch {
    socket.destroy();
  }
}

/** Picks one of a tcpRoute's clusters by weight; `random` returns [0, 1). */
export function pickWeightedCluster(clusters: readonly WeightedCluster[], random: () => number): WeightedCluster | undefined {
  if (clusters.length <= 1) return clusters[0];
  let total = 0;
  for (const c of clusters) total += c.weight;
  if (total <= 0) return clusters[0];
  let r = random() * total;
  for (const c of clusters) {
    r -= c.weight;
    if (r < 0) return c;
  }
  return clusters[clusters.length - 1];
}
