// A Prometheus histogram as plain numbers: bucket counts in a typed array,
// observed with a short linear scan (Istio's bucket lists are ~20 long, and
// most observations land in the first few). Rendered only on scrape.

/** Istio's buckets for istio_request_duration_milliseconds. */
export const DURATION_BUCKETS_MS: readonly number[] = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000];

/** Istio's buckets for istio_request_bytes / istio_response_bytes (exponential 1..10^8). */
export const BYTES_BUCKETS: readonly number[] = [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000];

export class HistogramData {
  readonly bounds: readonly number[];
  /** Non-cumulative count per bucket; the last slot is +Inf. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(bounds: readonly number[]) {
    this.bounds = bounds;
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]) i++;
    this.counts[i]++;
    this.sum += value;
    this.count++;
  }

  /** Value at quantile q (0..1) by linear interpolation inside the bucket, as PromQL's histogram_quantile. */
  quantile(q: number): number {
    return histogramQuantile(q, this.bounds, this.counts);
  }
}

/** histogram_quantile over non-cumulative counts (last slot +Inf); NaN when empty. */
export function histogramQuantile(q: number, bounds: readonly number[], counts: ArrayLike<number>): number {
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += counts[i];
  if (total === 0) return NaN;
  const rank = q * total;
  let cumulative = 0;
  for (let i = 0; i < counts.length; i++) {
    const before = cumulative;
    cumulative += counts[i];
    if (cumulative >= rank && counts[i] > 0) {
      // The +Inf bucket has no upper bound: PromQL answers the highest finite bound.
      if (i === bounds.length) return bounds[bounds.length - 1];
      const lower = i === 0 ? 0 : bounds[i - 1];
      return lower + (bounds[i] - lower) * ((rank - before) / counts[i]);
    }
  }
  return bounds[bounds.length - 1];
}
