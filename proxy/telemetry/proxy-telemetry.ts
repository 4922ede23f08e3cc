// The proxy's telemetry: Istio's metrics for every request and TCP
// connection, access log lines, and a Zipkin span per hop. One hook ends
// every exchange (`recordExchange`, called by the HTTP listener when the
// downstream response is over — upstream answer or local reply alike), one
// interceptor runs just before a request goes upstream (trace headers, peer
// metadata). Label sets are resolved once per (cluster, endpoint) or per
// peer and cached; a request only finds its series and adds numbers.
import type { DestinationStream } from 'pino';
import type { Endpoint, ProxyNode } from '../../core/model/proxy-config.ts';
import type { Cluster } from '../cluster/cluster.ts';
import { endpointKey } from '../cluster/upstream-pool.ts';
import type { ProxyState } from '../config/proxy-state.ts';
import type { Exchange } from '../http/exchange.ts';
import { formatResponseFlags } from '../http/response-flags.ts';
import type { Dispatch, Interceptor } from '../router/router.ts';
import { peerPrincipal } from '../security/peer-principal.ts';
import { authzRecord } from '../security/security-interceptor.ts';
import type { TcpSession } from '../tcp/tcp-proxy.ts';
import { createAccessLog } from './access-log.ts';
import type { AccessLog, AccessLogEntry, AccessLogFormat } from './access-log.ts';
import { exchangeTelemetry, requestMessages, responseMessages } from './exchange-telemetry.ts';
import { GRPC_NONE, IstioMetrics, PROTOCOL_GRPC, PROTOCOL_HTTP } from './istio-metrics.ts';
import type { IdentitySeries } from './istio-metrics.ts';
import {
  PEER_METADATA_HEADER,
  UNKNOWN,
  UNKNOWN_PEER,
  decodePeerMetadata,
  encodePeerMetadata,
  endpointIdentity,
  identityLabels,
  nodeIdentity,
  serviceIdentity,
} from './telemetry-labels.ts';
import type { PeerIdentity, ServiceIdentity } from './telemetry-labels.ts';
import { childContext, hasTraceHeader, injectTraceContext, parseTraceContext, readTraceHeaders } from './trace-context.ts';
import type { TraceContext } from './trace-context.ts';
import { MAX_TOP_SAMPLERS, MAX_TOP_WINDOW_MS, PathSampler } from './telemetry-top.ts';
import type { TopReport } from './telemetry-top.ts';
import { ZipkinReporter } from './zipkin-reporter.ts';
import type { ZipkinSpan } from './zipkin-reporter.ts';

export interface TracingSettings {
  /** Percentage of new traces sampled, 0–100 (Istio's default is 1). */
  sampling: number;
  /** Zipkin collector `host:port` or URL; spans are reported there. */
  zipkinAddress?: string;
}

export interface TelemetrySettings {
  /** Istio metrics (default on). */
  metrics?: boolean;
  /** Access log format, or off (default). */
  accessLog?: AccessLogFormat | 'off';
  /** Tracing, or off (default). */
  tracing?: TracingSettings;
}

export interface ProxyTelemetryOptions extends TelemetrySettings {
  node: ProxyNode;
  /** This proxy's SPIFFE ID, when it has one (source_principal / destination_principal of its own side). */
  principal?: string;
  /** `source_cluster` / `destination_cluster` of its own side (default: the node's platform). */
  cluster?: string;
  /** The running config (TCP sessions are resolved against its clusters). */
  state?: () => ProxyState;
  /** Where access log lines go (default stdout). */
  accessLogDestination?: DestinationStream;
  /** Span sink; default a ZipkinReporter for `tracing.zipkinAddress`. */
  spanSink?: { report(span: ZipkinSpan): void; close?(): Promise<void> };
  random?: () => number;
  /** Told about a failed span POST (the caller rate-limits). */
  onReportError?: (err: Error) => void;
}

/** Distinct inbound caller identities (and authorities) tracked before new ones count as `unknown`. */
const MAX_INBOUND_PEERS = 1000;

