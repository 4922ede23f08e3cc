// On-demand path sampling for `jibe top`: metrics carry no paths (their
// cardinality must stay bounded), so when someone asks, the proxy counts the
// paths it serves for a short window and answers with the busiest. Costs
// nothing while nobody asks (one length check per request); while sampling,
// memory is bounded by MAX_TOP_KEYS distinct (direction, method, authority, path).
import type { Exchange } from '../http/exchange.ts';

/** Distinct request shapes kept per sampling window; later new ones count under one overflow row. */
export const MAX_TOP_KEYS = 1000;
/** Samplings running at once on one proxy (each `jibe top` is one). */
export const MAX_TOP_SAMPLERS = 4;
/** Longest window one request may ask for. */
export const MAX_TOP_WINDOW_MS = 60_000;
const MAX_PATH = 200;
const OVERFLOW = '(other paths)';

export interface TopEntry {
  direction: string;
  method: string;
  authority: string;
  path: string;
  count: number;
  /** 5xx answers and requests that got no response. */
  errors: number;
  totalMs: number;
  maxMs: number;
}

export interface TopReport {
  windowMs: number;
  /** Requests seen in the window (the entries may be cut to `limit`). */
  total: number;
  entries: TopEntry[];
}

export class PathSampler {
  private readonly entries = new Map<string, TopEntry>();
  private total = 0;

  record(ex: Exchange, status: number, durationMs: number): void {
    this.total++;
    const direction = ex.listener.kind;
    const path = ex.path.length > MAX_PATH ? ex.path.slice(0, MAX_PATH) + '…' : ex.path;
    const key = direction + ' ' + ex.method + ' ' + ex.authority + ' ' + path;
    let entry = this.entries.get(key);
    if (entry === undefined) {
      if (this.entries.size >= MAX_TOP_KEYS) {
        entry = this.entries.get(OVERFLOW);
        if (entry === undefined) {
          entry = { direction: '-', method: '-', authority: '-', path: OVERFLOW, count: 0, errors: 0, totalMs: 0, maxMs: 0 };
          this.entries.set(OVERFLOW, entry);
        }
      } else {
        entry = { direction, method: ex.method, authority: ex.authority, path, count: 0, errors: 0, totalMs: 0, maxMs: 0 };
        this.entries.set(key, entry);
      }
    }
    entry.count++;
    if (status === 0 || status >= 500) entry.errors++;
    entry.totalMs += durationMs;
    if (durationMs > entry.maxMs) entry.maxMs = durationMs;
  }

  /** The busiest `limit` entries, most requests first. */
  report(windowMs: number, limit: number): TopReport {
    const entries = [...this.entries.values()].sort((a, b) => b.count - a.count || a.path.localeCompare(b.path)).slice(0, limit);
    for (const e of entries) {
      e.totalMs = Math.round(e.totalMs * 1000) / 1000;
      e.maxMs = Math.round(e.maxMs * 1000) / 1000;
    }
    return { windowMs, total: this.total, entries };
  }
}
