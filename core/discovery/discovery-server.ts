// The control plane's end of the discovery stream: accepts one bidirectional
// stream per proxy, sends each its full config on connect, then pushes only what
// changed, debounced, one push in flight per proxy (see discovery-subscriber.ts).
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import type { Logger } from 'pino';
import { JibeError } from '../errors/errors.ts';
import { discoveryService, nodeFromWire } from './discovery-protocol.ts';
import type { DiscoveryServerStream, WireDiscoveryRequest } from './discovery-protocol.ts';
import type { DiscoveryObserver } from './discovery-observer.ts';
import { DiscoverySubscriber } from './discovery-subscriber.ts';
import type { ConfigSource, ProxyStatus } from './discovery-subscriber.ts';
import { PushDebouncer } from './push-debouncer.ts';
import { peerSpiffeId } from './discovery-tls.ts';
import type { ProxyNode } from '../model/proxy-config.ts';

export type { ConfigSource, ProxyStatus } from './discovery-subscriber.ts';

export interface DiscoveryServerOptions {
  source: ConfigSource;
  /** Quiet period after a change before pushing (default 50). */
  debounceMs?: number;
  /** Longest a change waits for its push, however busy the mesh (default 300). */
  maxDebounceMs?: number;
  /**
   * How many change rounds a proxy may fall behind while its previous push is
   * unanswered or unwritten (default 32). Past it the stream is closed with
   * RESOURCE_EXHAUSTED; the proxy reconnects and gets a full snapshot.
   */
  queueLimit?: number;
  /** How long a push may go unanswered before the stream is reset (default 10000). */
  ackTimeoutMs?: number;
  /**
   * Streams on a TLS port: why the presented identity may not subscribe as
   * `node` (the stream is refused with PERMISSION_DENIED), or undefined.
   */
  authorizeNode?: (node: ProxyNode, spiffeId: string | undefined) => string | undefined;
  /** Told about every push and answer (the control plane's metrics). */
  observer?: DiscoveryObserver;
  logger?: Logger;
}

// Rebuilding configs for thousands of proxies is CPU work: hand the event loop
// back this often so ACKs, health checks and new streams are not starved.
const ROUND_SLICE_MS = 10;
const SHUTDOWN_GRACE_MS = 2000;

export class DiscoveryServer {
  readonly #source: ConfigSource;
  readonly #queueLimit: number;
  readonly #ackTimeoutMs: number;
  readonly #log: Logger;
  readonly #authorizeNode: DiscoveryServerOptions['authorizeNode'];
  readonly #observer: DiscoveryObserver | undefined;
  readonly #debouncer: PushDebouncer;
  readonly #subscribers = new Map<string, DiscoverySubscriber>();
  readonly #noncePrefix = randomBytes(4).toString('hex');
  #nonceCounter = 0;
  #server: grpc.Server | undefined;
  #unsubscribe: (() => void) | undefined;
  #roundRunning = false;
  #roundAgain = false;
  #closing = false;
  /** performance.now() of the oldest change no round has taken yet (convergence time starts there). */
  #changedAt: number | undefined;

