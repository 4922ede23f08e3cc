// One connected proxy as the discovery server sees it: what the proxy is known
// to run (its last ACKed resource set), the push in flight, and the changes that
// piled up meanwhile. At most one push is in flight per proxy; changes arriving
// while it is coalesce into the next push, so a slow proxy costs the server one
// flag, never a growing backlog of responses.
import { status as GrpcStatus } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { ProxyNode, ProxyResource } from '../model/proxy-config.ts';
import type { DiscoveryObserver } from './discovery-observer.ts';
import type { DiscoveryServerStream, WireDiscoveryRequest, WireDiscoveryResponse, WireResource } from './discovery-protocol.ts';
import { diffResources, encodeResources, versionsOf } from './resource-diff.ts';
import type { ResourceVersions } from './resource-diff.ts';

export interface ConfigSource {
  /** Current snapshot version (string). */
  version(): string;
  /**
   * The full resource set for a node at the current version. Throwing means the
   * node is unknown/invalid: the stream is closed with that message (INVALID_ARGUMENT).
   * Returned resource objects are treated as immutable: the server caches their
   * encoding by object identity, so a changed resource must be a new object.
   */
  build(node: ProxyNode): ProxyResource[];
  /** Called whenever the mesh changed. Returns unsubscribe. */
  onChange(listener: () => void): () => void;
  /** The node's stream ended: anything kept to build its next config faster can go. */
  release?(node: ProxyNode): void;
}

/** One connected proxy, as `DiscoveryServer.status()` reports it. */
export interface ProxyStatus {
  id: string;
  type: ProxyNode['type'];
  namespace: string;
  workload?: string;
  platform?: string;
  /** Proxy software version the node announced. */
  proxyVersion?: string;
  /** Address the stream comes from. */
  peer: string;
  /** ISO time the stream opened. */
  connectedAt: string;
  lastSentVersion?: string;
  lastAckedVersion?: string;
  /** Newest mesh version whose config for this proxy equals what it ACKed (may be newer than lastAckedVersion when a change did not touch it). */
  syncedVersion?: string;
  lastNack?: { version: string; message: string; at: string };
  /** A push waits for the proxy's ACK/NACK. */
  pending: boolean;
  pushes: number;
  acks: number;
  nacks: number;
}

export interface SubscriberSettings {
  source: ConfigSource;
  queueLimit: number;
  ackTimeoutMs: number;
  logger: Logger;
  nextNonce(): string;
  /** Called once when the stream ends, whoever ended it. */
  onClosed(subscriber: DiscoverySubscriber, reason: string): void;
  /** Told about pushes and answers (metrics). */
  observer?: DiscoveryObserver;
}

interface InFlightPush {
  nonce: string;
  version: string;
  /** Every resource the proxy holds once it ACKs this push. */
  versions: ResourceVersions;
  /** performance.now() of the oldest mesh change this push carries (convergence time); undefined for a stream's first snapshot. */
  changedAt: number | undefined;
}

export class DiscoverySubscriber {
  readonly node: ProxyNode;
  readonly peer: string;
  readonly connectedAt = new Date();
  readonly #startedAt = performance.now();
  readonly #call: DiscoveryServerStream;
  readonly #settings: SubscriberSettings;
  readonly #log: Logger;

  /** What the proxy runs, as far as it told us. */
  #acked: ResourceVersions = new Map();
  /** False until the proxy ACKs a full-state push: until then we do not know what it holds, so every push replaces everything. */
  #ackedFullState = false;
  #inFlight: InFlightPush | undefined;
  #ackTimer: ReturnType<typeof setTimeout> | undefined;
  /** The mesh changed since the last push was built. */
  #dirty = false;
  /** performance.now() of the oldest change not yet pushed. */
  #changedAt: number | undefined;
  /** Change rounds that arrived while this proxy was still busy with a push. */
  #behind = 0;
  #waitingForDrain = false;
  #closed = false;

