// One request/response exchange through the proxy: the downstream request and
// response, what routing decided, the upstream request, response flags and
// timings. With the request head's strings, the only object the proxy
// allocates per request; handlers are module-level functions that take it.
import type { Cluster } from '../cluster/cluster.ts';
import type { UpstreamHost } from '../cluster/upstream-pool.ts';
import type { ProxyState } from '../config/proxy-state.ts';
import type { Http1Connection } from '../http1/http1-connection-pool.ts';
import type { Http2Stream } from '../http2/http2-stream.ts';
import type { MatchInput } from '../router/route-matcher.ts';
import type { RetryState } from '../resilience/retry-state.ts';
import type { CompiledRoute } from '../router/route-table.ts';
import type { ExchangeTelemetry } from '../telemetry/exchange-telemetry.ts';
import type { Downstream } from './downstream.ts';
import type { ListenerContext } from './listener-context.ts';

export class Exchange implements MatchInput {
  /** The client side: request head and body, response writer. */
  readonly down: Downstream;
  readonly listener: ListenerContext;
  /** The config this request is served with, from start to end. */
  readonly state: ProxyState;
  readonly startTime: number;
  readonly method: string;
  readonly listenerPort: number;
  readonly scheme: string;
  /** Authority the request is for: absolute-form target, else Host. */
  authority = '';
  path = '/';
  /** Query string without `?`, '' when none. */
  query = '';
  /** Whether the request target was in absolute form (explicit proxy use). */
  absoluteForm = false;
  matchedPrefixLength = -1;

  route: CompiledRoute | undefined = undefined;
  /** Index of the weighted cluster chosen on the route. */
  clusterIndex = 0;
  cluster: Cluster | undefined = undefined;
  host: UpstreamHost | undefined = undefined;
  /** The upstream connection carrying this request, until its response is complete or abandoned. */
  upstream: Http1Connection<Exchange> | undefined = undefined;
  /** The HTTP/2 upstream stream carrying this request (http2 clusters), until it closes or is abandoned. */
  upstreamStream: Http2Stream | undefined = undefined;
  upstreamStart = 0;
  /** The request head as written upstream, kept for a retry on a stale keep-alive connection. */
  upstreamHead = '';
  /** The same for HTTP/2 clusters: the head each try's stream is opened with (flat, pseudo-headers first). */
  upstreamH2Head: string[] | undefined = undefined;
  /** HTTP/2 clusters: the upstream's response trailers, held until its stream ends and they are relayed. */
  upstreamTrailers: string[] | undefined = undefined;
  requestId = '';
  /** ResponseFlag bits. */
  flags = 0;
  /** Downstream response headers have been written (by the upstream answer or a local reply). */
  responseStarted = false;
  /** The request has a body (chunked, or a content-length above 0); it is streamed to the upstream. */
  hasBody = false;
  /** The request body came chunked; it is re-framed as chunked upstream. */
  requestChunked = false;
  /** A stale keep-alive connection was already retried once. */
  retried = false;
  /** Retry and mirror bookkeeping (resilience/retry-state.ts), made only when the request needs it. */
  retry: RetryState | undefined = undefined;
  /** A gRPC request (content-type application/grpc*): local replies are gRPC-shaped. */
  grpc = false;
  /** The client's `grpc-timeout` in milliseconds; -1 when it sent none. */
  grpcTimeoutMs = -1;
  /** Some request body bytes went upstream: the attempt can no longer be replayed. */
  bodySent = false;
  /** A WebSocket upgrade forwarded upstream; a 101 answer turns the exchange into a tunnel. */
  upgrade = false;
  /** Set when the exchange is over; late upstream events are ignored. */
  done = false;
  timer: ReturnType<typeof setTimeout> | undefined = undefined;
  /** Headers features add to the upstream's response (CORS, ring-hash cookie), flat [name, value, …]. */
  extraResponseHeaders: string[] | undefined = undefined;

  /** Telemetry (proxy/telemetry): body bytes each way, the gRPC status seen (-1: none), span and peer state when used. */
  requestBytes = 0;
  responseBytes = 0;
  grpcStatus = -1;
  telemetry: ExchangeTelemetry | undefined = undefined;

  private lowerPathCache: string | undefined = undefined;
  private queryCache: Map<string, string> | undefined = undefined;

  constructor(down: Downstream, listener: ListenerContext, state: ProxyState, startTime: number) {
    this.down = down;
    this.listener = listener;
    this.state = state;
    this.startTime = startTime;
    this.method = down.method;
    this.listenerPort = listener.port;
    this.scheme = listener.scheme;
  }

