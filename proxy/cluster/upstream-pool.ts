// Keep-alive connection pools to a cluster's endpoints: one node:http Agent per
// endpoint, so that an endpoint leaving the cluster closes exactly its own
// connections, and least-request can count in-flight requests per endpoint.
// A pool outlives config updates as long as its settings do not change; the
// cluster objects built on top of it are rebuilt cheaply instead.
import http from '../http/node-http.ts';
import type { Agent, ClientRequestArgs } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ClusterStats } from '../stats/proxy-stats.ts';

export interface PoolSettings {
  /** Upper bound of connections to one endpoint; more requests queue in the agent. */
  maxConnectionsPerEndpoint: number;
  /** Idle keep-alive connections kept per endpoint. */
  maxFreeConnectionsPerEndpoint: number;
  connectTimeoutMs: number;
  /** An idle connection is closed after this long (shortened by the upstream's Keep-Alive hint). */
  idleTimeoutMs: number;
}

export const DEFAULT_POOL_SETTINGS: PoolSettings = {
  maxConnectionsPerEndpoint: 1024,
  maxFreeConnectionsPerEndpoint: 256,
  connectTimeoutMs: 10_000,
  idleTimeoutMs: 60_000,
};

/** Thrown into a request whose connection did not establish within connectTimeoutMs. */
export class UpstreamConnectTimeoutError extends Error {
  readonly code = 'UPSTREAM_CONNECT_TIMEOUT';
  constructor(ms: number) {
    super(`upstream connect timeout after ${ms}ms`);
  }
}

/** Marks sockets that completed their TCP handshake, so errors can tell UF from UC. */
export const kConnected = Symbol('jibe.upstream.connected');

type TrackedSocket = Socket & { [kConnected]?: boolean };

class UpstreamAgent extends http.Agent {
  readonly stats: ClusterStats;
  readonly connectTimeoutMs: number;

  constructor(settings: PoolSettings, stats: ClusterStats) {
    super({
      keepAlive: true,
      scheduling: 'lifo',
      maxSockets: settings.maxConnectionsPerEndpoint,
      maxFreeSockets: settings.maxFreeConnectionsPerEndpoint,
      timeout: settings.idleTimeoutMs,
    });
    this.stats = stats;
    this.connectTimeoutMs = settings.connectTimeoutMs;
  }

  override createConnection(
    options: ClientRequestArgs,
    callback?: (err: Error | null, stream: Duplex) => void,
  ): Duplex | null | undefined {
    const socket = super.createConnection(options, callback) as TrackedSocket;
    this.stats.upstream_cx_total++;
    this.stats.upstream_cx_active++;
    socket[kConnected] = false;
    const timer = this.connectTimeoutMs > 0 ? setTimeout(onConnectTimeout, this.connectTimeoutMs, socket, this.connectTimeoutMs) : undefined;
    socket.once('connect', () => {
      socket[kConnected] = true;
      if (timer !== undefined) clearTimeout(timer);
    });
    socket.once('close', () => {
      if (timer !== undefined) clearTimeout(timer);
      this.stats.upstream_cx_active--;
      if (!socket[kConnected]) this.stats.upstream_cx_connect_fail++;
    });
    return socket;
  }
}

function onConnectTimeout(socket: TrackedSocket, ms: number): void {
  if (!socket[kConnected]) socket.destroy(new UpstreamConnectTimeoutError(ms));
}

/** One endpoint of a cluster as the data plane sees it: where it is, its pool, its load. */
export class UpstreamHost {
  readonly address: string;
  readonly port: number;
  /** `address:port`, as the pool keys it. */
  readonly key: string;
  readonly agent: Agent;
  /** Requests in flight to this endpoint (least-request reads it). */
  active = 0;

  constructor(address: string, port: number, agent: Agent) {
    this.address = address;
    this.port = port;
    this.key = endpointKey(address, port);
    this.agent = agent;
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

  /** The host for an endpoint, created on first use; the same object across config updates. */
  host(address: string, port: number): UpstreamHost {
    const key = endpointKey(address, port);
    let host = this.hosts.get(key);
    if (host === undefined) {
      host = new UpstreamHost(address, port, new UpstreamAgent(this.settings, this.stats));
      this.hosts.set(key, host);
    }
    return host;
  }

  /** Closes the pools of endpoints not in `live` (called after a config swap). */
  prune(live: ReadonlySet<string>): void {
    for (const [key, host] of this.hosts) {
      if (!live.has(key)) {
        this.hosts.delete(key);
        retireAgent(host.agent);
      }
    }
  }

  /** Closes idle connections now and in-flight ones as their requests finish. */
  close(): void {
    for (const host of this.hosts.values()) retireAgent(host.agent);
    this.hosts.clear();
  }

  /** Ends every connection at once, in-flight or not (proxy shutdown after the drain deadline). */
  destroy(): void {
    for (const host of this.hosts.values()) host.agent.destroy();
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
    a.idleTimeoutMs === b.idleTimeoutMs
  );
}

// The agent's 'free' handler reads `keepAlive` each time a request finishes, so
// turning it off makes busy sockets close when done instead of being cut.
function retireAgent(agent: Agent): void {
  (agent as Agent & { keepAlive: boolean }).keepAlive = false;
  for (const sockets of Object.values(agent.freeSockets)) {
    if (sockets) for (const socket of sockets) socket.destroy();
  }
}
