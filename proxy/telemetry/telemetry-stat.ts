// Per-service golden signals for `jibe stat` (as `linkerd viz stat`) from two
// scrapes of the proxies' Istio metrics: requests and successes are counter
// deltas over the interval, latency quantiles come from the delta of the
// duration histogram's buckets (PromQL's histogram_quantile). Each service is
// measured where it is served (reporter=destination) when its proxies report
// it, and by its callers (reporter=source) otherwise — a service outside the
// mesh has no destination proxy.
import { histogramQuantile } from './telemetry-histogram.ts';
import type { Sample } from './prometheus-text.ts';

export interface ServiceStat {
  service: string;
  namespace: string;
  reporter: 'destination' | 'source';
  requests: number;
  /** Answers that were not 5xx (and were answers at all). */
  successes: number;
  successRate: number;
  rps: number;
  /** Milliseconds; NaN without requests. */
  p50: number;
  p95: number;
  p99: number;
}

/** One proxy's scrape: samples keyed by where they came from, so two proxies' equal label sets stay apart. */
export interface Scrape {
  proxy: string;
  samples: Sample[];
}

const REQUESTS = 'istio_requests_total';
const BUCKETS = 'istio_request_duration_milliseconds_bucket';

interface Accumulator {
  requests: number;
  successes: number;
  /** Cumulative bucket deltas by `le`. */
  buckets: Map<number, number>;
}

export function serviceStats(before: readonly Scrape[], after: readonly Scrape[], seconds: number): ServiceStat[] {
  const previous = new Map<string, number>();
  for (const scrape of before) for (const s of scrape.samples) if (s.name === REQUESTS || s.name === BUCKETS) previous.set(sampleKey(scrape.proxy, s), s.value);
  const acc = new Map<string, Accumulator>();
  for (const scrape of after) {
    for (const s of scrape.samples) {
      if (s.name !== REQUESTS && s.name !== BUCKETS) continue;
      const reporter = s.labels.reporter;
      if (reporter !== 'destination' && reporter !== 'source') continue;
      const was = previous.get(sampleKey(scrape.proxy, s));
      // A counter that went down restarted (proxy restart): everything it holds is new.
      // Zero deltas count too: every bucket bound is needed to interpolate, and an idle service still gets its row.
      const delta = was === undefined || s.value < was ? s.value : s.value - was;
      const key = `${reporter}\u0000${s.labels.destination_service_name ?? 'unknown'}\u0000${s.labels.destination_service_namespace ?? 'unknown'}`;
      let a = acc.get(key);
      if (a === undefined) {
        a = { requests: 0, successes: 0, buckets: new Map() };
        acc.set(key, a);
      }
      if (s.name === REQUESTS) {
        a.requests += delta;
        const code = Number(s.labels.response_code);
        if (code > 0 && code < 500) a.successes += delta;
      } else {
        const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
        a.buckets.set(le, (a.buckets.get(le) ?? 0) + delta);
      }
    }
  }
  const out = new Map<string, ServiceStat>();
  for (const [key, a] of acc) {
    const [reporter, service, namespace] = key.split('\u0000') as ['destination' | 'source', string, string];
    const id = `${namespace}/${service}`;
    // Where the service's own proxies report it, their view wins.
    if (reporter === 'source' && out.get(id)?.reporter === 'destination') continue;
    if (reporter === 'source' && (acc.get(`destination\u0000${service}\u0000${namespace}`)?.requests ?? 0) > 0) continue;
    if (reporter === 'destination' && a.requests === 0 && (acc.get(`source\u0000${service}\u0000${namespace}`)?.requests ?? 0) > 0) continue;
    const [bounds, counts] = nonCumulative(a.buckets);
    out.set(id, {
      service,
      namespace,
      reporter,
      requests: a.requests,
      successes: a.successes,
      successRate: a.requests === 0 ? NaN : a.successes / a.requests,
      rps: seconds > 0 ? a.requests / seconds : NaN,
      p50: histogramQuantile(0.5, bounds, counts),
      p95: histogramQuantile(0.95, bounds, counts),
      p99: histogramQuantile(0.99, bounds, counts),
    });
  }
  return [...out.values()].sort((x, y) => x.namespace.localeCompare(y.namespace) || x.service.localeCompare(y.service));
}

function sampleKey(proxy: string, s: Sample): string {
  let key = proxy + '\u0001' + s.name;
  for (const name of Object.keys(s.labels).sort()) key += '\u0000' + name + '=' + s.labels[name];
  return key;
}

/** Cumulative `le` counts → finite bounds and per-bucket counts with +Inf last, as histogramQuantile takes them. */
function nonCumulative(buckets: Map<number, number>): [number[], number[]] {
  const les = [...buckets.keys()].sort((a, b) => a - b);
  const bounds = les.filter((le) => le !== Infinity);
  const counts: number[] = [];
  let below = 0;
  for (const le of bounds) {
    const cumulative = buckets.get(le)!;
    counts.push(Math.max(0, cumulative - below));
    below = Math.max(below, cumulative);
  }
  counts.push(Math.max(0, (buckets.get(Infinity) ?? below) - below));
  return [bounds, counts];
}
