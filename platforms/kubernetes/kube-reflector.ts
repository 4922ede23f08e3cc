// List-then-watch for one collection, as client-go's reflector: the cache is
// filled by a list, kept current by a watch resumed from the last seen
// resourceVersion, and rebuilt by a relist when the API server answers 410
// Gone (history compacted). A relist is diffed against the cache, so a delete
// missed while disconnected still reaches the listener. A watch that goes
// silent past its deadline (a half-open connection) is dropped and resumed.
import type { Logger } from 'pino';
import { KubeApiError } from './kube-client.ts';
import type { KubeClient, WatchEvent } from './kube-client.ts';
import { objectKey } from './kube-types.ts';
import type { KubeObject } from './kube-types.ts';

export type ReflectorChange<T> = { type: 'upsert'; object: T; old: T | undefined } | { type: 'delete'; object: T };

export interface ReflectorOptions {
  /** Server-side watch length; the server ends the stream after it and we resume. */
  watchTimeoutSeconds?: number;
  /** No byte for this long = stalled; defaults to the watch timeout plus 30 s. */
  idleTimeoutMs?: number;
  /** Reconnect backoff bounds (jittered, doubling). */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  labelSelector?: string;
  logger?: Logger;
}

class GoneError extends Error {}

export class KubeReflector<T extends KubeObject> {
  readonly path: string;
  readonly cache = new Map<string, T>();
  private readonly client: KubeClient;
  private readonly onChanges: (changes: ReflectorChange<T>[]) => void;
  private readonly options: Required<Omit<ReflectorOptions, 'logger' | 'labelSelector'>> & Pick<ReflectorOptions, 'logger' | 'labelSelector'>;
  private resourceVersion = '';
  private abort: AbortController | undefined;
  private stopped = false;
  private loop: Promise<void> | undefined;
  private backoffMs: number;
  /** Counts relists, for tests and status: a 410 shows up here. */
  relists = 0;
  /** Counts watch (re)connections. */
  watches = 0;

  constructor(client: KubeClient, path: string, onChanges: (changes: ReflectorChange<T>[]) => void, options: ReflectorOptions = {}) {
    this.client = client;
    this.path = path;
    this.onChanges = onChanges;
    const watchTimeoutSeconds = options.watchTimeoutSeconds ?? 300;
    this.options = {
      watchTimeoutSeconds,
      idleTimeoutMs: options.idleTimeoutMs ?? watchTimeoutSeconds * 1000 + 30_000,
      minBackoffMs: options.minBackoffMs ?? 200,
      maxBackoffMs: options.maxBackoffMs ?? 10_000,
      labelSelector: options.labelSelector,
      logger: options.logger,
    };
    this.backoffMs = this.options.minBackoffMs;
  }

  /**
   * Lists once (the cache is full when this resolves) and keeps watching in
   * the background. A first list refused for lack of rights or a missing API
   * fails here, where the operator sees it; anything transient is retried.
   */
  async start(): Promise<void> {
    for (;;) {
      try {
        await this.relist();
        break;
      } catch (err) {
        if (err instanceof KubeApiError && [401, 403, 404].includes(err.status)) throw err;
        if (this.stopped) return;
        this.options.logger?.warn({ err: (err as Error).message, path: this.path }, 'listing failed; retrying');
        await this.sleep();
      }
    }
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort?.abort();
    await this.loop;
  }

  get lastResourceVersion(): string {
    return this.resourceVersion;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        if (!this.resourceVersion) await this.relist();
        this.abort = new AbortController();
        this.watches++;
        await this.client.watch<T>(
          this.path,
          {
            resourceVersion: this.resourceVersion,
            allowWatchBookmarks: true,
            timeoutSeconds: this.options.watchTimeoutSeconds,
            labelSelector: this.options.labelSelector,
          },
          (event) => this.handle(event),
          { signal: this.abort.signal, idleTimeoutMs: this.options.idleTimeoutMs },
        );
      } catch (err) {
        if (this.stopped) break;
        if (err instanceof GoneError || (err instanceof KubeApiError && err.status === 410)) {
          this.options.logger?.info({ path: this.path }, 'watch history expired (410 Gone); relisting');
          this.resourceVersion = '';
          continue;
        }
        this.options.logger?.warn({ err: (err as Error).message, path: this.path, retryInMs: this.backoffMs }, 'watch failed; resuming');
        await this.sleep();
      }
    }
  }

  private handle(event: WatchEvent<T>): void {
    const obj = event.object;
    switch (event.type) {
      case 'ADDED':
      case 'MODIFIED': {
        const key = objectKey(obj);
        const old = this.cache.get(key);
        this.cache.set(key, obj);
        this.onChanges([{ type: 'upsert', object: obj, old }]);
        break;
      }
      case 'DELETED': {
        const key = objectKey(obj);
        if (this.cache.delete(key)) this.onChanges([{ type: 'delete', object: obj }]);
        break;
      }
      case 'BOOKMARK':
        break;
      case 'ERROR': {
        const status = obj as unknown as { code?: number; message?: string };
        if (status.code === 410) throw new GoneError(status.message ?? 'gone');
        throw new KubeApiError(status.code ?? 0, `watch ${this.path}: ${status.message ?? 'error event'}`);
      }
    }
    // A healthy event resets the backoff: the next failure starts small again.
    this.backoffMs = this.options.minBackoffMs;
    const rv = obj?.metadata?.resourceVersion;
    if (rv) this.resourceVersion = rv;
  }

  /** Replaces the cache with a fresh list and reports the difference. */
  private async relist(): Promise<void> {
    const { items, resourceVersion } = await this.client.list<T>(this.path, { labelSelector: this.options.labelSelector });
    this.relists++;
    const changes: ReflectorChange<T>[] = [];
    const seen = new Set<string>();
    for (const item of items) {
      const key = objectKey(item);
      seen.add(key);
      const old = this.cache.get(key);
      if (!old || old.metadata.resourceVersion !== item.metadata.resourceVersion) changes.push({ type: 'upsert', object: item, old });
      this.cache.set(key, item);
    }
    for (const [key, old] of this.cache) {
      if (!seen.has(key)) {
        this.cache.delete(key);
        changes.push({ type: 'delete', object: old });
      }
    }
    this.resourceVersion = resourceVersion;
    if (changes.length) this.onChanges(changes);
  }

  private sleep(): Promise<void> {
    const ms = this.backoffMs * (0.5 + Math.random() / 2);
    this.backoffMs = Math.min(this.backoffMs * 2, this.options.maxBackoffMs);
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.abort = new AbortController();
      this.abort.signal.addEventListener('abort', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
