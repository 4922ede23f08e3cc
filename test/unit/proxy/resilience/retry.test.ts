// Retry building blocks: what retryOn allows, backoff bounds, the retry
// budget's Linkerd semantics, the maxRetries breaker, and mirror helpers.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RetryPolicy } from '../../../../core/model/proxy-config.ts';
import { CircuitBreaker } from '../../../../proxy/cluster/circuit-breaker.ts';
import { shadowAuthority, shouldMirror } from '../../../../proxy/resilience/mirror.ts';
import { RetryBudget } from '../../../../proxy/resilience/retry-budget.ts';
import { CompiledRetryPolicy, backoffMs, retryableFailure, retryableStatus } from '../../../../proxy/resilience/retry-policy.ts';
import { ClusterStats } from '../../../../proxy/stats/proxy-stats.ts';
import { manualClock, seededRandom } from './resilience-test-helpers.ts';

const policy = (retryOn: string[], retriableStatusCodes: number[] = []): CompiledRetryPolicy =>
  new CompiledRetryPolicy({ attempts: 2, retryOn, retriableStatusCodes, backoffBaseMs: 25, backoffMaxMs: 250 } satisfies RetryPolicy);

describe('retryableStatus', () => {
  it('5xx retries every 5xx; gateway-error only 502, 503, 504', () => {
    assert.equal(retryableStatus(policy(['5xx']), 500), true);
    assert.equal(retryableStatus(policy(['5xx']), 404), false);
    const gw = policy(['gateway-error']);
    assert.deepEqual([500, 502, 503, 504].map((s) => retryableStatus(gw, s)), [false, true, true, true]);
  });

  it('retriable-4xx is 409; retriable-status-codes lists its own', () => {
    assert.equal(retryableStatus(policy(['retriable-4xx']), 409), true);
    assert.equal(retryableStatus(policy(['retriable-4xx']), 429), false);
    assert.equal(retryableStatus(policy(['retriable-status-codes'], [429]), 429), true);
    assert.equal(retryableStatus(policy([], [429]), 429), false, 'codes apply only with retriable-status-codes');
  });

  it('gRPC conditions read grpc-status', () => {
    const p = policy(['unavailable', 'resource-exhausted', 'cancelled', 'deadline-exceeded']);
    assert.deepEqual([14, 8, 1, 4, 13, 0].map((g) => retryableStatus(p, 200, g)), [true, true, true, true, false, false]);
    assert.equal(retryableStatus(policy(['internal']), 200, 13), true);
    assert.equal(retryableStatus(policy(['5xx']), 200, 14), false);
  });
});

describe('retryableFailure', () => {
  it('maps connect-failure, reset and refused-stream, which 5xx also covers', () => {
    assert.equal(retryableFailure(policy(['connect-failure']), 'connect-failure'), true);
    assert.equal(retryableFailure(policy(['connect-failure']), 'reset'), false);
    assert.equal(retryableFailure(policy(['reset']), 'reset'), true);
    assert.equal(retryableFailure(policy(['refused-stream']), 'refused-stream'), true);
    assert.equal(retryableFailure(policy(['5xx']), 'reset'), true);
    assert.equal(retryableFailure(policy(['gateway-error']), 'connect-failure'), true);
    assert.equal(retryableFailure(policy(['retriable-4xx']), 'connect-failure'), false);
  });
});

describe('backoffMs', () => {
  it('is fully jittered below min(base × 2^(n-1), max)', () => {
    assert.equal(backoffMs(1, 25, 250, () => 0), 0);
    assert.equal(backoffMs(1, 25, 250, () => 0.9999), 24);
    assert.equal(backoffMs(2, 25, 250, () => 0.9999), 49);
    assert.equal(backoffMs(3, 25, 250, () => 0.9999), 99);
    assert.equal(backoffMs(10, 25, 250, () => 0.9999), 249, 'capped at the max');
    const random = seededRandom(5);
    for (let i = 0; i < 1000; i++) {
      const b = backoffMs(3, 25, 250, random);
      assert.ok(b >= 0 && b < 100);
    }
  });
});

describe('RetryBudget', () => {
  it('allows retryRatio × requests plus minRetriesPerSecond × ttl', () => {
    const clock = manualClock(0);
    const budget = new RetryBudget({ retryRatio: 0.2, minRetriesPerSecond: 1, ttlMs: 10_000 }, clock.now);
    // Reserve: 1/s × 10 s = 10 retries with no traffic at all.
    let granted = 0;
    while (budget.tryRetry()) granted++;
    assert.equal(granted, 10);
    for (let i = 0; i < 100; i++) budget.recordRequest();
    granted = 0;
    while (budget.tryRetry()) granted++;
    assert.equal(granted, 20, '20% of 100 requests');
  });

  it('forgets requests and retries that left the window', () => {
    const clock = manualClock(0);
    const budget = new RetryBudget({ retryRatio: 0.5, minRetriesPerSecond: 0, ttlMs: 3000 }, clock.now);
    for (let i = 0; i < 10; i++) budget.recordRequest();
    for (let i = 0; i < 5; i++) assert.equal(budget.tryRetry(), true);
    assert.equal(budget.tryRetry(), false);
    clock.advance(2000);
    assert.equal(budget.tryRetry(), false, 'still inside the window');
    clock.advance(1000);
    assert.equal(budget.allowed(), 0, 'the first second left the window');
    budget.recordRequest();
    budget.recordRequest();
    assert.equal(budget.tryRetry(), true);
    assert.equal(budget.tryRetry(), false);
  });
});

describe('maxRetries breaker', () => {
  it('hands out at most maxRetries concurrent retry slots', () => {
    const stats = new ClusterStats();
    const cb = new CircuitBreaker({ maxRetries: 2 }, stats);
    assert.equal(cb.tryRetry(), true);
    assert.equal(cb.tryRetry(), true);
    assert.equal(cb.tryRetry(), false);
    assert.equal(stats.upstream_rq_retry_overflow, 1);
    cb.retryDone();
    assert.equal(cb.tryRetry(), true);
  });
});

describe('mirror', () => {
  it('samples the percentage and marks the shadow authority', () => {
    const random = seededRandom(9);
    let n = 0;
    for (let i = 0; i < 10_000; i++) if (shouldMirror(25, random)) n++;
    assert.ok(n > 2300 && n < 2700, `${n}`);
    assert.equal(shadowAuthority('reviews:9080'), 'reviews-shadow:9080');
    assert.equal(shadowAuthority('reviews'), 'reviews-shadow');
    assert.equal(shadowAuthority('[::1]:80'), '[::1]-shadow:80');
  });
});
