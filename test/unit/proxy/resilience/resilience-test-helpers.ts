// Fixtures for the resilience tests: a seeded random source, a settable
// clock, an upstream whose behaviour is switched on command (answer, fail,
// hang, reset, slow), and a wait for a condition the test drives.
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { startUpstream } from '../proxy-test-helpers.ts';
import type { Upstream } from '../proxy-test-helpers.ts';

/** mulberry32: a small, well-mixed PRNG, so sampled features are reproducible. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface ManualClock {
  now: () => number;
  advance(ms: number): void;
}

export function manualClock(start = 1_000_000): ManualClock {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

export type Mode = 'ok' | 'fail' | 'hang' | 'reset';

export interface ControlledUpstream extends Upstream {
  mode: Mode;
  /** Status for `fail` (default 503). */
  failStatus: number;
  /** Answers every hung request with 200. */
  release(): void;
  /** Requests held by `hang` now. */
  held(): number;
}

export async function startControlledUpstream(name: string): Promise<ControlledUpstream> {
  const held: ServerResponse[] = [];
  const answer = (res: ServerResponse, status: number) => {
    res.statusCode = status;
    res.setHeader('x-upstream', name);
    res.end(`${name} ${status}`);
  };
  const upstream = await startUpstream(name, (req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    switch (self.mode) {
      case 'ok':
        return answer(res, 200);
      case 'fail':
        return answer(res, self.failStatus);
      case 'hang':
        held.push(res);
        return;
      case 'reset':
        req.socket.destroy();
        return;
    }
  });
  const self: ControlledUpstream = Object.assign(upstream, {
    mode: 'ok' as Mode,
    failStatus: 503,
    release: () => {
      for (const res of held.splice(0)) answer(res, 200);
    },
    held: () => held.length,
  });
  return self;
}

/** Waits (event loop turns, no fixed sleep) until `cond` holds; fails the test after ~5 s. */
export async function until(cond: () => boolean, what = 'condition'): Promise<void> {
  for (let i = 0; i < 2500 && !cond(); i++) await new Promise((r) => setTimeout(r, 2));
  assert.ok(cond(), `timed out waiting for ${what}`);
}
