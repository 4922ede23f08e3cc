// Passive health checking (Envoy's outlier detection, Istio's
// DestinationRule outlierDetection) for one cluster: consecutive 5xx answers,
// or consecutive gateway errors (502, 503, 504, and connect failures / resets,
// which Envoy counts as 503 when local-origin errors are not split out), eject
// a host for baseEjectionTime × the number of times it was ejected. At most
// maxEjectionPercent of the hosts are out at once (one may always go), and
// below minHealthPercent of hosts in service ejection is ignored (the cluster
// balances over everything, as Envoy's panic mode). Hosts come back when
// their time is up, checked lazily on pick, so the detector needs no timer.
//
// State is keyed by host key (`address:port`) and the detector outlives
// Cluster objects: an endpoint update rebuilds the cluster, not the verdicts.
// Every ejection or re-admission bumps `generation`; the cluster rebuilds
// its balancer over the hosts in service when it sees a new generation.
import type { OutlierDetection } from '../../core/model/proxy-config.ts';
import type { ClusterStats } from '../stats/proxy-stats.ts';
import type { UpstreamHost } from './upstream-pool.ts';

/** How an upstream attempt failed without an HTTP status (forward-request's FAIL_* kinds). */
export const OUTLIER_CONNECT_FAILURE = 1;
export const OUTLIER_RESET = 2;
export const OUTLIER_PROTOCOL_ERROR = 3;

class HostOutlierState {
  consecutive5xx = 0;
  consecutiveGateway = 0;
  /** 0 when in service, else when the ejection ends (clock ms). */
  ejectedUntil = 0;
  /** Times ejected; decays by one per `interval` spent in service. */
  ejections = 0;
  /** When the host last came back (or was first seen). */
  since = 0;
}

export class OutlierDetector {
  config: OutlierDetection;
  readonly now: () => number;
  readonly stats: ClusterStats;
  /** Bumped on every ejection and re-admission. */
  generation = 0;
  /** Earliest end of a current ejection (Infinity when none). */
  dueAt = Infinity;
  private readonly hosts = new Map<string, HostOutlierState>();
  private ejected = 0;
  /** Hosts in the cluster now (healthy per the control plane): the base of the percentages. */
  private total = 0;

  constructor(config: OutlierDetection, now: () => number, stats: ClusterStats) {
    this.config = config;
    this.now = now;
    this.stats = stats;
  }

  /** Sets the hosts the cluster has now; forgets the state of hosts that left. */
  setHosts(keys: readonly string[]): void {
    const live = new Set(keys);
    for (const [key, s] of this.hosts) {
      if (live.has(key)) continue;
      if (s.ejectedUntil !== 0) {
        this.ejected--;
        this.stats.outlier_detection_ejections_active--;
        this.generation++;
      }
      this.hosts.delete(key);
    }
    const now = this.now();
    for (const key of keys) if (!this.hosts.has(key)) this.hosts.set(key, Object.assign(new HostOutlierState(), { since: now }));
    this.total = keys.length;
    this.recomputeDue();
  }

  /** An HTTP status from the upstream host. */
  recordStatus(host: UpstreamHost, status: number): void {
    const s = this.hosts.get(host.key);
    if (s === undefined) return;
    if (status < 500) {
      s.consecutive5xx = 0;
      s.consecutiveGateway = 0;
      return;
    }
    const c = this.config;
    s.consecutive5xx++;
    const gateway = status === 502 || status === 503 || status === 504;
    if (gateway) s.consecutiveGateway++;
    else s.consecutiveGateway = 0;
    if (s.ejectedUntil !== 0) return;
    if (c.consecutive5xxErrors !== undefined && c.consecutive5xxErrors > 0 && s.consecutive5xx >= c.consecutive5xxErrors) {
      this.stats.outlier_detection_ejections_detected_consecutive_5xx++;
      this.eject(s);
    } else if (gateway && c.consecutiveGatewayErrors !== undefined && c.consecutiveGatewayErrors > 0 && s.consecutiveGateway >= c.consecutiveGatewayErrors) {
      this.stats.outlier_detection_ejections_detected_consecutive_gateway_failure++;
      this.eject(s);
    }
  }

  /** A failure without a status: connect failure and reset count as 503, a protocol error as 502. */
  recordFailure(host: UpstreamHost, kind: number): void {
    this.recordStatus(host, kind === OUTLIER_PROTOCOL_ERROR ? 502 : 503);
  }

  isEjected(key: string): boolean {
    const s = this.hosts.get(key);
    return s !== undefined && s.ejectedUntil !== 0;
  }

  get ejectedCount(): number {
    return this.ejected;
  }

  /**
   * Whether ejections apply: with fewer than minHealthPercent of the hosts in
   * service, the cluster ignores them and uses every host.
   */
  get enforcing(): boolean {
    if (this.ejected === 0 || this.total === 0) return true;
    return ((this.total - this.ejected) * 100) / this.total >= this.config.minHealthPercent;
  }

  /** Re-admits hosts whose ejection time is over. */
  sweep(): void {
    const now = this.now();
    if (now < this.dueAt) return;
    for (const s of this.hosts.values()) {
      if (s.ejectedUntil !== 0 && s.ejectedUntil <= now) {
        s.ejectedUntil = 0;
        s.consecutive5xx = 0;
        s.consecutiveGateway = 0;
        s.since = now;
        this.ejected--;
        this.stats.outlier_detection_ejections_active--;
        this.generation++;
      }
    }
    this.recomputeDue();
  }

  private eject(s: HostOutlierState): void {
    const c = this.config;
    // Envoy: eject while the share already out is below the cap; the first ejection is always allowed.
    if (this.ejected > 0 && (this.ejected * 100) / this.total >= c.maxEjectionPercent) {
      this.stats.outlier_detection_ejections_overflow++;
      return;
    }
    const now = this.now();
    // A host that behaved for whole intervals since it came back is forgiven one ejection per interval.
    if (s.ejections > 0 && c.intervalMs > 0) s.ejections = Math.max(0, s.ejections - Math.floor((now - s.since) / c.intervalMs));
    s.ejections++;
    s.ejectedUntil = now + c.baseEjectionTimeMs * s.ejections;
    this.ejected++;
    this.stats.outlier_detection_ejections_active++;
    this.stats.outlier_detection_ejections_total++;
    this.generation++;
    if (s.ejectedUntil < this.dueAt) this.dueAt = s.ejectedUntil;
  }

  private recomputeDue(): void {
    let due = Infinity;
    for (const s of this.hosts.values()) if (s.ejectedUntil !== 0 && s.ejectedUntil < due) due = s.ejectedUntil;
    this.dueAt = due;
  }
}
