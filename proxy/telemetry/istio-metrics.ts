// Istio's standard metrics, kept as plain numbers on long-lived series objects
// and handed to prom-client only when Prometheus scrapes. The request path
// finds its series through caches keyed by objects and small integers (see
// proxy-telemetry.ts) and then only adds numbers: prom-client's own
// `labels(...).inc()` hashes a label object per call, which costs more than
// the rest of the recording together.
import type { Registry } from 'prom-client';
import { BYTES_BUCKETS, DURATION_BUCKETS_MS, HistogramData } from './telemetry-histogram.ts';
import { ISTIO_LABELS, UNKNOWN } from './telemetry-labels.ts';
import type { IstioLabels, identityLabels } from './telemetry-labels.ts';

export type IdentityLabels = ReturnType<typeof identityLabels>;

/** One label set of the HTTP/gRPC request metrics. */
export class RequestSeries {
  readonly labels: IstioLabels;
  requests = 0;
  readonly duration = new HistogramData(DURATION_BUCKETS_MS);
  readonly requestBytes = new HistogramData(BYTES_BUCKETS);
  readonly responseBytes = new HistogramData(BYTES_BUCKETS);
  requestMessages = 0;
  responseMessages = 0;

  constructor(labels: IstioLabels) {
    this.labels = labels;
  }
}

/** One label set of the TCP metrics. */
export class TcpSeries {
  readonly labels: IstioLabels;
  opened = 0;
  closed = 0;
  sentBytes = 0;
  receivedBytes = 0;

  constructor(labels: IstioLabels) {
    this.labels = labels;
  }
}

export const PROTOCOL_HTTP = 0;
export const PROTOCOL_GRPC = 1;
const PROTOCOL_NAMES = ['http', 'grpc'];
/** grpc_response_status slot for "not a gRPC request" (gRPC codes are 0–16). */
export const GRPC_NONE = 31;

/** Identity labels of one (source, destination, service, security policy) combination with its response series. */
export class IdentitySeries {
  readonly base: IdentityLabels;
  private readonly requests = new Map<number, RequestSeries>();
  private readonly tcp = new Map<number, TcpSeries>();
  private readonly metrics: IstioMetrics;
  // The last response shape asked for: a steady stream of 200s skips the map.
  private lastKey = -1;
  private last: RequestSeries | undefined = undefined;

  constructor(base: IdentityLabels, metrics: IstioMetrics) {
    this.base = base;
    this.metrics = metrics;
  }

  /**
   * The series for one response shape. `status` 0 = no response was sent;
   * `flags` are ResponseFlag bits; `grpcStatus` GRPC_NONE for plain HTTP.
   */
  request(protocol: number, status: number, grpcStatus: number, flags: number, flagNames: (flags: number) => string): RequestSeries {
    const key = ((flags * 32 + grpcStatus) * 1024 + (status > 999 ? 0 : status)) * 2 + protocol;
    if (key === this.lastKey) return this.last!;
    let series = this.requests.get(key);
    if (series === undefined) {
      series = new RequestSeries({
        ...this.base,
        request_protocol: PROTOCOL_NAMES[protocol],
        response_code: String(status),
        grpc_response_status: grpcStatus === GRPC_NONE ? '' : String(grpcStatus),
        response_flags: flagNames(flags),
      });
      this.requests.set(key, series);
      this.metrics.requestSeries.push(series);
    }
    this.lastKey = key;
    this.last = series;
    return series;
  }

  tcpSeries(flags: number, flagNames: (flags: number) => string): TcpSeries {
    let series = this.tcp.get(flags);
    if (series === undefined) {
      series = new TcpSeries({ ...this.base, request_protocol: 'tcp', response_code: '0', grpc_response_status: '', response_flags: flagNames(flags) });
      this.tcp.set(flags, series);
      this.metrics.tcpSeries.push(series);
    }
    return series;
  }
}

/** Beyond this many identity combinations, new ones are counted under all-`unknown` identities. */
export const MAX_IDENTITY_SETS = 5000;

type MetricValue = { value: number; labels: Record<string, string | number>; metricName?: string };

/** A prom-client metric whose values come from our series at scrape time. */
interface CollectedMetric {
  name: string;
  help: string;
  type: 'counter' | 'histogram';
  aggregator: 'sum';
  get(): { name: string; help: string; type: string; values: MetricValue[]; aggregator: 'sum' };
}

export class IstioMetrics {
  readonly requestSeries: RequestSeries[] = [];
  readonly tcpSeries: TcpSeries[] = [];
  private readonly identities = new Map<string, IdentitySeries>();
  private overflow: IdentitySeries | undefined;
  private readonly collected: CollectedMetric[] = [];
  private registry$: Promise<Registry> | undefined;