export class ProxyTelemetry {
  readonly metrics: IstioMetrics;
  readonly self: PeerIdentity;
  private readonly node: ProxyNode;
  private metricsOn: boolean;
  private accessLog: AccessLog | undefined;
  private tracing: TracingSettings | undefined;
  private spanSink: ProxyTelemetryOptions['spanSink'];
  private readonly ownsSink: boolean;
  private readonly options: ProxyTelemetryOptions;
  private readonly random: () => number;
  private readonly sample = (): boolean => this.tracing !== undefined && this.random() * 100 < this.tracing.sampling;
  private readonly serviceName: string;
  // Caches: cluster object → endpoint key → series; a rebuilt cluster starts a new entry, the series stay the same objects.
  private readonly outbound = new WeakMap<Cluster, Map<string, IdentitySeries>>();
  private readonly inbound = new Map<string, IdentitySeries>();
  private readonly tcp = new Map<string, IdentitySeries>();
  private readonly peerHeaders = new WeakMap<Cluster, string>();
  private noRoute: IdentitySeries | undefined;
  /** Inbound callers past MAX_INBOUND_PEERS, by security policy (plaintext, mTLS). */
  private readonly inboundOverflow: Array<IdentitySeries | undefined> = [undefined, undefined];
  /** Path samplings in progress (`jibe top`); empty nearly always. */
  private samplers: PathSampler[] = [];

  constructor(options: ProxyTelemetryOptions) {
    this.options = options;
    this.node = options.node;
    this.metrics = new IstioMetrics();
    this.self = nodeIdentity(options.node, { principal: options.principal, cluster: options.cluster });
    this.serviceName = `${this.self.app}.${this.self.namespace}`;
    this.random = options.random ?? Math.random;
    this.metricsOn = options.metrics ?? true;
    this.ownsSink = options.spanSink === undefined;
    this.spanSink = options.spanSink;
    this.configure(options);
  }

  /** Applies settings (a proxy flag at start, the mesh's telemetry settings on each config). */
  configure(settings: TelemetrySettings): void {
    if (settings.metrics !== undefined) this.metricsOn = settings.metrics;
    const format = settings.accessLog ?? 'off';
    if (format === 'off') {
      this.accessLog?.close();
      this.accessLog = undefined;
    } else if (this.accessLog?.format !== format) {
      this.accessLog?.close();
      this.accessLog = createAccessLog(format, this.options.accessLogDestination);
    }
    const tracing = settings.tracing;
    if (tracing === undefined || !(tracing.sampling >= 0)) {
      this.tracing = undefined;
      return;
    }
    this.tracing = { sampling: Math.min(100, tracing.sampling), zipkinAddress: tracing.zipkinAddress };
    if (this.ownsSink) {
      const current = this.spanSink as ZipkinReporter | undefined;
      if (tracing.zipkinAddress === undefined) {
        void current?.close();
        this.spanSink = undefined;
      } else if (current === undefined || current.address !== tracing.zipkinAddress) {
        void current?.close();
        this.spanSink = undefined;
        try {
          this.spanSink = new ZipkinReporter({ address: tracing.zipkinAddress, onError: this.options.onReportError });
        } catch (err) {
          // The control plane validates the address; a proxy still never fails a config over it, it just reports nowhere.
          this.options.onReportError?.(err as Error);
        }
      }
    }
  }

  get accessLogFormat(): AccessLogFormat | 'off' {
    return this.accessLog?.format ?? 'off';
  }

  /**
   * The innermost interceptor: runs only for requests that go upstream. Sets
   * this hop's trace context on the request, and peer metadata — removed from
   * what inbound apps see, added (for the mesh endpoint) on the way out.
   */
  interceptor(): Interceptor {
    return (next: Dispatch): Dispatch =>
      (ex: Exchange): void => {
        const raw = ex.down.rawHeaders;
        const inbound = ex.listener.kind === 'inbound';
        if (inbound) {
          const value = takeHeader(raw, PEER_METADATA_HEADER);
          if (this.metricsOn) exchangeTelemetry(ex).peer = this.inboundIdentity(ex, value);
        } else {
          // An app (or a client at the gateway) cannot speak for the mesh: whatever it sent is replaced.
          takeHeader(raw, PEER_METADATA_HEADER);
          const cluster = ex.cluster;
          if (cluster !== undefined && cluster.config.service !== '') raw.push(PEER_METADATA_HEADER, this.peerHeader(cluster));
        }
        if (this.tracing !== undefined) {
          const ctx = this.traceOf(ex);
          injectTraceContext(raw, ctx);
        }
        next(ex);
      };
  }

