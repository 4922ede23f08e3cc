// Leader election on a coordination.k8s.io Lease, as client-go's
// leaderelection: the leader renews the lease every retry period; a follower
// takes it over only after it has seen the same record unchanged for a whole
// lease duration (its own clock, so clock skew between replicas does not
// matter); every write names the version it replaces, so two replicas can
// never both believe they lead. A leader that cannot renew within the renew
// deadline steps down before its lease can expire under it.
import type { Logger } from 'pino';
import { KubeApiError, kubePath } from './kube-client.ts';
import type { KubeClient } from './kube-client.ts';
import type { KubeObject } from './kube-types.ts';

interface Lease extends KubeObject {
  spec?: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  /** This replica's name (its pod name). */
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  onStartedLeading?: () => void;
  onStoppedLeading?: () => void;
  logger?: Logger;
}

export class LeaseLeaderElector {
  private readonly client: KubeClient;
  private readonly options: Required<Omit<LeaderElectionOptions, 'onStartedLeading' | 'onStoppedLeading' | 'logger'>> & Pick<LeaderElectionOptions, 'onStartedLeading' | 'onStoppedLeading' | 'logger'>;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private leading = false;
  private lastRenew = 0;
  private observed: { record: string; at: number } | undefined;
  private stopped = false;
  private running: Promise<void> = Promise.resolve();

  constructor(client: KubeClient, options: LeaderElectionOptions) {
    this.client = client;
    this.options = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000, ...options };
  }

  get isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    this.stopped = false;
    this.tick();
  }

  /** Stops; a leader releases the lease so another replica takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
    if (this.leading) {
      await this.release().catch((err) => this.options.logger?.warn({ err: (err as Error).message }, 'releasing the lease failed; it will expire'));
      this.setLeading(false);
    }
  }

  private tick(): void {
    this.running = this.tryAcquireOrRenew()
      .catch((err) => this.options.logger?.warn({ err: (err as Error).message }, 'leader election round failed'))
      .then(() => {
        if (this.leading && Date.now() - this.lastRenew > this.options.renewDeadlineMs) {
          this.options.logger?.warn('could not renew the lease within the renew deadline; stepping down');
          this.setLeading(false);
        }
        if (!this.stopped) {
          this.timer = setTimeout(() => this.tick(), this.options.retryPeriodMs * (this.leading ? 1 : 1 + Math.random() * 0.2));
          this.timer.unref?.();
        }
      });
  }

  private path(name?: string): string {
    return kubePath('coordination.k8s.io/v1', 'leases', this.options.namespace, name);
  }

  private async tryAcquireOrRenew(): Promise<void> {
    const now = new Date();
    const lease = await this.client.get<Lease>(this.path(this.options.name));
    const mine = {
      holderIdentity: this.options.identity,
      leaseDurationSeconds: Math.ceil(this.options.leaseDurationMs / 1000),
      renewTime: micro(now),
    };
    if (!lease) {
      await this.write('POST', this.path(), {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name: this.options.name, namespace: this.options.namespace },
        spec: { ...mine, acquireTime: micro(now), leaseTransitions: 0 },
      });
      return;
    }
    const spec = lease.spec ?? {};
    const record = JSON.stringify([spec.holderIdentity, spec.renewTime, spec.acquireTime]);
    if (this.observed?.record !== record) this.observed = { record, at: Date.now() };
    const held = !!spec.holderIdentity && spec.holderIdentity !== this.options.identity;
    const durationMs = (spec.leaseDurationSeconds ?? Math.ceil(this.options.leaseDurationMs / 1000)) * 1000;
    if (held && Date.now() - this.observed.at < durationMs) {
      if (this.leading) this.setLeading(false);
      return;
    }
    const takingOver = spec.holderIdentity !== this.options.identity;
    await this.write('PUT', this.path(this.options.name), {
      ...lease,
      spec: {
        ...spec,
        ...mine,
        acquireTime: takingOver ? micro(now) : spec.acquireTime,
        leaseTransitions: (spec.leaseTransitions ?? 0) + (takingOver ? 1 : 0),
      },
    });
  }

  private async write(method: 'POST' | 'PUT', path: string, body: Lease): Promise<void> {
    try {
      await this.client.request<Lease>(method, path, { body });
      this.lastRenew = Date.now();
      if (!this.leading) this.setLeading(true);
    } catch (err) {
      // Someone else wrote first: not leading this round.
      if (err instanceof KubeApiError && err.status === 409) return;
      throw err;
    }
  }

  private async release(): Promise<void> {
    const lease = await this.client.get<Lease>(this.path(this.options.name));
    if (lease?.spec?.holderIdentity !== this.options.identity) return;
    await this.client.request('PUT', this.path(this.options.name), {
      body: { ...lease, spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: micro(new Date()) } },
    });
  }

  private setLeading(leading: boolean): void {
    if (this.leading === leading) return;
    this.leading = leading;
    this.options.logger?.info({ identity: this.options.identity, lease: `${this.options.namespace}/${this.options.name}` }, leading ? 'became leader' : 'stopped leading');
    try {
      (leading ? this.options.onStartedLeading : this.options.onStoppedLeading)?.();
    } catch (err) {
      this.options.logger?.error({ err }, 'leader election callback threw');
    }
  }
}

/** Lease times are MicroTime: RFC 3339 with microseconds. */
function micro(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}
