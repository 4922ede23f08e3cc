// The control plane's own metrics, served on 15014 `GET /metrics` under the
// names Istio's istiod exports (`pilot_*`, `citadel_*`) so existing
// dashboards and alerts read them unchanged; what istiod has no name for
// (registry sizes per platform) is `jibe_*`. Counters move once per push, ACK
// or certificate; gauges are read from their sources only when scraped.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { CertificateEvent } from '../ca/certificate-authority.ts';
import type { DiscoveryObserver, PushFailure } from '../discovery/discovery-observer.ts';

/**
 * Istio's `pilot_proxy_convergence_time` buckets (0.1 s … 30 s) with finer
 * ones below: a local mesh converges in tens of milliseconds, and a histogram
 * whose first bucket holds everything says nothing.
 */
export const CONVERGENCE_BUCKETS_S: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 3, 5, 10, 20, 30];

/** What the gauges read at scrape time. */
export interface ControlPlaneMetricsSources {
  /** The connected proxies (the discovery server's status). */
  proxies: () => ReadonlyArray<{ type: string }>;
  /** Services and workloads each platform registry holds. */
  registrySizes: () => Record<string, { services: number; workloads: number }>;
}

export interface ControlPlaneMetricsOptions {
  /** Node.js process metrics (CPU, memory, event loop lag, GC) too; default true. */
  processMetrics?: boolean;
}

export class ControlPlaneMetrics implements DiscoveryObserver {
  readonly registry = new Registry();
  readonly contentType: string;
  private readonly pushes: Counter<'type'>;
  private readonly rejects: Counter;
  private readonly pushErrors: Counter<'reason'>;
  private readonly convergence: Histogram;
  private readonly csrs: Counter;
  private readonly csrErrors: Counter;
  private readonly issued: Counter<'kind'>;

  constructor(sources: ControlPlaneMetricsSources, options: ControlPlaneMetricsOptions = {}) {
    const registers = [this.registry];
    this.contentType = this.registry.contentType;
    new Gauge({
      name: 'pilot_xds',
      help: 'Proxies connected to this control plane over the discovery stream.',
      labelNames: ['type'],
      registers,
      collect() {
        const byType = new Map<string, number>([['sidecar', 0], ['gateway', 0]]);
        for (const p of sources.proxies()) byType.set(p.type, (byType.get(p.type) ?? 0) + 1);
        this.reset();
        for (const [type, n] of byType) this.set({ type }, n);
      },
    });
    this.pushes = new Counter({ name: 'pilot_xds_pushes', help: 'Config pushes written to proxies: full (a stream\'s first snapshot) or incremental.', labelNames: ['type'], registers });
    this.rejects = new Counter({ name: 'pilot_total_xds_rejects', help: 'Pushes proxies rejected (NACK).', registers });
    this.pushErrors = new Counter({
      name: 'pilot_xds_push_errors',
      help: 'Pushes that got no answer: config build failures, ACK timeouts, proxies too far behind, server errors.',
      labelNames: ['reason'],
      registers,
    });
    this.convergence = new Histogram({
      name: 'pilot_proxy_convergence_time',
      help: 'Seconds from a mesh change to the ACK of the proxy config carrying it.',
      buckets: [...CONVERGENCE_BUCKETS_S],
      registers,
    });
    this.csrs = new Counter({ name: 'citadel_server_csr_count', help: 'Workload certificate signing requests the CA received from proven identities.', registers });
    this.csrErrors = new Counter({ name: 'citadel_server_csr_sign_err_count', help: 'Workload certificate signing requests the CA refused.', registers });
    this.issued = new Counter({
      name: 'citadel_server_success_cert_issuance_count',
      help: 'Certificates the CA issued: workload (signed CSRs) or own (the control plane\'s serving identities).',
      labelNames: ['kind'],
      registers,
    });
    const registryGauge = (name: string, help: string, pick: (s: { services: number; workloads: number }) => number): void => {
      new Gauge({
        name,
        help,
        labelNames: ['platform'],
        registers,
        collect() {
          this.reset();
          for (const [platform, sizes] of Object.entries(sources.registrySizes())) this.set({ platform }, pick(sizes));
        },
      });
    };
    registryGauge('jibe_registry_services', 'Services each platform registry holds.', (s) => s.services);
    registryGauge('jibe_registry_workloads', 'Workloads each platform registry holds.', (s) => s.workloads);
    // Series that exist from the start, so rate() and dashboards see zeros instead of nothing.
    for (const type of ['full', 'incremental']) this.pushes.inc({ type }, 0);
    for (const reason of ['build', 'ack_timeout', 'queue_overflow', 'internal'] satisfies PushFailure[]) this.pushErrors.inc({ reason }, 0);
    for (const kind of ['workload', 'own']) this.issued.inc({ kind }, 0);
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  pushed(fullState: boolean): void {
    this.pushes.inc({ type: fullState ? 'full' : 'incremental' });
  }

  acked(convergenceMs: number | undefined): void {
    if (convergenceMs !== undefined) this.convergence.observe(convergenceMs / 1000);
  }

  nacked(): void {
    this.rejects.inc();
  }

  pushFailed(reason: PushFailure): void {
    this.pushErrors.inc({ reason });
  }

  /** The CA's listener (CertificateAuthority.onCertificate). */
  readonly certificate = (event: CertificateEvent): void => {
    if (event.kind === 'workload') {
      this.csrs.inc();
      if (event.outcome === 'refused') this.csrErrors.inc();
    }
    if (event.outcome === 'issued') this.issued.inc({ kind: event.kind });
  };

  /** Prometheus text exposition of every metric. */
  render(): Promise<string> {
    return this.registry.metrics();
  }
}