  /** The single place an exchange ends: metrics, access log, span. */
  recordExchange(ex: Exchange): void {
    const res = ex.down;
    const status = res.headersSent ? res.statusCode : 0;
    const durationMs = performance.now() - ex.startTime;
    let ids: IdentitySeries | undefined;
    if (this.metricsOn) {
      ids = this.identityOf(ex);
      const grpcStatus = ex.grpc ? (ex.grpcStatus >= 0 ? ex.grpcStatus : GRPC_NONE) : GRPC_NONE;
      const series = ids.request(ex.grpc ? PROTOCOL_GRPC : PROTOCOL_HTTP, status, grpcStatus, ex.flags, formatResponseFlags);
      series.requests++;
      series.duration.observe(durationMs);
      series.requestBytes.observe(ex.requestBytes);
      series.responseBytes.observe(ex.responseBytes);
      if (ex.grpc) {
        series.requestMessages += requestMessages(ex);
        series.responseMessages += responseMessages(ex);
      }
    }
    let trace: TraceContext | undefined;
    if (this.tracing !== undefined) {
      trace = this.traceOf(ex);
      if (trace.sampled === true && this.spanSink !== undefined) this.spanSink.report(this.span(ex, trace, status, durationMs));
    }
    const log = this.accessLog;
    if (log !== undefined) {
      fillAccessEntry(log.next(), ex, ids ?? this.identityOf(ex), status, durationMs, trace);
      log.commit();
    }
    if (this.samplers.length !== 0) for (const sampler of this.samplers) sampler.record(ex, status, durationMs);
  }

  /**
   * Counts the paths this proxy serves for `windowMs` (or until `stop()`) and
   * answers with the busiest `limit` (`jibe top`). Undefined when
   * MAX_TOP_SAMPLERS already run.
   */
  sampleTop(windowMs: number, limit: number): { done: Promise<TopReport>; stop(): void } | undefined {
    if (this.samplers.length >= MAX_TOP_SAMPLERS) return undefined;
    const window = Math.min(Math.max(windowMs, 1), MAX_TOP_WINDOW_MS);
    const sampler = new PathSampler();
    const started = performance.now();
    this.samplers = [...this.samplers, sampler];
    let finish: () => void = () => {};
    const done = new Promise<TopReport>((resolve) => {
      const timer = setTimeout(() => finish(), window);
      timer.unref();
      finish = () => {
        clearTimeout(timer);
        if (!this.samplers.includes(sampler)) return;
        this.samplers = this.samplers.filter((s) => s !== sampler);
        resolve(sampler.report(Math.round(performance.now() - started), limit));
      };
    });
    return { done, stop: () => finish() };
  }

  /** Path samplings in progress. */
  get activeSamplings(): number {
    return this.samplers.length;
  }

  /** A TCP session got its upstream connection. */
  tcpOpened(session: TcpSession): void {
    if (!this.metricsOn) return;
    this.tcpIdentity(session).tcpSeries(0, formatResponseFlags).opened++;
  }

  /** A TCP session is over (opened or not): bytes and the close, under its final flags. */
  tcpClosed(session: TcpSession): void {
    if (!this.metricsOn) return;
    const series = this.tcpIdentity(session).tcpSeries(session.flags, formatResponseFlags);
    if (session.upstream !== undefined) series.closed++;
    series.sentBytes += session.downstream.bytesWritten;
    series.receivedBytes += session.downstream.bytesRead;
  }

  /** Prometheus text of the metrics. */
  render(): Promise<string> {
    return this.metrics.render();
  }

  async close(): Promise<void> {
    this.accessLog?.close();
    if (this.ownsSink) await this.spanSink?.close?.();
  }

  private traceOf(ex: Exchange): TraceContext {
    const t = exchangeTelemetry(ex);
    return (t.trace ??= childContext(parseTraceContext(readTraceHeaders(ex.down.rawHeaders)), this.sample));
  }

  private peerHeader(cluster: Cluster): string {
    let value = this.peerHeaders.get(cluster);
    if (value === undefined) {
      value = encodePeerMetadata(this.self, cluster.config.service);
      this.peerHeaders.set(cluster, value);
    }
    return value;
  }

