// The proxy's end of the discovery stream. It applies each push atomically (or
// not at all) through the proxy's `apply`, answers with ACK or NACK, and when the
// control plane goes away it keeps the proxy on its last good config and
// reconnects with jittered backoff; the first push on a new stream is full-state.
import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import type { Logger } from 'pino';
import type { ConfigUpdate, ProxyNode } from '../../core/model/proxy-config.ts';
import { discoveryService, nodeToWire } from '../../core/discovery/discovery-protocol.ts';
import type { DiscoveryClientStream, DiscoveryServiceClient, WireDiscoveryResponse } from '../../core/discovery/discovery-protocol.ts';
import { FullJitterBackoff } from './discovery-backoff.ts';
import type { BackoffSettings } from './discovery-backoff.ts';
import { toConfigUpdate } from './discovery-update.ts';

export interface DiscoveryClientOptions {
  /** host:port of the control plane's discovery port. */
  address: string;
  node: ProxyNode;
  /** Apply an update atomically or throw (the client then NACKs with the error message and the proxy keeps its previous config). */
  apply(update: ConfigUpdate): void | Promise<void>;
  logger?: Logger;
  backoff?: BackoffSettings;
  /** Channel credentials (default plaintext, for the local-only port). */
  credentials?: grpc.ChannelCredentials;
}

export interface DiscoveryClientState {
  /** A stream is open and the control plane has answered on it. */
  connected: boolean;
  /** Version of the config the proxy runs ('' before the first apply). */
  version: string;
  lastError?: string;
  lastRejected?: { version: string; message: string };
}

// A full snapshot of a large mesh easily passes grpc's 4 MiB default.
const MAX_RECEIVE_BYTES = 256 * 1024 * 1024;

/** Events: 'connected', 'disconnected'(reason), 'applied'(version), 'rejected'(version, message). */
export class DiscoveryClient extends EventEmitter {
  readonly #options: DiscoveryClientOptions;
  readonly #log: Logger;
  readonly #backoff: FullJitterBackoff;
  #state: DiscoveryClientState = { connected: false, version: '' };
  #running = false;
  #client: DiscoveryServiceClient | undefined;
  #call: DiscoveryClientStream | undefined;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  /** Pushes are applied one after another, in the order they arrived. */
  #applying: Promise<void> = Promise.resolve();

  constructor(options: DiscoveryClientOptions) {
    super();
    this.#options = options;
    this.#log = (options.logger ?? pino({ level: 'silent' })).child({ component: 'discovery-client', node: options.node.id });
    this.#backoff = new FullJitterBackoff(options.backoff);
  }

  get state(): Readonly<DiscoveryClientState> {
    const s = this.#state;
    const out: DiscoveryClientState = { connected: s.connected, version: s.version };
    if (s.lastError !== undefined) out.lastError = s.lastError;
    if (s.lastRejected) out.lastRejected = { ...s.lastRejected };
    return out;
  }

  /** Connects and keeps reconnecting until stop(). */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#backoff.reset();
    this.#connect();
  }

  /** Closes the stream; resolves once no apply is running any more. */
  async stop(): Promise<void> {
    this.#running = false;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    const call = this.#call;
    this.#call = undefined;
    call?.cancel();
    this.#client?.close();
    this.#client = undefined;
    this.#markDisconnected('client stopped');
    await this.#applying;
  }

  #connect(): void {
    this.#retryTimer = undefined;
    if (!this.#running) return;
    this.#client?.close();
    const ServiceClient = discoveryService();
    // A fresh channel with its own subchannel per attempt: the shared pool would
    // reuse a subchannel still inside grpc's own (much longer) reconnect backoff.
    const client = new ServiceClient(this.#options.address, this.#options.credentials ?? grpc.credentials.createInsecure(), {
      'grpc.use_local_subchannel_pool': 1,
      'grpc.max_receive_message_length': MAX_RECEIVE_BYTES,
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
    });
    const call = client.StreamResources();
    this.#client = client;
    this.#call = call;
    let answered = false;

    call.on('data', (response: WireDiscoveryResponse) => {
      if (call !== this.#call) return;
      if (!answered) {
        answered = true;
        this.#backoff.reset();
        this.#state.connected = true;
        this.#state.lastError = undefined;
        this.#log.info({ address: this.#options.address }, 'connected to control plane');
        this.emit('connected');
      }
      this.#applying = this.#applying
        .then(() => this.#handle(call, response))
        .catch((error: unknown) => this.#log.error({ err: error }, 'discovery event listener failed'));
    });
    // The 'status' event carries the outcome; an 'error' listener only keeps it from being thrown.
    call.on('error', () => {});
    call.on('status', (status: grpc.StatusObject) => this.#onStreamEnd(call, status));
    call.write({ node: nodeToWire(this.#options.node), versionInfo: this.#state.version, responseNonce: '' });
  }

  async #handle(call: DiscoveryClientStream, response: WireDiscoveryResponse): Promise<void> {
    let update: ConfigUpdate;
    try {
      update = toConfigUpdate(response);
      await this.#options.apply(update);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      this.#reject(call, response, message);
      return;
    }
    // The proxy now runs this config even if the stream died during the apply.
    this.#state.version = update.version;
    if (call === this.#call) call.write({ versionInfo: update.version, responseNonce: update.nonce });
    if (this.#log.isLevelEnabled('debug')) {
      this.#log.debug({ version: update.version, full: update.full, upserts: update.upserts.length, removes: update.removes.length }, 'applied config');
    }
    this.emit('applied', update.version);
  }

  #reject(call: DiscoveryClientStream, response: WireDiscoveryResponse, message: string): void {
    const version = response.versionInfo;
    this.#state.lastRejected = { version, message };
    this.#log.warn({ version, reason: message, keeps: this.#state.version }, 'rejected config from control plane (NACK)');
    if (call === this.#call) {
      call.write({
        versionInfo: this.#state.version,
        responseNonce: response.nonce,
        errorDetail: { code: grpc.status.INVALID_ARGUMENT, message },
      });
    }
    this.emit('rejected', version, message);
  }

  #onStreamEnd(call: DiscoveryClientStream, status: grpc.StatusObject): void {
    if (call !== this.#call) return;
    this.#call = undefined;
    const reason = status.code === grpc.status.OK
      ? 'control plane ended the stream'
      : `${grpc.status[status.code] ?? status.code}: ${status.details}`;
    this.#state.lastError = reason;
    if (this.#state.connected) this.#log.warn({ reason }, 'lost control plane; keeping last good config');
    else this.#log.debug({ reason }, 'control plane not reachable');
    this.#markDisconnected(reason);
    if (!this.#running) return;
    const delay = this.#backoff.next();
    this.#retryTimer = setTimeout(() => this.#connect(), delay);
  }

  #markDisconnected(reason: string): void {
    if (!this.#state.connected) return;
    this.#state.connected = false;
    this.emit('disconnected', reason);
  }
}
