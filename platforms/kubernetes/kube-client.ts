// A small Kubernetes API client: one HTTPS agent for every call, JSON in and
// out, streaming watches. Credentials come from @kubernetes/client-node's
// KubeConfig (kubeconfig files, in-cluster service account, exec plugins), so
// anything kubectl can reach, Jibe can; the calls themselves are plain HTTP
// because the mesh needs a few generic verbs (server-side apply, dry-run,
// watch with bookmarks) on many kinds, CRDs included, not a typed client each.
import https from 'node:https';
import http from 'node:http';
import { JibeError } from '../../core/errors/errors.ts';
import type { KubeObject, KubeList } from './kube-types.ts';

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

export interface WatchEvent<T = KubeObject> {
  type: WatchEventType;
  object: T;
}

export interface RequestOptions {
  body?: unknown;
  query?: Record<string, string | number | boolean | undefined>;
  contentType?: string;
  signal?: AbortSignal;
}

/** An error answer from the API server; `status` and `reason` are the API's own. */
export class KubeApiError extends JibeError {
  readonly status: number;
  readonly reason: string | undefined;
  /** The API's Status object, when it sent one (its `details.causes` name fields). */
  readonly apiStatus: KubeStatus | undefined;

  constructor(status: number, message: string, apiStatus?: KubeStatus, hint?: string) {
    super('JIBE_ERR_KUBERNETES', message, { hint });
    this.status = status;
    this.reason = apiStatus?.reason;
    this.apiStatus = apiStatus;
  }
}

export interface KubeStatus {
  kind?: 'Status';
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
  details?: { name?: string; kind?: string; causes?: Array<{ field?: string; message?: string; reason?: string }> };
}

/** Connection settings: what a KubeConfig resolves to. */
export interface KubeConnection {
  server: string;
  ca?: string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
  token?: string;
  insecureSkipTlsVerify?: boolean;
}

export class KubeClient {
  readonly server: string;
  private readonly agent: http.Agent;
  private readonly headers: Record<string, string>;
  private readonly auth: string | undefined;
  private readonly requestTimeoutMs: number;

  constructor(connection: KubeConnection, options: { requestTimeoutMs?: number; auth?: string; headers?: Record<string, string> } = {}) {
    this.server = connection.server.replace(/\/+$/, '');
    const secure = this.server.startsWith('https:');
    // Watches hold a socket each for minutes; keep-alive serves the short calls.
    const agentOptions = { keepAlive: true, maxSockets: Infinity, maxFreeSockets: 16 };
    this.agent = secure
      ? new https.Agent({ ...agentOptions, ca: connection.ca, cert: connection.cert, key: connection.key, rejectUnauthorized: connection.insecureSkipTlsVerify !== true })
      : new http.Agent(agentOptions);
    this.headers = { Accept: 'application/json', 'User-Agent': 'jibe/0.1.0', ...options.headers };
    if (connection.token) this.headers.Authorization = `Bearer ${connection.token}`;
    this.auth = options.auth;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
  }