  constructor() {
    const req = this.requestSeries;
    const tcp = this.tcpSeries;
    this.counter('istio_requests_total', 'Requests, by Istio standard labels.', () => req.map((s) => ({ value: s.requests, labels: s.labels })));
    this.histogram('istio_request_duration_milliseconds', 'Request duration in milliseconds.', () => req.map((s) => [s.labels, s.duration]));
    this.histogram('istio_request_bytes', 'Request body sizes in bytes.', () => req.map((s) => [s.labels, s.requestBytes]));
    this.histogram('istio_response_bytes', 'Response body sizes in bytes.', () => req.map((s) => [s.labels, s.responseBytes]));
    const grpc = (): RequestSeries[] => req.filter((s) => s.labels.request_protocol === 'grpc');
    this.counter('istio_request_messages_total', 'gRPC messages sent by clients.', () => grpc().map((s) => ({ value: s.requestMessages, labels: s.labels })));
    this.counter('istio_response_messages_total', 'gRPC messages sent by servers.', () => grpc().map((s) => ({ value: s.responseMessages, labels: s.labels })));
    this.counter('istio_tcp_sent_bytes_total', 'Bytes sent to the downstream on TCP connections.', () => tcp.map((s) => ({ value: s.sentBytes, labels: s.labels })));
    this.counter('istio_tcp_received_bytes_total', 'Bytes received from the downstream on TCP connections.', () => tcp.map((s) => ({ value: s.receivedBytes, labels: s.labels })));
    this.counter('istio_tcp_connections_opened_total', 'TCP connections opened.', () => tcp.map((s) => ({ value: s.opened, labels: s.labels })));
    this.counter('istio_tcp_connections_closed_total', 'TCP connections closed.', () => tcp.map((s) => ({ value: s.closed, labels: s.labels })));
  }

  /** The canonical series holder for an identity label set: the same labels always give the same object, across config changes. */
  identity(base: IdentityLabels): IdentitySeries {
    const key = identityKey(base);
    let entry = this.identities.get(key);
    if (entry === undefined) {
      if (this.identities.size >= MAX_IDENTITY_SETS) return (this.overflow ??= new IdentitySeries(overflowLabels(base), this));
      entry = new IdentitySeries(base, this);
      this.identities.set(key, entry);
    }
    return entry;
  }

  /**
   * The prom-client registry over our series, loaded at the first scrape: a
   * sidecar nobody scrapes never carries prom-client (about 18 MB of VmRSS,
   * 6.5 MB of it private, measured in the sidecar benchmark).
   */
  prometheusRegistry(): Promise<Registry> {
    this.registry$ ??= import('prom-client').then(({ Registry }) => {
      const registry = new Registry();
      // prom-client's registry renders any object with name/help/type/get(); ours read the series only when asked.
      for (const metric of this.collected) registry.registerMetric(metric as unknown as Parameters<Registry['registerMetric']>[0]);
      return registry;
    });
    return this.registry$;
  }

  /** Prometheus text format (what `/stats/prometheus` serves). */
  async render(): Promise<string> {
    return (await this.prometheusRegistry()).metrics();
  }

  private counter(name: string, help: string, values: () => MetricValue[]): void {
    this.register({ name, help, type: 'counter', aggregator: 'sum', get: () => ({ name, help, type: 'counter', values: values(), aggregator: 'sum' }) });
  }

  private histogram(name: string, help: string, series: () => Array<[IstioLabels, HistogramData]>): void {
    const get = (): ReturnType<CollectedMetric['get']> => {
      const values: MetricValue[] = [];
      for (const [labels, h] of series()) {
        let cumulative = 0;
        for (let i = 0; i < h.counts.length; i++) {
          cumulative += h.counts[i];
          const le = i < h.bounds.length ? h.bounds[i] : '+Inf';
          values.push({ metricName: `${name}_bucket`, value: cumulative, labels: { ...labels, le } });
        }
        values.push({ metricName: `${name}_sum`, value: h.sum, labels });
        values.push({ metricName: `${name}_count`, value: h.count, labels });
      }
      return { name, help, type: 'histogram', values, aggregator: 'sum' };
    };
    this.register({ name, help, type: 'histogram', aggregator: 'sum', get });
  }

  private register(metric: CollectedMetric): void {
    this.collected.push(metric);
  }
}

function identityKey(base: IdentityLabels): string {
  let key = '';
  for (const name of ISTIO_LABELS) {
    const value = (base as Record<string, string | undefined>)[name];
    if (value !== undefined) key += value + '\u0000';
  }
  return key;
}

function overflowLabels(base: IdentityLabels): IdentityLabels {
  const out = { ...base };
  for (const name of Object.keys(out) as Array<keyof IdentityLabels>) if (name !== 'reporter') out[name] = UNKNOWN;
  return out;
}
