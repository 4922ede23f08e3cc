// The proxy's end of the discovery stream. It applies each push atomically (or
// not at all) through the proxy's `apply`, answers with ACK or NACK, and when the
// control plane goes away it keeps the proxy on its last good config and
// reconnects with jittered backoff; the first push on a new stream is full-state.
// The stream is standard gRPC, spoken by discovery-grpc-call.ts over node:http2
// with the hand-written messages of discovery-protobuf.ts: a sidecar does not
// load grpc-js, proto-loader and protobufjs (measured in BENCHMARKS.md).
import { EventEmitter } from 'node:events';
import type { SecureClientSessionOptions } from 'node:http2';
import pino from 'pino';
import type { Logger } from 'pino';
import type { ConfigUpdate, ProxyNode } from '../../core/model/proxy-config.ts';
import type { WireDiscoveryResponse } from '../../core/discovery/discovery-protocol.ts';
import { FullJitterBackoff } from './discovery-backoff.ts';
import { GRPC_STATUS, GRPC_STATUS_NAMES, GrpcBidiCall } from './discovery-grpc-call.ts';
import type { GrpcStatus } from './discovery-grpc-call.ts';
import { decodeDiscoveryResponse, encodeDiscoveryRequest } from './discovery-protobuf.ts';
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
  /**
   * TLS for the discovery connection (ca, cert, key, checkServerIdentity); absent = plaintext, for the local-only port.
   * A function is called at each (re)connect, so a rotated certificate or a pushed root is used from the next connection on.
   */
  tls?: SecureClientSessionOptions | (() => SecureClientSessionOptions);
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
const STREAM_PATH = '/jibe.discovery.v1.AggregatedDiscovery/StreamResources';
const KEEPALIVE_MS = 30_000;
const KEEPALIVE_TIMEOUT_MS = 10_000;
// grpc-js's minimum connect timeout: a blackholed control plane must not stall the reconnect loop.
const CONNECT_TIMEOUT_MS = 20_000;
const USER_AGENT = 'jibe-proxy/0.1.0';

/** Events: 'connected', 'disconnected'(reason), 'applied'(version), 'rejected'(version, message). */
export class DiscoveryClient extends EventEmitter {
  readonly #options: DiscoveryClientOptions;
  readonly #log: Logger;
  readonly #backoff: FullJitterBackoff;
  #state: DiscoveryClientState = { connected: false, version: '' };
  #running = false;
  #call: GrpcBidiCall | undefined;
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
    this.#markDisconnected('client stopped');
    await this.#applying;
  }

  #connect(): void {
    this.#retryTimer = undefined;
    if (!this.#running) return;
    let answered = false;
    // A fresh connection per attempt (grpc's use_local_subchannel_pool): nothing
    // inherits a transport still inside its own reconnect backoff.
    const call: GrpcBidiCall = new GrpcBidiCall({
      address: this.#options.address,
      path: STREAM_PATH,
      tls: typeof this.#options.tls === 'function' ? this.#options.tls() : this.#options.tls,
      maxReceiveBytes: MAX_RECEIVE_BYTES,
      keepaliveMs: KEEPALIVE_MS,
      keepaliveTimeoutMs: KEEPALIVE_TIMEOUT_MS,
      connectTimeoutMs: CONNECT_TIMEOUT_MS,
      userAgent: USER_AGENT,
      onMessage: (message) => {
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
          .then(() => this.#handle(call, message))
          .catch((error: unknown) => this.#log.error({ err: error }, 'discovery event listener failed'));
      },
      onStatus: (status) => this.#onStreamEnd(call, status),
    });
    this.#call = call;
    const node = this.#options.node;
    call.write(encodeDiscoveryRequest({
      node: { id: node.id, type: node.type, namespace: node.namespace, workload: node.workload, platform: node.platform, labels: node.labels, version: node.version },
      versionInfo: this.#state.version,
      responseNonce: '',
    }));
  }

  async #handle(call: GrpcBidiCall, message: Buffer): Promise<void> {
    let response: WireDiscoveryResponse;
    try {
      response = decodeDiscoveryResponse(message);
    } catch (error) {
      // Without a nonce there is nothing to NACK: the stream itself is broken, so start a new one.
      const reason = `undecodable DiscoveryResponse: ${error instanceof Error ? error.message : String(error)}`;
      call.cancel();
      this.#onStreamEnd(call, { code: GRPC_STATUS.INTERNAL, details: reason });
      return;
    }
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
    if (call === this.#call) call.write(encodeDiscoveryRequest({ versionInfo: update.version, responseNonce: update.nonce }));
    if (this.#log.isLevelEnabled('debug')) {
      this.#log.debug({ version: update.version, full: update.full, upserts: update.upserts.length, removes: update.removes.length }, 'applied config');
    }
    this.emit('applied', update.version);
  }

  #reject(call: GrpcBidiCall, response: WireDiscoveryResponse, message: string): void {
    const version = response.versionInfo;
    this.#state.lastRejected = { version, message };
    this.#log.warn({ version, reason: message, keeps: this.#state.version }, 'rejected config from control plane (NACK)');
    if (call === this.#call) {
      call.write(encodeDiscoveryRequest({
        versionInfo: this.#state.version,
        responseNonce: response.nonce,
        errorDetail: { code: GRPC_STATUS.INVALID_ARGUMENT, message },
      }));
    }
    this.emit('rejected', version, message);
  }

  #onStreamEnd(call: GrpcBidiCall, status: GrpcStatus): void {
    if (call !== this.#call) return;
    this.#call = undefined;
    const reason = status.code === GRPC_STATUS.OK
      ? 'control plane ended the stream'
      : `${GRPC_STATUS_NAMES[status.code] ?? status.code}: ${status.details}`;
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
