// Small helpers shared by the store contract suites.
import assert from 'node:assert/strict';
import { isJibeError } from '../../core/errors/errors.ts';
import type { ErrorCode } from '../../core/errors/errors.ts';

/** Asserts that `promise` rejects with a JibeError of `code`; returns the error for further checks. */
export async function rejectsWithCode(promise: Promise<unknown>, code: ErrorCode): Promise<Error & { code: ErrorCode; details: Record<string, unknown> }> {
  let caught: unknown;
  await assert.rejects(promise, (err: unknown) => {
    caught = err;
    assert.ok(isJibeError(err), `expected a JibeError ${code}, got ${String(err)}`);
    assert.equal(err.code, code, `expected ${code}, got ${err.code}: ${err.message}`);
    return true;
  });
  return caught as Error & { code: ErrorCode; details: Record<string, unknown> };
}

/** Whether `err` is a JibeError with `code` (for retry loops). */
export function hasCode(err: unknown, code: ErrorCode): boolean {
  return isJibeError(err) && err.code === code;
}

/**
 * Collects what a watch delivers and lets a test wait until a condition holds.
 * Stores backed by a remote peer deliver asynchronously, so tests wait for the
 * events rather than expecting them right after the write. The guard timeout only
 * turns a missing event into a clear failure; nothing asserts on speed.
 */
export class Collector<T> {
  readonly items: T[] = [];
  private waiters: { done: () => boolean; resolve: () => void }[] = [];

  push = (batch: T[]): void => {
    this.items.push(...batch);
    this.waiters = this.waiters.filter((w) => {
      if (!w.done()) return true;
      w.resolve();
      return false;
    });
  };

  async waitFor(count: number, guardMs = 10_000): Promise<T[]> {
    if (this.items.length >= count) return this.items;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        new Promise<void>((resolve) => this.waiters.push({ done: () => this.items.length >= count, resolve })),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`expected ${count} watch events, got ${this.items.length}`)), guardMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
    return this.items;
  }
}

/** What a contract suite's factory returns: a fresh store and how to reopen and remove it. */
export interface StoreFixture<S extends { close(): Promise<void> }> {
  store: S;
  /** Opens the same backing storage again (after `store.close()`); omit if the store cannot. */
  reopen?: () => Promise<S>;
  /** Removes the backing storage. Called after every store the test opened is closed. */
  cleanup: () => Promise<void>;
}

export interface StoreHarness<S> {
  store: S;
  reopen?: () => Promise<S>;
}

/** Runs `body` on a fresh store; closes every store it opened and cleans up, pass or fail. */
export async function withStoreFixture<S extends { close(): Promise<void> }>(
  factory: () => Promise<StoreFixture<S>>,
  body: (h: StoreHarness<S>) => Promise<void>,
): Promise<void> {
  const fixture = await factory();
  const opened = [fixture.store];
  const reopen = fixture.reopen;
  try {
    await body({
      store: fixture.store,
      reopen: reopen && (async () => {
        const store = await reopen();
        opened.push(store);
        return store;
      }),
    });
  } finally {
    for (const store of opened) await store.close();
    await fixture.cleanup();
  }
}
