// Circuit breakers (DestinationRule connectionPool; Envoy's cluster
// thresholds): limits on what one cluster may have in flight, checked by the
// router before a request is sent, so overflow is answered at once with 503
// and flag UO instead of queueing without bound. The live counts are the
// cluster's stats gauges (shared by every Cluster object built for the same
// name), so limits hold across endpoint updates. maxConnections,
// maxRequestsPerConnection and idleTimeout are enforced by the endpoint pools
// (see poolSettingsOf in cluster.ts).
import type { CircuitBreakers } from '../../core/model/proxy-config.ts';
import type { ClusterStats } from '../stats/proxy-stats.ts';
import type { UpstreamHost } from './upstream-pool.ts';

export class CircuitBreaker {
  private readonly maxRequests: number;
  private readonly maxPendingRequests: number;
  private readonly maxRetries: number;
  private readonly stats: ClusterStats;
  /** The cluster speaks HTTP/2: requests wait for a stream slot in the host's HTTP/2 pool, not for a connection. */
  private readonly http2: boolean;

  constructor(config: CircuitBreakers, stats: ClusterStats, http2 = false) {
    this.maxRequests = config.maxRequests ?? Infinity;
    this.maxPendingRequests = config.maxPendingRequests ?? Infinity;
    this.maxRetries = config.maxRetries ?? Infinity;
    this.stats = stats;
    this.http2 = http2;
  }

  /**
   * Whether a new request to `host` must be refused: the cluster has
   * maxRequests in flight, or the request would wait for a connection while
   * maxPendingRequests already wait. Counts the overflow when it refuses.
   */
  overflows(host: UpstreamHost): boolean {
    const stats = this.stats;
    if (
      stats.upstream_rq_active >= this.maxRequests ||
      (stats.upstream_rq_pending_active >= this.maxPendingRequests && (this.http2 ? host.h2Pool().wouldQueue() : host.pool.wouldQueue()))
    ) {
      stats.upstream_rq_pending_overflow++;
      return true;
    }
    return false;
  }

  /** Takes a retry slot (maxRetries); false when none is free. Pair with retryDone(). */
  tryRetry(): boolean {
    const stats = this.stats;
    if (stats.upstream_rq_retry_active >= this.maxRetries) {
      stats.upstream_rq_retry_overflow++;
      return false;
    }
    stats.upstream_rq_retry_active++;
    return true;
  }

  retryDone(): void {
    this.stats.upstream_rq_retry_active--;
  }
}