  private identityOf(ex: Exchange): IdentitySeries {
    if (ex.listener.kind === 'inbound') return ex.telemetry?.peer ?? this.inboundIdentity(ex, findHeader(ex.down.rawHeaders, PEER_METADATA_HEADER));
    const cluster = ex.cluster;
    if (cluster === undefined) return (this.noRoute ??= this.metrics.identity(identityLabels('source', this.self, UNKNOWN_PEER, serviceIdentity('', ''), UNKNOWN)));
    let byHost = this.outbound.get(cluster);
    if (byHost === undefined) {
      byHost = new Map();
      this.outbound.set(cluster, byHost);
    }
    const key = ex.host?.key ?? '';
    let ids = byHost.get(key);
    if (ids === undefined) {
      const endpoint = key === '' ? undefined : findEndpoint(cluster, key);
      const service = serviceIdentity(cluster.config.service, endpoint?.namespace ?? '');
      ids = this.metrics.identity(identityLabels('source', this.self, endpointIdentity(endpoint), service, UNKNOWN));
      byHost.set(key, ids);
    }
    return ids;
  }

  /** Inbound: the caller from its peer metadata (and mTLS identity), this proxy as the destination. */
  private inboundIdentity(ex: Exchange, metadata: string | undefined): IdentitySeries {
    const principal = peerPrincipal(ex);
    // Without metadata the service comes from the authority: bounded by MAX_INBOUND_PEERS like the rest.
    const key = (metadata ?? '\u0001' + ex.authority) + '\u0000' + (principal ?? '');
    let ids = this.inbound.get(key);
    if (ids !== undefined) return ids;
    const security = principal !== undefined ? 'mutual_tls' : 'none';
    // Past the bound (many callers, or a client sending made-up metadata) a request costs one lookup, not a decode and a label build.
    if (this.inbound.size >= MAX_INBOUND_PEERS) {
      return (this.inboundOverflow[security === 'none' ? 0 : 1] ??= this.metrics.identity(
        identityLabels('destination', UNKNOWN_PEER, this.self, serviceIdentity('', this.self.namespace), security),
      ));
    }
    let peer: PeerIdentity = UNKNOWN_PEER;
    let service: ServiceIdentity;
    const decoded = metadata !== undefined ? decodePeerMetadata(metadata) : undefined;
    if (decoded !== undefined) {
      peer = decoded.peer;
      service = serviceIdentity(decoded.service, this.self.namespace);
    } else {
      service = serviceIdentity(ex.authority, this.self.namespace);
    }
    if (principal !== undefined) peer = { ...peer, principal };
    ids = this.metrics.identity(identityLabels('destination', peer, this.self, service, security));
    this.inbound.set(key, ids);
    return ids;
  }

  private tcpIdentity(session: TcpSession): IdentitySeries {
    // The verified mTLS peer (terminated by this proxy) is the source of an inbound connection.
    const principal = session.peerPrincipal;
    const key = session.clusterName + '\u0000' + session.upstreamKey + '\u0000' + (principal ?? '');
    let ids = this.tcp.get(key);
    if (ids !== undefined) return ids;
    if (session.clusterName.startsWith('inbound|')) {
      const peer = principal === undefined ? UNKNOWN_PEER : { ...UNKNOWN_PEER, principal };
      ids = this.metrics.identity(identityLabels('destination', peer, this.self, serviceIdentity('', this.self.namespace), principal !== undefined ? 'mutual_tls' : 'none'));
    } else {
      const cluster = this.options.state?.().clusters.get(session.clusterName);
      const endpoint = cluster !== undefined ? findEndpoint(cluster, session.upstreamKey) : undefined;
      const service = serviceIdentity(cluster?.config.service ?? '', endpoint?.namespace ?? '');
      ids = this.metrics.identity(identityLabels('source', this.self, endpointIdentity(endpoint), service, UNKNOWN));
    }
    if (this.tcp.size < MAX_INBOUND_PEERS) this.tcp.set(key, ids);
    return ids;
  }

