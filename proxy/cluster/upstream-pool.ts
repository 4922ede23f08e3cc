// Keep-alive connection pools to a cluster's endpoints: one raw HTTP/1.1 pool
// (proxy/http1) per endpoint, so that an endpoint leaving the cluster closes
// exactly its own connections, and least-request can count in-flight requests
// per endpoint. A pool outlives config updates as long as its settings do not
// change; the cluster objects built on top of it are rebuilt cheaply instead.
import type { Exchange } from '../http/exchange.ts';
import { Http1Pool } from '../http1/http1-connection-pool.ts';
import { Http2Pool } from '../http2/http2-upstream-pool.ts';
import type { ClusterStats } from '../stats/proxy-stats.ts';
import type { UpstreamTlsDial } from '../tls/tls-upstream.ts';

export interface PoolSettings {
  /** Upper bound of connections to one endpoint; more requests wait in the pool. */
  maxConnectionsPerEndpoint: number;
  /** Idle keep-alive connections kept per endpoint. */
  maxFreeConnectionsPerEndpoint: number;
  connectTimeoutMs: number;
  /** An idle connection is closed after this long. */
  idleTimeoutMs: number;
  /** Circuit breakers: requests per connection, connections per cluster (undefined: unlimited). */
  maxRequestsPerConnection?: number;
  clusterMaxConnections?: number;
  /** SO_KEEPALIVE initial delay (undefined: off). */
  keepAliveMs?: number;
}

export const DEFAULT_POOL_SETTINGS: PoolSettings = {
  maxConnectionsPerEndpoint: 1024,
  maxFreeConnectionsPerEndpoint: 256,
  connectTimeoutMs: 10_000,
  idleTimeoutMs: 60_000,
};

/** One endpoint of a cluster as the data plane sees it: where it is, its pool, its load. */
export class UpstreamHost {
  readonly address: string;
  readonly port: number;
  /** `address:port`, as the pool keys it. */
  readonly key: string;
  readonly pool: Http1Pool<Exchange>;
  /** How connections to this endpoint are secured (undefined: plaintext); TCP relays read it too. */
  readonly tls: UpstreamTlsDial | undefined;
  /** Requests in flight to this endpoint (least-request reads it). */
  active = 0;
  private readonly settings: PoolSettings | undefined;
  private http2: Http2Pool<Exchange> | undefined = undefined;

  constructor(address: string, port: number, pool: Http1Pool<Exchange>, settings?: PoolSettings) {
    this.address = address;
    this.port = port;
    this.key = endpointKey(address, port);
    this.pool = pool;
    this.tls = pool.tls;
    this.settings = settings;
  }

  /**
   * The endpoint's HTTP/2 sessions (http2 clusters), made on first use so that
   * an HTTP/1.1-only proxy never loads node:http2. A host may hold both kinds:
   * a cluster switching protocol keeps the same host objects.
   */
  h2Pool(): Http2Pool<Exchange> {
    if (this.http2 === undefined) {
      const s = this.settings ?? DEFAULT_POOL_SETTINGS;
      this.http2 = new Http2Pool<Exchange>(this.address, this.port, { maxSessions: s.maxConnectionsPerEndpoint, connectTimeoutMs: s.connectTimeoutMs, idleTimeoutMs: s.idleTimeoutMs }, this.pool.stats, this.tls);
    }
    return this.http2;
  }

  /** Closes idle connections of both kinds now and busy ones as their requests finish. */
  retire(): void {
    this.pool.retire();
    this.http2?.retire();
  }

  /** Ends every connection of both kinds now. */
  destroy(): void {
    this.pool.destroy();
    this.http2?.destroy();
  }
}

export function endpointKey(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

export class UpstreamPool {
  readonly settings: PoolSettings;
  readonly stats: ClusterStats;
  private readonly hosts = new Map<string, UpstreamHost>();

  constructor(settings: PoolSettings, stats: ClusterStats) {
    this.settings = settings;
    this.stats = stats;
  }

  /**
   * The host for an endpoint, created on first use; the same object across
   * config updates. A TLS and a plaintext host for one address are two hosts
   * (two pools): their connections never mix.
   */
  host(address: string, port: number, tlsDial?: UpstreamTlsDial): UpstreamHost {
    const base = endpointKey(address, port);
    const key = tlsDial === undefined ? base : `${base}|${tlsDial.kind}`;
    let host = this.hosts.get(key);
    if (host === undefined) {
      const s = this.settings;
      const options = {
        maxConnections: s.maxConnectionsPerEndpoint,
        maxIdle: s.maxFreeConnectionsPerEndpoint,
        connectTimeoutMs: s.connectTimeoutMs,
        idleTimeoutMs: s.idleTimeoutMs,
        maxRequestsPerConnection: s.maxRequestsPerConnection,
        clusterMaxConnections: s.clusterMaxConnections,
        keepAliveMs: s.keepAliveMs,
      };
      host = new UpstreamHost(address, port, new Http1Pool<Exchange>(address, port, options, this.stats, tlsDial), s);
      this.hosts.set(key, host);
    }
    return host;
  }

  /** Closes the pools of endpoints not in `live` (called after a config swap). */
  prune(live: ReadonlySet<string>): void {
    for (const [key, host] of this.hosts) {
      if (!live.has(host.key)) {
        this.hosts.delete(key);
        host.retire();
      }
    }
  }

  /** Closes idle connections now and in-flight ones as their requests finish. */
  close(): void {
    for (const host of this.hosts.values()) host.retire();
    this.hosts.clear();
  }

  /** Ends every connection at once, in-flight or not (proxy shutdown after the drain deadline). */
  destroy(): void {
    for (const host of this.hosts.values()) host.destroy();
    this.hosts.clear();
  }

  get size(): number {
    return this.hosts.size;
  }
}

export function samePoolSettings(a: PoolSettings, b: PoolSettings): boolean {
  return (
    a.maxConnectionsPerEndpoint === b.maxConnectionsPerEndpoint &&
    a.maxFreeConnectionsPerEndpoint === b.maxFreeConnectionsPerEndpoint &&
    a.connectTimeoutMs === b.connectTimeoutMs &&
    a.idleTimeoutMs === b.idleTimeoutMs &&
    a.maxRequestsPerConnection === b.maxRequestsPerConnection &&
    a.clusterMaxConnections === b.clusterMaxConnections &&
    a.keepAliveMs === b.keepAliveMs
  );
}
