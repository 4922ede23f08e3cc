// Locality-aware selection in the proxy: priority levels with Envoy's
// overprovisioning factor (1.4), spill-over as endpoints turn unhealthy or
// are ejected, and distribute's locality weights. Pure balancer tests: a
// seeded random source and a manual clock, no sockets, no sleeping.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ClusterResource, Endpoint, EndpointsResource, OutlierDetection } from '../../../../core/model/proxy-config.ts';
import { buildCluster } from '../../../../proxy/cluster/cluster.ts';
import type { Cluster } from '../../../../proxy/cluster/cluster.ts';
import { defaultLoadBalancers } from '../../../../proxy/cluster/load-balancers.ts';
import { ClusterStats } from '../../../../proxy/stats/proxy-stats.ts';
import { manualClock, seededRandom } from '../resilience/resilience-test-helpers.ts';

const OD: OutlierDetection = { consecutive5xxErrors: 1, intervalMs: 1000, baseEjectionTimeMs: 30_000, maxEjectionPercent: 100, minHealthPercent: 0 };

function config(extra: Partial<ClusterResource> = {}): ClusterResource {
  return { type: 'cluster', name: 'outbound|9080||reviews.default.svc.cluster.local', service: 'reviews.default.svc.cluster.local', port: 9080, lbPolicy: 'ROUND_ROBIN', protocol: 'http1', localityLb: { overprovisioningFactor: 140 }, ...extra };
}

function ep(address: string, priority: number, healthy = true, locality = ''): Endpoint {
  return { address, port: 9080, healthy, ...(priority ? { priority } : {}), ...(locality ? { locality } : {}) };
}

function make(c: ClusterResource, list: Endpoint[], clock = manualClock()): Cluster {
  const resource: EndpointsResource = { type: 'endpoints', name: c.name, endpoints: list };
  return buildCluster(c, resource, undefined, { loadBalancers: defaultLoadBalancers, statsFor: () => new ClusterStats(), random: seededRandom(7), now: clock.now });
}

/** Share of 10,000 picks per address, rounded to whole percent. */
function shares(cluster: Cluster, picks = 10_000): Record<string, number> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < picks; i++) {
    const host = cluster.pick();
    assert.ok(host, 'a host is picked');
    const address = host.key.split(':')[0];
    counts[address] = (counts[address] ?? 0) + 1;
  }
  return Object.fromEntries(Object.entries(counts).sort().map(([k, v]) => [k, Math.round((v * 100) / picks)]));
}

/** Same addresses, each share within 2 percentage points (picks are random, seeded). */
function near(actual: Record<string, number>, expected: Record<string, number>): void {
  assert.deepEqual(Object.keys(actual), Object.keys(expected), `picked ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}`);
  for (const [k, v] of Object.entries(expected)) assert.ok(Math.abs(actual[k] - v) <= 2, `${k}: ${actual[k]}% is not about ${v}% (${JSON.stringify(actual)})`);
}