  private span(ex: Exchange, trace: TraceContext, status: number, durationMs: number): ZipkinSpan {
    const inbound = ex.listener.kind === 'inbound';
    const tags: Record<string, string> = {
      component: 'proxy',
      'node_id': this.node.id,
      'http.method': ex.method,
      'http.url': `${ex.scheme}://${ex.authority}${ex.path}`,
      'http.protocol': ex.down.httpVersion === 2 ? 'HTTP/2' : 'HTTP/1.1',
      'http.status_code': String(status),
      'response_flags': formatResponseFlags(ex.flags),
      'guid:x-request-id': ex.requestId,
      'upstream_cluster': ex.cluster?.name ?? '-',
      'istio.canonical_service': this.self.app,
      'istio.namespace': this.self.namespace,
      'peer.address': ex.down.remoteAddress,
    };
    if (status === 0 || status >= 500 || ex.flags !== 0) tags.error = 'true';
    if (ex.grpc && ex.grpcStatus >= 0) tags['grpc.status_code'] = String(ex.grpcStatus);
    const span: ZipkinSpan = {
      traceId: trace.traceId,
      id: trace.spanId,
      name: `${ex.authority || '-'}/*`,
      kind: inbound ? 'SERVER' : 'CLIENT',
      timestamp: Math.round((performance.timeOrigin + ex.startTime) * 1000),
      duration: Math.max(1, Math.round(durationMs * 1000)),
      localEndpoint: { serviceName: this.serviceName },
      tags,
    };
    if (trace.parentId !== undefined) span.parentId = trace.parentId;
    if (trace.debug) span.debug = true;
    const host = ex.host;
    if (host !== undefined) {
      const remote: NonNullable<ZipkinSpan['remoteEndpoint']> = { port: host.port };
      if (host.address.includes(':')) remote.ipv6 = host.address;
      else remote.ipv4 = host.address;
      if (!inbound && ex.cluster !== undefined) remote.serviceName = serviceIdentity(ex.cluster.config.service, '').name;
      span.remoteEndpoint = remote;
    }
    return span;
  }

}

/** Sets every field of the access log's entry for this exchange (the entry may hold an older line's values). */
function fillAccessEntry(e: AccessLogEntry, ex: Exchange, ids: IdentitySeries, status: number, durationMs: number, trace: TraceContext | undefined): void {
  const startMs = performance.timeOrigin + ex.startTime;
  e.startMs = startMs;
  // The exchange's end, from the clock reading recordExchange already made.
  e.nowMs = startMs + durationMs;
  e.method = ex.method;
  e.authority = ex.authority;
  e.path = ex.pathAndQuery();
  e.protocol = ex.down.httpVersion === 2 ? 'HTTP/2' : 'HTTP/1.1';
  e.response_code = status;
  e.response_flags = formatResponseFlags(ex.flags);
  e.bytes_received = ex.requestBytes;
  e.bytes_sent = ex.responseBytes;
  e.duration_ms = Math.round(durationMs * 1000) / 1000;
  e.upstream_host = ex.host?.key ?? '';
  e.upstream_cluster = ex.cluster?.name ?? '';
  e.route_name = ex.route?.name ?? '';
  e.x_request_id = ex.requestId || (ex.header('x-request-id') ?? '');
  e.trace_id = trace?.traceId ?? incomingTraceId(ex.down.rawHeaders);
  e.downstream_remote_address = ex.down.remoteAddress;
  e.identity = ids.base;
  e.user_agent = ex.header('user-agent');
  e.grpc_status = ex.grpc && ex.grpcStatus >= 0 ? String(ex.grpcStatus) : undefined;
  const authz = authzRecord(ex);
  if (authz !== undefined && authz.policy !== undefined) {
    e.authz_policy = authz.policy;
    e.authz_result = authz.result;
  } else {
    e.authz_policy = undefined;
    e.authz_result = undefined;
  }
}

/** The incoming trace id when tracing is off (logs still correlate with traces made elsewhere). */
function incomingTraceId(raw: readonly string[]): string {
  // Most requests carry no trace header: one length check per header, no allocation.
  if (!hasTraceHeader(raw)) return '';
  return parseTraceContext(readTraceHeaders(raw))?.traceId ?? '';
}

function findEndpoint(cluster: Cluster, key: string): Endpoint | undefined {
  const endpoints = cluster.endpointsResource?.endpoints;
  if (endpoints === undefined) return undefined;
  for (const e of endpoints) if (endpointKey(e.address, e.port) === key) return e;
  return undefined;
}

function findHeader(raw: readonly string[], lowerName: string): string | undefined {
  const len = lowerName.length;
  for (let i = 0; i < raw.length; i += 2) if (raw[i].length === len && raw[i].toLowerCase() === lowerName) return raw[i + 1];
  return undefined;
}

/** Removes every `lowerName` field from a flat list in place; returns the first value. */
function takeHeader(raw: string[], lowerName: string): string | undefined {
  const len = lowerName.length;
  let found: string | undefined;
  let w = -1;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i].length === len && raw[i].toLowerCase() === lowerName) {
      found ??= raw[i + 1];
      if (w < 0) w = i;
      continue;
    }
    if (w >= 0) {
      raw[w] = raw[i];
      raw[w + 1] = raw[i + 1];
      w += 2;
    }
  }
  if (w >= 0) raw.length = w;
  return found;
}
