// Durations as Istio's YAML writes them (Go's time.ParseDuration syntax):
// `1.5s`, `300ms`, `2m`, `1h30m`. Protobuf's `1.5s` form is a subset.
import { JibeError } from '../errors/errors.ts';

const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  'µs': 1e-3, // U+00B5 micro sign, as Go accepts
  'μs': 1e-3, // U+03BC Greek mu
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

const WHOLE = /^(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$/;
const PART = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g;

/** Parses a duration into milliseconds, or returns undefined when it is not one. */
export function tryParseDuration(s: string): number | undefined {
  if (typeof s !== 'string') return undefined;
  if (s === '0') return 0;
  if (!WHOLE.test(s)) return undefined;
  let total = 0;
  for (const m of s.matchAll(PART)) total += Number(m[1]) * UNIT_MS[m[2]];
  return Number.isFinite(total) ? total : undefined;
}

/**
 * Parses a duration such as `1.5s`, `300ms`, `2m`, `1h` or `1h30m` into milliseconds.
 * Negative durations are refused: nothing in the rule language waits a negative time.
 */
export function parseDuration(s: string): number {
  const ms = tryParseDuration(s);
  if (ms === undefined) {
    throw new JibeError('JIBE_ERR_SCHEMA', `invalid duration ${JSON.stringify(s)}`, { hint: DURATION_HINT });
  }
  return ms;
}

export const DURATION_HINT = 'write a number followed by a unit, e.g. 300ms, 1.5s, 2m, 1h or 1h30m';