describe('locality-aware balancing', () => {
  it('sends everything to the highest priority while it is healthy', () => {
    const c = make(config(), [ep('10.0.0.1', 0), ep('10.0.0.2', 0), ep('10.0.1.1', 1), ep('10.0.2.1', 2)]);
    assert.deepEqual(shares(c), { '10.0.0.1': 50, '10.0.0.2': 50 });
  });

  it('keeps all traffic at a level down to 1/1.4 of its endpoints (overprovisioning), then spills the rest over', () => {
    // 3 of 4 healthy: 75% × 1.4 ≥ 100%, so level 0 keeps everything.
    let c = make(config(), [ep('10.0.0.1', 0), ep('10.0.0.2', 0), ep('10.0.0.3', 0), ep('10.0.0.4', 0, false), ep('10.0.1.1', 1)]);
    near(shares(c), { '10.0.0.1': 33, '10.0.0.2': 33, '10.0.0.3': 33 });
    // 1 of 4 healthy: 25% × 1.4 = 35% stays, 65% spills to level 1.
    c = make(config(), [ep('10.0.0.1', 0), ep('10.0.0.2', 0, false), ep('10.0.0.3', 0, false), ep('10.0.0.4', 0, false), ep('10.0.1.1', 1)]);
    near(shares(c), { '10.0.0.1': 35, '10.0.1.1': 65 });
  });

  it('normalises when every level is degraded, and fails over entirely when a level is gone', () => {
    // Level 0: 1 of 4 (35%); level 1: 1 of 4 (35%): together 70%, scaled to 50/50.
    let c = make(config(), [ep('10.0.0.1', 0), ep('10.0.0.2', 0, false), ep('10.0.0.3', 0, false), ep('10.0.0.4', 0, false), ep('10.0.1.1', 1), ep('10.0.1.2', 1, false), ep('10.0.1.3', 1, false), ep('10.0.1.4', 1, false)]);
    near(shares(c), { '10.0.0.1': 50, '10.0.1.1': 50 });
    c = make(config(), [ep('10.0.0.1', 0, false), ep('10.0.1.1', 1), ep('10.0.2.1', 2)]);
    assert.deepEqual(shares(c), { '10.0.1.1': 100 });
  });

  it('counts ejected endpoints as unhealthy: outlier detection moves traffic to the next locality', () => {
    const clock = manualClock();
    const c = make(config({ outlierDetection: OD }), [ep('10.0.0.1', 0), ep('10.0.1.1', 1)], clock);
    assert.deepEqual(shares(c, 100), { '10.0.0.1': 100 });
    const local = c.pick()!;
    c.outlier!.recordStatus(local, 503);
    assert.deepEqual(shares(c, 100), { '10.0.1.1': 100 });
    clock.advance(30_000);
    assert.deepEqual(shares(c, 100), { '10.0.0.1': 100 }, 're-admitted after the ejection time: traffic comes home');
  });

  it('distribute: localities get their weights, scaled by their health; unlisted localities get nothing', () => {
    const weights = { 'us-east/a': 80, 'us-west/a': 20 };
    let c = make(config({ localityLb: { overprovisioningFactor: 140, localityWeights: weights } }), [
      ep('10.0.0.1', 0, true, 'us-east/a'),
      ep('10.0.0.2', 0, true, 'us-east/a'),
      ep('10.0.1.1', 0, true, 'us-west/a'),
      ep('10.0.2.1', 0, true, 'eu/a'),
    ]);
    near(shares(c), { '10.0.0.1': 40, '10.0.0.2': 40, '10.0.1.1': 20 });
    // us-east/a at 1 of 4 endpoints: 80 × 0.35 = 28 against 20 → 58% / 42%.
    c = make(config({ localityLb: { overprovisioningFactor: 140, localityWeights: weights } }), [
      ep('10.0.0.1', 0, true, 'us-east/a'),
      ep('10.0.0.2', 0, false, 'us-east/a'),
      ep('10.0.0.3', 0, false, 'us-east/a'),
      ep('10.0.0.4', 0, false, 'us-east/a'),
      ep('10.0.1.1', 0, true, 'us-west/a'),
    ]);
    near(shares(c), { '10.0.0.1': 58, '10.0.1.1': 42 });
  });

  it('without localityLb, priorities are ignored', () => {
    const c = make(config({ localityLb: undefined }), [ep('10.0.0.1', 0), ep('10.0.1.1', 1)]);
    assert.deepEqual(shares(c), { '10.0.0.1': 50, '10.0.1.1': 50 });
  });
});

describe('the proxy refuses malformed locality config (NACK, last good config kept)', () => {
  it('names the field', async () => {
    const { ConfigProblems, validateResourceShape } = await import('../../../../proxy/config/resource-validation.ts');
    const problems = new ConfigProblems();
    const known = (name: string) => defaultLoadBalancers.has(name);
    validateResourceShape(config({ localityLb: { overprovisioningFactor: 0 } }), 0, known, problems);
    validateResourceShape(config({ localityLb: { overprovisioningFactor: 140, localityWeights: { a: -1 } } }), 1, known, problems);
    validateResourceShape({ type: 'endpoints', name: 'x', endpoints: [{ ...ep('10.0.0.1', 0), priority: 1.5 }] }, 2, known, problems);
    assert.deepEqual(problems.list.map((p) => p.details.field), ['localityLb', 'localityLb.localityWeights', 'endpoints[0].priority']);
  });
});