  /**
   * A client for a kubeconfig file (or, without one, `$KUBECONFIG`, `~/.kube/config`,
   * or the in-cluster service account), through @kubernetes/client-node.
   */
  static async load(options: { kubeconfig?: string; context?: string } = {}): Promise<KubeClient> {
    const { KubeConfig } = await import('@kubernetes/client-node');
    const kc = new KubeConfig();
    try {
      if (options.kubeconfig) kc.loadFromFile(options.kubeconfig);
      else kc.loadFromDefault();
      if (options.context) kc.setCurrentContext(options.context);
    } catch (err) {
      throw new JibeError('JIBE_ERR_KUBERNETES', `cannot load the Kubernetes configuration${options.kubeconfig ? ` from ${options.kubeconfig}` : ''}: ${(err as Error).message}`, {
        file: options.kubeconfig,
        hint: 'pass --kubeconfig <file>, set KUBECONFIG, or run inside a cluster',
      });
    }
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new JibeError('JIBE_ERR_KUBERNETES', 'the Kubernetes configuration names no current cluster', { hint: 'set a current context (kubectl config use-context …)' });
    const opts: https.RequestOptions & { headers?: Record<string, string> } = { headers: {} };
    await kc.applyToHTTPSOptions(opts);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(opts.headers ?? {})) if (typeof v === 'string') headers[k] = v;
    return new KubeClient(
      { server: cluster.server, ca: opts.ca as string | undefined, cert: opts.cert as string | undefined, key: opts.key as string | undefined, insecureSkipTlsVerify: cluster.skipTLSVerify },
      { headers, auth: typeof opts.auth === 'string' ? opts.auth : undefined },
    );
  }

  close(): void {
    this.agent.destroy();
  }

  /** One call; resolves with the parsed body, rejects with KubeApiError on a non-2xx answer. */
  async request<T = unknown>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const { status, body } = await this.send(method, path, options);
    const parsed = body.length ? parseJson(body) : undefined;
    if (status >= 200 && status < 300) return parsed as T;
    throw apiError(method, path, status, parsed, body);
  }

  /** GET that answers undefined for 404 instead of throwing. */
  async get<T = KubeObject>(path: string): Promise<T | undefined> {
    try {
      return await this.request<T>('GET', path);
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 404) return undefined;
      throw err;
    }
  }

  /** Every item of a collection, following `continue` pages; returns the list's resourceVersion. */
  async list<T extends KubeObject>(path: string, query: RequestOptions['query'] = {}, pageSize = 500): Promise<{ items: T[]; resourceVersion: string }> {
    const items: T[] = [];
    let token: string | undefined;
    let resourceVersion = '';
    do {
      const page = await this.request<KubeList<T>>('GET', path, { query: { ...query, limit: pageSize, continue: token } });
      for (const item of page.items ?? []) items.push(item);
      resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
      token = page.metadata?.continue || undefined;
    } while (token);
    return { items, resourceVersion };
  }

  /** Server-side apply of one object as `fieldManager` (`force` takes fields other managers own). */
  apply<T extends KubeObject>(path: string, object: T, options: { fieldManager: string; force?: boolean; dryRun?: boolean }): Promise<T> {
    return this.request<T>('PATCH', path, {
      body: object,
      contentType: 'application/apply-patch+yaml',
      query: { fieldManager: options.fieldManager, force: options.force ? true : undefined, dryRun: options.dryRun ? 'All' : undefined },
    });
  }

  /**
   * Streams a watch: `onEvent` is called for each event in order. Resolves when
   * the server ends the stream (its timeout) or `signal` aborts; rejects on an
   * HTTP error or when no byte arrived for `idleTimeoutMs` (a stalled watch: a
   * half-open connection never ends by itself).
   */
  watch<T = KubeObject>(path: string, query: RequestOptions['query'], onEvent: (event: WatchEvent<T>) => void, options: { signal?: AbortSignal; idleTimeoutMs?: number } = {}): Promise<void> {
    return new Promise((resolve, reject) => {
      const url = this.url(path, { ...query, watch: true });
      const req = this.transport(url).request(url, { method: 'GET', agent: this.agent, headers: this.headers, auth: this.auth });
      let idle: ReturnType<typeof setTimeout> | undefined;
      let settled = false;
      const finish = (err?: Error) => {
        if (settled) return;
        settled = true;
        if (idle) clearTimeout(idle);
        options.signal?.removeEventListener('abort', onAbort);
        req.destroy();
        if (err) reject(err);
        else resolve();
      };
      const armIdle = () => {
        if (!options.idleTimeoutMs) return;
        if (idle) clearTimeout(idle);
        idle = setTimeout(() => finish(new WatchStalledError(path, options.idleTimeoutMs!)), options.idleTimeoutMs);
      };
      const onAbort = () => finish();
      if (options.signal?.aborted) return finish();
      options.signal?.addEventListener('abort', onAbort, { once: true });
      armIdle();
      req.on('error', (err) => finish(err));
      req.on('response', (res) => {
        if (res.statusCode !== 200) {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString();
            finish(apiError('WATCH', path, res.statusCode ?? 0, parseJson(text), text));
          });
          res.on('error', (err) => finish(err));
          return;
        }
        let buffered = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          armIdle();
          buffered += chunk;
          let newline: number;
          while ((newline = buffered.indexOf('\n')) >= 0) {
            const line = buffered.slice(0, newline);
            buffered = buffered.slice(newline + 1);
            if (!line.trim()) continue;
            let event: WatchEvent<T>;
            try {
              event = JSON.parse(line) as WatchEvent<T>;
            } catch {
              finish(new KubeApiError(0, `watch ${path}: the API server sent a line that is not JSON`));
              return;
            }
            try {
              onEvent(event);
            } catch (err) {
              finish(err as Error);
              return;
            }
          }
        });
        res.on('end', () => finish());
        res.on('aborted', () => finish(new KubeApiError(0, `watch ${path}: the connection was cut`)));
        res.on('error', (err) => finish(err));
      });
      req.end();
    });
  }

  private send(method: string, path: string, options: RequestOptions): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const url = this.url(path, options.query);
      const payload = options.body === undefined ? undefined : typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
      const headers: Record<string, string | number> = { ...this.headers };
      if (payload !== undefined) {
        headers['Content-Type'] = options.contentType ?? 'application/json';
        headers['Content-Length'] = Buffer.byteLength(payload);
      }
      const req = this.transport(url).request(url, { method, agent: this.agent, headers, auth: this.auth, signal: options.signal, timeout: this.requestTimeoutMs });
      req.on('timeout', () => req.destroy(new KubeApiError(0, `${method} ${path}: no answer from the API server within ${this.requestTimeoutMs} ms`)));
      req.on('error', (err: Error & { code?: string }) => {
        if (err instanceof KubeApiError) return reject(err);
        reject(new KubeApiError(0, `${method} ${path}: cannot reach the API server at ${this.server}: ${err.message}`, undefined, 'check that the cluster is up and the kubeconfig points at it'));
      });
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      });
      req.end(payload);
    });
  }

  private url(path: string, query: RequestOptions['query'] = {}): URL {
    const url = new URL(this.server + path);
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== '') url.searchParams.set(k, String(v));
    return url;
  }

  private transport(url: URL): typeof https | typeof http {
    return url.protocol === 'https:' ? https : http;
  }
}

