// Retry pacing for the Consul watch loops. Consul's docs ask clients of
// blocking queries to back off on errors and to rate-limit themselves, or a
// fleet of watchers hammers a recovering server in lockstep. Equal jitter
// (half fixed, half random) keeps every delay at least half the exponential
// step, so a loop can never spin, and spreads replicas apart.
import { setTimeout as delay } from 'node:timers/promises';

export interface BackoffOptions {
  /** First delay's ceiling. */
  baseMs: number;
  /** Ceiling of any delay. */
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 250, maxMs: 30_000 };

/** The delay before retry number `attempt` (0 = first retry), in [step/2, step] with step = min(max, base·2^attempt). */
export function backoffDelay(attempt: number, options: BackoffOptions = DEFAULT_BACKOFF, random: () => number = Math.random): number {
  const step = Math.min(options.maxMs, options.baseMs * 2 ** Math.min(Math.max(0, attempt), 30));
  return Math.round(step / 2 + random() * (step / 2));
}

/**
 * Consul's advice for blocking-query indexes: an index that went backwards
 * (the server lost or restored its state) or is not positive restarts from a
 * full read (0); otherwise the next query waits past the new index.
 */
export function nextIndex(previous: number, received: number | undefined): { index: number; reset: boolean } {
  if (received === undefined || !Number.isFinite(received) || received <= 0) return { index: 0, reset: true };
  if (received < previous) return { index: 0, reset: true };
  return { index: received, reset: false };
}

/** Sleeps `ms` unless `signal` aborts first; resolves false when aborted. */
export async function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return false;
  try {
    await delay(ms, undefined, { signal });
    return true;
  } catch {
    return false;
  }
}
