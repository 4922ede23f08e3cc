// A small Consul HTTP API client on Node's fetch. Plain fetch rather than the
// `consul` npm package: blocking queries must be abortable the moment the
// control plane stops (AbortSignal), the registry needs `X-Consul-Index` of
// every answer, and a rolled-back transaction's 409 body says which operation
// failed; fetch gives all three directly, with no extra layer on the hot path.
import { JibeError } from '../../core/errors/errors.ts';

export interface ConsulConnection {
  /** `http://127.0.0.1:8500`; a bare `host:port` gets `http://`. Default: CONSUL_HTTP_ADDR, else 127.0.0.1:8500. */
  address?: string;
  /** ACL token sent as `X-Consul-Token`. Default: CONSUL_HTTP_TOKEN. */
  token?: string;
  /** Datacenter queries go to when they name none (the agent's own by default). */
  datacenter?: string;
}

export interface ConsulRequest {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  signal?: AbortSignal;
  /** Overrides the client's token (the ACL authenticator checks a workload's token). */
  token?: string;
  /** Statuses returned to the caller instead of thrown (e.g. 404 for a missing key, 409 for a failed transaction). */
  accept?: number[];
  /** Give up after this long; blocking queries pass their wait plus a margin. */
  timeoutMs?: number;
}

export interface ConsulResponse<T> {
  status: number;
  body: T;
  /** `X-Consul-Index`: the raft index a blocking query waits beyond. */
  index: number | undefined;
}

const DEFAULT_TIMEOUT_MS = 10_000;

export function consulAddress(address = process.env.CONSUL_HTTP_ADDR ?? '127.0.0.1:8500'): string {
  const withScheme = /^[a-z]+:\/\//i.test(address) ? address : `http://${address}`;
  return withScheme.replace(/\/+$/, '');
}

export class ConsulClient {
  readonly address: string;
  readonly datacenter: string | undefined;
  private readonly token: string | undefined;

  constructor(connection: ConsulConnection = {}) {
    this.address = consulAddress(connection.address);
    this.token = connection.token ?? (process.env.CONSUL_HTTP_TOKEN || undefined);
    this.datacenter = connection.datacenter;
  }

  async request<T>(method: string, path: string, options: ConsulRequest = {}): Promise<ConsulResponse<T>> {
    const url = new URL(this.address + path);
    const query = { ...options.query };
    if (this.datacenter !== undefined && query.dc === undefined && !path.startsWith('/v1/agent/')) query.dc = this.datacenter;
    for (const [k, v] of Object.entries(query)) {
      if (v === undefined || v === false) continue;
      url.searchParams.set(k, v === true ? '' : String(v));
    }
    const headers: Record<string, string> = {};
    const token = options.token ?? this.token;
    if (token) headers['x-consul-token'] = token;
    let body: string | undefined;
    if (options.body !== undefined) {
      body = typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
      headers['content-type'] = 'application/json';
    }
    const timeout = AbortSignal.timeout(options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    let response: Response;
    let text: string;
    try {
      response = await fetch(url, { method, headers, body, signal });
      text = await response.text();
    } catch (err) {
      if (options.signal?.aborted) throw err;
      const reason = timeout.aborted ? `no answer within ${options.timeoutMs ?? DEFAULT_TIMEOUT_MS} ms` : describeFetchError(err);
      const error = new JibeError('JIBE_ERR_CONSUL', `Consul at ${this.address} could not be reached (${method} ${path}): ${reason}`, {
        hint: 'check that the Consul agent runs and --consul-address points at its HTTP API',
      });
      error.cause = err;
      throw error;
    }
    if (!response.ok && !options.accept?.includes(response.status)) {
      throw new JibeError('JIBE_ERR_CONSUL', `Consul refused ${method} ${path}: HTTP ${response.status} ${text.trim().slice(0, 300)}`, {
        hint: response.status === 403 || response.status === 401 ? 'the Consul token lacks a permission; see the minimal ACL policy in platforms/consul/README.md' : undefined,
      });
    }
    const indexHeader = response.headers.get('x-consul-index');
    const index = indexHeader === null ? undefined : Number(indexHeader);
    return { status: response.status, body: parseBody(text) as T, index: Number.isFinite(index) ? index : undefined };
  }

  get<T>(path: string, options?: ConsulRequest): Promise<ConsulResponse<T>> {
    return this.request<T>('GET', path, options);
  }

  put<T>(path: string, body?: unknown, options?: ConsulRequest): Promise<ConsulResponse<T>> {
    return this.request<T>('PUT', path, { ...options, body });
  }

  /**
   * A blocking query: answers when the data changed past `index`, or after
   * `waitMs` with the same index. The request timeout leaves room for Consul's
   * own jitter (it adds up to wait/16).
   */
  blockingGet<T>(path: string, index: number, waitMs: number, options: ConsulRequest = {}): Promise<ConsulResponse<T>> {
    return this.get<T>(path, {
      ...options,
      query: { ...options.query, index: index > 0 ? index : undefined, wait: index > 0 ? `${Math.ceil(waitMs / 1000)}s` : undefined },
      timeoutMs: waitMs + Math.ceil(waitMs / 16) + 5_000,
    });
  }
}

function parseBody(text: string): unknown {
  if (text === '') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function describeFetchError(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (err as Error).message;
}

/** Consul percent-decodes paths; each segment of a name is escaped so a name can never reach another endpoint. */
export function pathSegment(value: string): string {
  return encodeURIComponent(value);
}