  #lastSentVersion: string | undefined;
  #lastAckedVersion: string | undefined;
  #syncedVersion: string | undefined;
  #lastNack: { version: string; message: string; at: Date } | undefined;
  #pushes = 0;
  #acks = 0;
  #nacks = 0;

  constructor(call: DiscoveryServerStream, node: ProxyNode, settings: SubscriberSettings) {
    this.#call = call;
    this.node = node;
    this.peer = call.getPeer();
    this.#settings = settings;
    this.#log = settings.logger.child({ node: node.id });
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Sends the full-state snapshot that opens every stream. */
  start(): void {
    this.#push();
  }

  /**
   * The mesh changed: push now, or remember to once the push in flight is
   * answered. `changedAt` (performance.now()) is when the change happened.
   */
  meshChanged(changedAt?: number): void {
    if (this.#closed) return;
    // A change older than this stream counts from the stream's start: the proxy could not have had it sooner.
    if (changedAt !== undefined) changedAt = Math.max(changedAt, this.#startedAt);
    if (changedAt !== undefined && (this.#changedAt === undefined || changedAt < this.#changedAt)) this.#changedAt = changedAt;
    if (this.#inFlight || this.#waitingForDrain) {
      this.#dirty = true;
      this.#behind++;
      if (this.#behind > this.#settings.queueLimit) {
        this.#settings.observer?.pushFailed('queue_overflow');
        this.close(
          GrpcStatus.RESOURCE_EXHAUSTED,
          `proxy fell ${this.#behind} pushes behind (queue limit ${this.#settings.queueLimit}); reconnect to get a full snapshot`,
        );
      }
      return;
    }
    this.#push();
  }

  /** An ACK or NACK from the proxy. */
  handleRequest(request: WireDiscoveryRequest): void {
    if (this.#closed) return;
    const inFlight = this.#inFlight;
    if (!inFlight || request.responseNonce !== inFlight.nonce) {
      // A late answer to a push we already gave up on, or a client re-announcing itself.
      if (this.#log.isLevelEnabled('debug')) this.#log.debug({ nonce: request.responseNonce }, 'ignoring request that answers no push in flight');
      return;
    }
    clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
    this.#inFlight = undefined;
    this.#behind = 0;
    if (request.errorDetail) {
      const message = request.errorDetail.message || '(the proxy gave no reason)';
      this.#nacks++;
      this.#lastNack = { version: inFlight.version, message, at: new Date() };
      // #acked stays as it was: the next push is diffed against what the proxy still runs.
      this.#log.warn({ version: inFlight.version, runs: request.versionInfo, reason: message }, 'proxy rejected config (NACK)');
      this.#settings.observer?.nacked();
    } else {
      this.#acks++;
      this.#acked = inFlight.versions;
      this.#ackedFullState = true;
      this.#lastAckedVersion = inFlight.version;
      this.#syncedVersion = inFlight.version;
      this.#settings.observer?.acked(inFlight.changedAt === undefined ? undefined : performance.now() - inFlight.changedAt);
      if (this.#log.isLevelEnabled('debug')) this.#log.debug({ version: inFlight.version }, 'proxy ACKed config');
    }
    if (this.#dirty && !this.#waitingForDrain) this.#push();
  }

  /** Ends the stream from the server side with a status the proxy sees. */
  close(code: GrpcStatus, message: string): void {
    if (this.#closed) return;
    this.#finish(message);
    const call = this.#call;
    if (call.cancelled || call.destroyed || call.writableEnded) return;
    // grpc-js turns an 'error' event on a server stream into the call's final status.
    call.emit('error', Object.assign(new Error(message), { code, details: message }));
  }

  /** The stream ended from the proxy's side (cancelled, half-closed, broken). */
  detach(reason: string): void {
    if (this.#closed) return;
    this.#finish(reason);
    const call = this.#call;
    if (!call.cancelled && !call.destroyed && !call.writableEnded) call.end();
  }

  status(): ProxyStatus {
    const node = this.node;
    const out: ProxyStatus = {
      id: node.id,
      type: node.type,
      namespace: node.namespace,
      peer: this.peer,
      connectedAt: this.connectedAt.toISOString(),
      pending: this.#inFlight !== undefined,
      pushes: this.#pushes,
      acks: this.#acks,
      nacks: this.#nacks,
    };
    if (node.workload) out.workload = node.workload;
    if (node.platform) out.platform = node.platform;
    if (node.version) out.proxyVersion = node.version;
    if (this.#lastSentVersion !== undefined) out.lastSentVersion = this.#lastSentVersion;
    if (this.#lastAckedVersion !== undefined) out.lastAckedVersion = this.#lastAckedVersion;
    if (this.#syncedVersion !== undefined) out.syncedVersion = this.#syncedVersion;
    if (this.#lastNack) out.lastNack = { version: this.#lastNack.version, message: this.#lastNack.message, at: this.#lastNack.at.toISOString() };
    return out;
  }

  #push(): void {
    this.#dirty = false;
    this.#behind = 0;
    const changedAt = this.#changedAt;
    this.#changedAt = undefined;
    const source = this.#settings.source;
    let version: string;
    let next;
    try {
      version = source.version();
      next = encodeResources(source.build(this.node));
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      this.#log.warn({ err: error }, 'cannot build config for proxy');
      this.#settings.observer?.pushFailed('build');
      this.close(GrpcStatus.INVALID_ARGUMENT, `no config for node ${this.node.id}: ${message}`);
      return;
    }

    const fullState = !this.#ackedFullState;
    let resources: WireResource[];
    let removed: WireDiscoveryResponse['removed'] = [];
    if (fullState) {
      resources = [];
      for (const encoded of next.values()) resources.push(encoded.wire);
    } else {
      const diff = diffResources(this.#acked, next);
      if (diff.changed.length === 0 && diff.removed.length === 0) {
        this.#syncedVersion = version;
        return;
      }
      resources = diff.changed;
      removed = diff.removed;
    }

    const nonce = this.#settings.nextNonce();
    this.#inFlight = { nonce, version, versions: versionsOf(next), changedAt };
    this.#lastSentVersion = version;
    this.#pushes++;
    this.#settings.observer?.pushed(fullState);
    this.#ackTimer = setTimeout(this.#onAckTimeout, this.#settings.ackTimeoutMs);
    this.#ackTimer.unref();
    if (this.#log.isLevelEnabled('debug')) {
      this.#log.debug({ version, nonce, fullState, resources: resources.length, removed: removed.length }, 'pushing config');
    }
    const response: WireDiscoveryResponse = { versionInfo: version, nonce, fullState, resources, removed };
    if (!this.#call.write(response)) {
      this.#waitingForDrain = true;
      this.#call.once('drain', this.#onDrain);
    }
  }

  readonly #onDrain = (): void => {
    this.#waitingForDrain = false;
    if (!this.#closed && this.#dirty && !this.#inFlight) this.#push();
  };

  readonly #onAckTimeout = (): void => {
    const inFlight = this.#inFlight;
    if (!inFlight || this.#closed) return;
    this.#log.warn({ version: inFlight.version, nonce: inFlight.nonce }, 'proxy did not answer a push; resetting its stream');
    this.#settings.observer?.pushFailed('ack_timeout');
    this.close(
      GrpcStatus.DEADLINE_EXCEEDED,
      `no ACK or NACK for version ${inFlight.version} (nonce ${inFlight.nonce}) within ${this.#settings.ackTimeoutMs} ms; reconnect to resync`,
    );
  };

  #finish(reason: string): void {
    this.#closed = true;
    clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
    this.#inFlight = undefined;
    this.#call.off('drain', this.#onDrain);
    this.#settings.source.release?.(this.node);
    this.#settings.onClosed(this, reason);
  }
}