/** A watch that went silent for longer than its idle limit; the reflector restarts it. */
export class WatchStalledError extends Error {
  constructor(path: string, ms: number) {
    super(`watch ${path}: nothing received for ${ms} ms`);
    this.name = 'WatchStalledError';
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function apiError(method: string, path: string, status: number, parsed: unknown, raw: string): KubeApiError {
  const s = (parsed && typeof parsed === 'object' ? parsed : undefined) as KubeStatus | undefined;
  const message = s?.message ?? (raw.trim().slice(0, 300) || `HTTP ${status}`);
  const hint =
    status === 401 ? 'the credentials were refused; check the kubeconfig user' :
    status === 403 ? 'the identity lacks RBAC permission for this; check the ClusterRole bindings (jibe check lists them)' :
    undefined;
  return new KubeApiError(status, `${method} ${path}: ${status}${s?.reason ? ` ${s.reason}` : ''}: ${message}`, s, hint);
}

/** API paths: `/api/v1/...` for the core group, `/apis/<group>/<version>/...` otherwise. */
export function kubePath(apiVersion: string, plural: string, namespace?: string, name?: string): string {
  const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  return `${base}${namespace ? `/namespaces/${encodeURIComponent(namespace)}` : ''}/${plural}${name ? `/${encodeURIComponent(name)}` : ''}`;
}