  /**
   * Splits the request target into authority, path and query. Origin-form
   * takes the authority from Host; absolute-form (`GET http://reviews:9080/x`,
   * as apps send to an explicit proxy) carries it in the target, which then
   * wins over Host (RFC 9112 §3.2.2). Returns false for targets the proxy
   * cannot serve (e.g. `https://` absolute-form).
   */
  parseTarget(): boolean {
    const raw = this.down.rawHeaders;
    let host = '';
    let hasBody = false;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i];
      const len = name.length;
      if (len === 4) {
        if (host === '' && name.toLowerCase() === 'host') host = raw[i + 1];
      } else if (len === 14) {
        if (name.toLowerCase() === 'content-length' && raw[i + 1] !== '0') hasBody = true;
      } else if (len === 17) {
        if (name.toLowerCase() === 'transfer-encoding') hasBody = true;
      } else if (len === 12) {
        // content-type and grpc-timeout: both 12 long, so other names cost nothing.
        const lower = name.toLowerCase();
        if (lower === 'content-type') {
          const value = raw[i + 1];
          if (value.length >= 16 && value.slice(0, 16).toLowerCase() === 'application/grpc') this.grpc = true;
        } else if (lower === 'grpc-timeout') {
          this.grpcTimeoutMs = parseGrpcTimeout(raw[i + 1]);
        }
      }
    }
    // HTTP/2 frames a body without a length: a stream not ended by its HEADERS has one.
    this.hasBody = hasBody || !this.down.bodyComplete;
    const url = this.down.target;
    let pathStart = 0;
    if (url.charCodeAt(0) !== 47 /* / */) {
      if (url === '*') {
        this.path = '*';
        this.authority = host;
        return true;
      }
      if (url.length < 8 || url.slice(0, 7).toLowerCase() !== 'http://') return false;
      let end = 7;
      while (end < url.length) {
        const c = url.charCodeAt(end);
        if (c === 47 || c === 63 /* ? */ || c === 35 /* # */) break;
        end++;
      }
      let authority = url.slice(7, end);
      const at = authority.lastIndexOf('@');
      if (at >= 0) authority = authority.slice(at + 1);
      if (authority === '') return false;
      this.authority = authority;
      this.absoluteForm = true;
      pathStart = end;
    } else {
      this.authority = host;
    }
    const q = url.indexOf('?', pathStart);
    if (q < 0) {
      this.path = pathStart === 0 ? url : url.slice(pathStart) || '/';
    } else {
      this.path = url.slice(pathStart, q) || '/';
      this.query = url.slice(q + 1);
    }
    if (this.path.charCodeAt(0) !== 47 && this.path !== '*') this.path = '/' + this.path;
    return true;
  }

  lowerPath(): string {
    return (this.lowerPathCache ??= this.path.toLowerCase());
  }

  /** `name` in lower case; repeated fields are joined with ', '. */
  header(name: string): string | undefined {
    const raw = this.down.rawHeaders;
    const len = name.length;
    let out: string | undefined;
    for (let i = 0; i < raw.length; i += 2) {
      if (raw[i].length === len && raw[i].toLowerCase() === name) out = out === undefined ? raw[i + 1] : out + ', ' + raw[i + 1];
    }
    return out;
  }

  queryParam(name: string): string | undefined {
    if (this.query === '') return undefined;
    if (this.queryCache === undefined) this.queryCache = parseQuery(this.query);
    return this.queryCache.get(name);
  }

  /** Path and query as they go upstream (before rewrites). */
  pathAndQuery(): string {
    return this.query === '' ? this.path : this.path + '?' + this.query;
  }
}

const GRPC_TIMEOUT = /^(\d{1,8})([HMSmun])$/;
const GRPC_TIMEOUT_UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };

/** `grpc-timeout` (gRPC over HTTP/2: 1–8 digits and a unit) in milliseconds, at least 1; -1 when malformed. */
export function parseGrpcTimeout(value: string): number {
  const m = GRPC_TIMEOUT.exec(value);
  if (m === null) return -1;
  // Beyond what a timer can hold (~24.8 days) is as good as no deadline.
  return Math.min(2_147_483_647, Math.max(1, Math.ceil(Number(m[1]) * GRPC_TIMEOUT_UNIT_MS[m[2]])));
}

/** First value wins, as Envoy's query parameter matching. */
function parseQuery(query: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of query.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const name = decode(eq < 0 ? part : part.slice(0, eq));
    if (!out.has(name)) out.set(name, eq < 0 ? '' : decode(part.slice(eq + 1)));
  }
  return out;
}

function decode(s: string): string {
  const plus = s.includes('+') ? s.replaceAll('+', ' ') : s;
  if (!plus.includes('%')) return plus;
  try {
    return decodeURIComponent(plus);
  } catch {
    return plus;
  }
}
