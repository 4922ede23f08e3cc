// Keeps the join-token store from growing without bound: every interval the
// tokens that expired more than a grace period ago (spent and revoked ones
// too) are deleted. The grace keeps an expired token's record for a while, so
// a VM that tries it late is told "expired at …" rather than "unknown".
//
// Every control-plane replica runs one. That is safe without electing a
// leader: each delete is a compare-and-set on the version just listed, so
// replicas racing for the same token delete it once and the others skip it.
// The first run is delayed by a random part of the interval so replicas that
// start together do not list the store together.
import type { StateStore } from '../../core/state/state-store.ts';
import { pruneJoinTokens } from './join-token-store.ts';

export const DEFAULT_PRUNE_INTERVAL_MS = 3600_000;
export const DEFAULT_PRUNE_GRACE_MS = 24 * 3600_000;

export interface JoinTokenPrunerOptions {
  intervalMs?: number;
  graceMs?: number;
  /** Told how many tokens each run removed (only runs that removed some), or why a run failed. */
  log?: (message: string, fields?: Record<string, unknown>) => void;
  now?: () => number;
  random?: () => number;
}

export class JoinTokenPruner {
  private readonly state: StateStore;
  private readonly intervalMs: number;
  private readonly graceMs: number;
  private readonly log: NonNullable<JoinTokenPrunerOptions['log']>;
  private readonly now: () => number;
  private readonly random: () => number;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private running: Promise<number> | undefined;
  private stopped = true;

  constructor(state: StateStore, options: JoinTokenPrunerOptions = {}) {
    this.state = state;
    this.intervalMs = options.intervalMs ?? DEFAULT_PRUNE_INTERVAL_MS;
    this.graceMs = options.graceMs ?? DEFAULT_PRUNE_GRACE_MS;
    this.log = options.log ?? (() => {});
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.schedule(Math.floor(this.random() * this.intervalMs));
  }

  /** Stops the schedule and waits for a run in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    await this.running?.catch(() => 0);
  }

  /** One run now; resolves with how many tokens were removed. */
  async runOnce(): Promise<number> {
    this.running = pruneJoinTokens(this.state, this.now(), this.graceMs);
    try {
      const pruned = await this.running;
      if (pruned > 0) this.log(`pruned ${pruned} expired join token(s)`, { pruned });
      return pruned;
    } finally {
      this.running = undefined;
    }
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.runOnce().then(
        () => this.schedule(this.intervalMs),
        (err: Error) => {
          this.log(`pruning expired join tokens failed (next try in ${Math.round(this.intervalMs / 1000)} s): ${err.message}`, { error: err.message });
          this.schedule(this.intervalMs);
        },
      );
    }, delayMs);
    // Housekeeping never keeps a process alive.
    this.timer.unref?.();
  }
}
