// A retry budget per cluster with Linkerd's semantics: over a sliding window
// of `ttlMs`, retries may be at most retryRatio × requests plus
// minRetriesPerSecond × the window, so retries can never multiply the load
// on an already failing service (a fixed attempt count would). Deposits
// (requests) and withdrawals (retries) are counted in per-second slots of a
// ring, so the window slides in one-second steps with no per-request
// allocation and no timer.
import type { RetryBudget as RetryBudgetConfig } from '../../core/model/proxy-config.ts';

const SLOT_MS = 1000;

export class RetryBudget {
  readonly config: RetryBudgetConfig;
  private readonly now: () => number;
  private readonly requests: Float64Array;
  private readonly retries: Float64Array;
  /** Slot number (time / SLOT_MS) that each ring index last held. */
  private readonly epochs: Float64Array;
  private requestSum = 0;
  private retrySum = 0;

  constructor(config: RetryBudgetConfig, now: () => number) {
    this.config = config;
    this.now = now;
    const slots = Math.max(1, Math.ceil(config.ttlMs / SLOT_MS));
    this.requests = new Float64Array(slots);
    this.retries = new Float64Array(slots);
    this.epochs = new Float64Array(slots).fill(-1);
  }

  /** Counts one original request (a deposit). */
  recordRequest(): void {
    const i = this.advance();
    this.requests[i]++;
    this.requestSum++;
  }

  /** Withdraws one retry if the budget allows it; false means: do not retry. */
  tryRetry(): boolean {
    const i = this.advance();
    if (this.retrySum + 1 > this.allowed()) return false;
    this.retries[i]++;
    this.retrySum++;
    return true;
  }

  /** Retries the window allows right now. */
  allowed(): number {
    this.advance();
    const c = this.config;
    return c.retryRatio * this.requestSum + (c.minRetriesPerSecond * c.ttlMs) / 1000;
  }

  /** Drops slots that left the window; returns the ring index of the current slot. */
  private advance(): number {
    const slot = Math.floor(this.now() / SLOT_MS);
    const n = this.epochs.length;
    const i = slot % n;
    if (this.epochs[i] !== slot) {
      // Clear every slot older than the window (at most n of them).
      for (let k = 0; k < n; k++) {
        if (this.epochs[k] !== -1 && this.epochs[k] <= slot - n) {
          this.requestSum -= this.requests[k];
          this.retrySum -= this.retries[k];
          this.requests[k] = 0;
          this.retries[k] = 0;
          this.epochs[k] = -1;
        }
      }
      if (this.epochs[i] !== -1) {
        this.requestSum -= this.requests[i];
        this.retrySum -= this.retries[i];
        this.requests[i] = 0;
        this.retries[i] = 0;
      }
      this.epochs[i] = slot;
    }
    return i;
  }
}
