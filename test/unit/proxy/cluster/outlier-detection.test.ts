// Outlier detection: consecutive 5xx and gateway errors (connect failures
// included) eject an endpoint, the balancer routes around it, it comes back
// after baseEjectionTime × times ejected, and ejections survive endpoint
// updates. Time is a manual clock: nothing sleeps.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { OutlierDetection } from '../../../../core/model/proxy-config.ts';
import { OutlierDetector } from '../../../../proxy/cluster/outlier-detector.ts';
import { DEFAULT_POOL_SETTINGS, UpstreamPool } from '../../../../proxy/cluster/upstream-pool.ts';
import type { RunningProxy } from '../../../../proxy/proxy.ts';
import { ClusterStats } from '../../../../proxy/stats/proxy-stats.ts';
import { cluster, deltaUpdate, endpoints, freePort, fullUpdate, request, route, routeConfig, startSidecar, toCluster, vhost } from '../proxy-test-helpers.ts';
import { manualClock, seededRandom, startControlledUpstream } from '../resilience/resilience-test-helpers.ts';
import type { ControlledUpstream } from '../resilience/resilience-test-helpers.ts';

const OD: OutlierDetection = { consecutive5xxErrors: 3, intervalMs: 1000, baseEjectionTimeMs: 30_000, maxEjectionPercent: 100, minHealthPercent: 0 };

describe('OutlierDetector', () => {
  const pool = new UpstreamPool(DEFAULT_POOL_SETTINGS, new ClusterStats());
  const [a, b, c] = [1, 2, 3].map((i) => pool.host(`10.0.0.${i}`, 80));
  after(() => pool.destroy());

  it('ejects after consecutive 5xx; a success in between resets the count', () => {
    const clock = manualClock();
    const od = new OutlierDetector(OD, clock.now, new ClusterStats());
    od.setHosts([a.key, b.key]);
    od.recordStatus(a, 500);
    od.recordStatus(a, 500);
    od.recordStatus(a, 200);
    od.recordStatus(a, 500);
    od.recordStatus(a, 500);
    assert.equal(od.isEjected(a.key), false);
    od.recordStatus(a, 500);
    assert.equal(od.isEjected(a.key), true);
    assert.equal(od.stats.outlier_detection_ejections_active, 1);
  });

  it('counts connect failures and resets as gateway errors', () => {
    const od = new OutlierDetector({ ...OD, consecutive5xxErrors: undefined, consecutiveGatewayErrors: 2 }, manualClock().now, new ClusterStats());
    od.setHosts([a.key, b.key]);
    od.recordStatus(a, 500); // not a gateway error
    od.recordFailure(a, 1);
    assert.equal(od.isEjected(a.key), false);
    od.recordFailure(a, 2);
    assert.equal(od.isEjected(a.key), true);
    assert.equal(od.stats.outlier_detection_ejections_detected_consecutive_gateway_failure, 1);
  });

  it('caps ejections at maxEjectionPercent, but always allows one', () => {
    const od = new OutlierDetector({ ...OD, consecutive5xxErrors: 1, maxEjectionPercent: 10 }, manualClock().now, new ClusterStats());
    od.setHosts([a.key, b.key, c.key]);
    od.recordStatus(a, 503);
    od.recordStatus(b, 503);
    assert.deepEqual([od.isEjected(a.key), od.isEjected(b.key)], [true, false]);
    assert.equal(od.stats.outlier_detection_ejections_overflow, 1);
  });

  it('re-admits after baseEjectionTime × times ejected; stops enforcing below minHealthPercent', () => {
    const clock = manualClock();
    const od = new OutlierDetector({ ...OD, consecutive5xxErrors: 1, minHealthPercent: 60 }, clock.now, new ClusterStats());
    od.setHosts([a.key, b.key]);
    od.recordStatus(a, 500);
    assert.equal(od.enforcing, false, '1 of 2 hosts in service is below 60%');
    clock.advance(29_999);
    od.sweep();
    assert.equal(od.isEjected(a.key), true);
    clock.advance(1);
    od.sweep();
    assert.equal(od.isEjected(a.key), false);
    od.recordStatus(a, 500);
    clock.advance(30_000);
    od.sweep();
    assert.equal(od.isEjected(a.key), true, 'second ejection lasts twice as long');
    clock.advance(30_000);
    od.sweep();
    assert.equal(od.isEjected(a.key), false);
  });
});

describe('outlier detection through the proxy', () => {
  let bad: ControlledUpstream;
  let good: ControlledUpstream;
  let third: ControlledUpstream;
  let proxy: RunningProxy;
  const clock = manualClock();

  before(async () => {
    [bad, good, third] = await Promise.all([startControlledUpstream('bad'), startControlledUpstream('good'), startControlledUpstream('third')]);
    proxy = await startSidecar({ random: seededRandom(3), now: clock.now });
    await proxy.apply(
      fullUpdate([
        routeConfig('outbound', [vhost('svc', ['svc'], [route('r', [], toCluster('svc'))])]),
        cluster('svc', 'ROUND_ROBIN', { outlierDetection: OD }),
        endpoints('svc', [bad.port, good.port]),
      ]),
    );
  });

  after(async () => {
    await proxy.close();
    await Promise.all([bad.close(), good.close(), third.close()]);
  });

  const get = () => request(proxy.ports.outbound!, { headers: { host: 'svc' } });

  it('routes around an endpoint that fails, keeps it out across endpoint updates, and re-admits it', async () => {
    bad.mode = 'fail';
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await get()).status);
    assert.equal(statuses.filter((s) => s === 503).length, 3, `three failures before ejection: ${statuses}`);
    const stats = proxy.stats.cluster('svc');
    assert.equal(stats.outlier_detection_ejections_active, 1);
    const before = bad.requests.length;
    for (let i = 0; i < 10; i++) assert.equal((await get()).headers['x-upstream'], 'good');
    assert.equal(bad.requests.length, before, 'the ejected endpoint got no traffic');

    // An endpoint update rebuilds the cluster; the verdict stays.
    await proxy.apply(deltaUpdate([endpoints('svc', [bad.port, good.port, third.port])]));
    const seen = new Set<string>();
    for (let i = 0; i < 10; i++) seen.add((await get()).headers['x-upstream'] as string);
    assert.deepEqual([...seen].sort(), ['good', 'third']);

    bad.mode = 'ok';
    clock.advance(30_000);
    seen.clear();
    for (let i = 0; i < 9; i++) seen.add((await get()).headers['x-upstream'] as string);
    assert.deepEqual([...seen].sort(), ['bad', 'good', 'third'], 're-admitted after baseEjectionTime');
    assert.equal(stats.outlier_detection_ejections_active, 0);
  });

  it('ejects an endpoint that refuses connections (gateway errors)', async () => {
    const closed = await freePort();
    await proxy.apply(
      deltaUpdate([
        cluster('svc', 'ROUND_ROBIN', { outlierDetection: { ...OD, consecutive5xxErrors: undefined, consecutiveGatewayErrors: 2 } }),
        endpoints('svc', [closed, good.port]),
      ]),
    );
    const flags: string[] = [];
    for (let i = 0; i < 8; i++) {
      const r = await get();
      if (r.status !== 200) flags.push(String(r.headers['x-jibe-response-flags']));
    }
    assert.deepEqual(flags, ['UF', 'UF']);
    for (let i = 0; i < 5; i++) assert.equal((await get()).status, 200);
  });
});