  constructor(options: DiscoveryServerOptions) {
    this.#source = options.source;
    this.#queueLimit = options.queueLimit ?? 32;
    this.#ackTimeoutMs = options.ackTimeoutMs ?? 10_000;
    this.#log = options.logger ?? pino({ level: 'silent' });
    this.#authorizeNode = options.authorizeNode;
    this.#observer = options.observer;
    if (!(this.#queueLimit >= 0)) throw new RangeError('queueLimit must be a non-negative number');
    if (!(this.#ackTimeoutMs > 0)) throw new RangeError('ackTimeoutMs must be a positive number');
    this.#debouncer = new PushDebouncer(this.#runRound, options.debounceMs ?? 50, options.maxDebounceMs ?? 300);
  }

  /**
   * Starts serving on host:port and returns the bound port (port 0 picks one).
   * Credentials default to plaintext, for the local-only port.
   */
  async listen(host: string, port: number, credentials: grpc.ServerCredentials = grpc.ServerCredentials.createInsecure()): Promise<number> {
    if (this.#server) throw new Error('DiscoveryServer is already listening');
    if (this.#closing) throw new Error('DiscoveryServer is closed');
    const server = new grpc.Server({
      // Find proxies that vanished without closing their connection (VM powered off).
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
    });
    server.addService(discoveryService().service, { StreamResources: this.#handleStream });
    const address = host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
    let bound: number;
    try {
      bound = await new Promise<number>((resolve, reject) => {
        server.bindAsync(address, credentials, (error, boundPort) => (error ? reject(error) : resolve(boundPort)));
      });
    } catch (error) {
      server.forceShutdown();
      const message = error instanceof Error ? error.message : String(error);
      if (message.includes('EADDRINUSE')) {
        throw new JibeError('JIBE_ERR_PORT_IN_USE', `discovery port ${address} is already in use`, {
          hint: 'stop the process holding it or choose another discovery port',
        });
      }
      throw new Error(`discovery server cannot listen on ${address}: ${message}`, { cause: error });
    }
    this.#server = server;
    this.#unsubscribe = this.#source.onChange(this.#onMeshChanged);
    this.#log.info({ address: host, port: bound }, 'discovery server listening');
    return bound;
  }

  /** Serves the same streams on a second port too, e.g. TLS on 15012 beside the local plaintext 15010. */
  async addPort(host: string, port: number, credentials: grpc.ServerCredentials): Promise<number> {
    const server = this.#server;
    if (!server) throw new Error('DiscoveryServer.listen must come before addPort');
    const address = host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
    try {
      return await new Promise<number>((resolve, reject) => server.bindAsync(address, credentials, (error, bound) => (error ? reject(error) : resolve(bound))));
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (message.includes('EADDRINUSE')) throw new JibeError('JIBE_ERR_PORT_IN_USE', `discovery port ${address} is already in use`, { hint: 'stop the process holding it or choose another port' });
      throw new Error(`discovery server cannot listen on ${address}: ${message}`, { cause: error });
    }
  }

  /** One entry per connected proxy. */
  status(): ProxyStatus[] {
    const out: ProxyStatus[] = [];
    for (const subscriber of this.#subscribers.values()) out.push(subscriber.status());
    return out;
  }

  /** Ends every stream (proxies keep their config and reconnect elsewhere or later) and stops the server. */
  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    this.#debouncer.stop();
    for (const subscriber of [...this.#subscribers.values()]) {
      subscriber.close(grpc.status.UNAVAILABLE, 'control plane is shutting down');
    }
    const server = this.#server;
    this.#server = undefined;
    if (!server) return;
    await new Promise<void>((resolve) => {
      // A proxy that stopped reading never lets its stream finish: cut it off.
      const force = setTimeout(() => {
        server.forceShutdown();
        resolve();
      }, SHUTDOWN_GRACE_MS);
      server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
    this.#log.info('discovery server stopped');
  }

  readonly #onMeshChanged = (): void => {
    if (this.#closing) return;
    this.#changedAt ??= performance.now();
    this.#debouncer.trigger();
  };

  readonly #runRound = (): void => {
    this.#pushToAll().catch((error: unknown) => this.#log.error({ err: error }, 'push round failed'));
  };

  async #pushToAll(): Promise<void> {
    if (this.#roundRunning) {
      this.#roundAgain = true;
      return;
    }
    this.#roundRunning = true;
    try {
      do {
        this.#roundAgain = false;
        const changedAt = this.#changedAt;
        this.#changedAt = undefined;
        let sliceStart = performance.now();
        for (const subscriber of [...this.#subscribers.values()]) {
          if (this.#closing) return;
          try {
            subscriber.meshChanged(changedAt);
          } catch (error) {
            this.#log.error({ err: error, node: subscriber.node.id }, 'push failed');
            this.#observer?.pushFailed('internal');
            subscriber.close(grpc.status.INTERNAL, 'control plane failed to push config; reconnect to resync');
          }
          if (performance.now() - sliceStart > ROUND_SLICE_MS) {
            await new Promise<void>((resolve) => setImmediate(resolve));
            sliceStart = performance.now();
          }
        }
      } while (this.#roundAgain && !this.#closing);
    } finally {
      this.#roundRunning = false;
    }
  }

  #nextNonce = (): string => `${this.#noncePrefix}-${++this.#nonceCounter}`;

  #onSubscriberClosed = (subscriber: DiscoverySubscriber, reason: string): void => {
    if (this.#subscribers.get(subscriber.node.id) === subscriber) this.#subscribers.delete(subscriber.node.id);
    this.#log.info({ node: subscriber.node.id, peer: subscriber.peer, reason }, 'proxy disconnected');
  };

  readonly #handleStream = (call: DiscoveryServerStream): void => {
    let subscriber: DiscoverySubscriber | undefined;
    let rejected = false;
    call.on('data', (request: WireDiscoveryRequest) => {
      if (subscriber) {
        subscriber.handleRequest(request);
        return;
      }
      if (rejected) return;
      const node = nodeFromWire(request.node);
      if (typeof node === 'string') {
        rejected = true;
        this.#log.warn({ peer: call.getPeer(), reason: node }, 'rejected discovery stream');
        call.emit('error', Object.assign(new Error(node), { code: grpc.status.INVALID_ARGUMENT, details: node }));
        return;
      }
      const auth = call.getAuthContext();
      if (auth.transportSecurityType === 'ssl' && this.#authorizeNode) {
        const problem = this.#authorizeNode(node, peerSpiffeId(auth.sslPeerCertificate));
        if (problem !== undefined) {
          rejected = true;
          this.#log.warn({ peer: call.getPeer(), node: node.id, reason: problem }, 'refused discovery stream');
          call.emit('error', Object.assign(new Error(problem), { code: grpc.status.PERMISSION_DENIED, details: problem }));
          return;
        }
      }
      if (this.#closing) {
        rejected = true;
        call.emit('error', Object.assign(new Error('control plane is shutting down'), { code: grpc.status.UNAVAILABLE }));
        return;
      }
      subscriber = new DiscoverySubscriber(call, node, {
        source: this.#source,
        queueLimit: this.#queueLimit,
        ackTimeoutMs: this.#ackTimeoutMs,
        logger: this.#log,
        nextNonce: this.#nextNonce,
        onClosed: this.#onSubscriberClosed,
        observer: this.#observer,
      });
      const previous = this.#subscribers.get(node.id);
      // A proxy that restarted, or whose old connection is not yet known dead:
      // the newest stream is the one it listens on.
      this.#subscribers.set(node.id, subscriber);
      previous?.close(grpc.status.ABORTED, `superseded by a newer stream from the same node (${node.id})`);
      this.#log.info({ node: node.id, type: node.type, namespace: node.namespace, peer: subscriber.peer }, 'proxy connected');
      subscriber.start();
    });
    const gone = (reason: string) => () => {
      if (subscriber) subscriber.detach(reason);
      else if (!call.cancelled && !call.destroyed && !call.writableEnded) call.end();
    };
    call.on('end', gone('proxy closed the stream'));
    call.on('cancelled', gone('stream cancelled (proxy went away)'));
    call.on('close', gone('stream closed'));
    call.on('error', (error: Error) => gone(`stream error: ${error.message}`)());
  };
}
