// The workload's health check: HTTP GET on an interval, with Kubernetes-style
// thresholds (a 2xx/3xx answer in time is a success), so one slow answer does
// not pull a VM out of the endpoint set and one good answer does not put a
// failing one back. Reports only transitions; the agent turns them into
// health reports to the control plane.
export type Health = 'healthy' | 'unhealthy';

export interface HealthCheckOptions {
  url: string;
  intervalMs: number;
  timeoutMs: number;
  /** Consecutive failures before unhealthy (default 3). */
  failureThreshold: number;
  /** Consecutive successes before healthy again (default 1). */
  successThreshold: number;
}

export const DEFAULT_HEALTH_CHECK: Omit<HealthCheckOptions, 'url'> = { intervalMs: 5000, timeoutMs: 2000, failureThreshold: 3, successThreshold: 1 };

export class HealthChecker {
  private readonly options: HealthCheckOptions;
  private readonly onChange: (health: Health, reason: string) => void;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private successes = 0;
  private failures = 0;
  private state: Health;
  private lastReason = '';
  private stopped = false;

  constructor(options: HealthCheckOptions, initial: Health, onChange: (health: Health, reason: string) => void) {
    this.options = options;
    this.state = initial;
    this.onChange = onChange;
  }

  get health(): Health {
    return this.state;
  }

  get reason(): string {
    return this.lastReason;
  }

  /** One probe: success, or why not. */
  async probe(): Promise<{ ok: boolean; reason: string }> {
    try {
      const res = await fetch(this.options.url, { signal: AbortSignal.timeout(this.options.timeoutMs), redirect: 'manual' });
      await res.arrayBuffer().catch(() => undefined);
      return res.status >= 200 && res.status < 400 ? { ok: true, reason: `HTTP ${res.status}` } : { ok: false, reason: `HTTP ${res.status}` };
    } catch (err) {
      const e = err as Error & { cause?: { code?: string } };
      return { ok: false, reason: e.name === 'TimeoutError' ? `no answer in ${this.options.timeoutMs} ms` : (e.cause?.code ?? e.message) };
    }
  }

  /** Probes once now and sets the state outright (at start: no history to smooth). */
  async initial(): Promise<Health> {
    const { ok, reason } = await this.probe();
    this.lastReason = reason;
    this.state = ok ? 'healthy' : 'unhealthy';
    return this.state;
  }

  start(): void {
    this.stopped = false;
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.tick(), this.options.intervalMs);
  }

  private async tick(): Promise<void> {
    const { ok, reason } = await this.probe();
    if (this.stopped) return;
    this.lastReason = reason;
    if (ok) {
      this.successes++;
      this.failures = 0;
      if (this.state === 'unhealthy' && this.successes >= this.options.successThreshold) this.transition('healthy', reason);
    } else {
      this.failures++;
      this.successes = 0;
      if (this.state === 'healthy' && this.failures >= this.options.failureThreshold) this.transition('unhealthy', reason);
    }
    this.schedule();
  }

  private transition(health: Health, reason: string): void {
    this.state = health;
    this.onChange(health, reason);
  }
}
