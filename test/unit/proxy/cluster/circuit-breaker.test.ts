// Circuit breakers: requests beyond maxRequests, or beyond maxPendingRequests
// waiting for one of maxConnections, are shed at once with 503 and flag UO;
// maxRequestsPerConnection closes upstream connections after that many.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { CircuitBreakers } from '../../../../core/model/proxy-config.ts';
import type { RunningProxy } from '../../../../proxy/proxy.ts';
import { cluster, endpoints, fullUpdate, request, route, routeConfig, startSidecar, toCluster, vhost } from '../proxy-test-helpers.ts';
import type { Reply } from '../proxy-test-helpers.ts';
import { startControlledUpstream, until } from '../resilience/resilience-test-helpers.ts';
import type { ControlledUpstream } from '../resilience/resilience-test-helpers.ts';

describe('circuit breakers', () => {
  let up: ControlledUpstream;
  let proxy: RunningProxy;

  before(async () => {
    up = await startControlledUpstream('up');
    proxy = await startSidecar();
  });

  after(async () => {
    up.release();
    await proxy.close();
    await up.close();
  });

  async function configure(cb: CircuitBreakers): Promise<void> {
    await proxy.apply(
      fullUpdate([
        routeConfig('outbound', [vhost('svc', ['svc'], [route('r', [], toCluster('svc'))])]),
        cluster('svc', 'ROUND_ROBIN', { circuitBreakers: cb }),
        endpoints('svc', [up.port]),
      ]),
    );
  }
  const get = (): Promise<Reply> => request(proxy.ports.outbound!, { headers: { host: 'svc' } });

  it('sheds requests beyond maxRequests with 503 UO, at once', async () => {
    await configure({ maxRequests: 2 });
    up.mode = 'hang';
    const held = [get(), get()];
    await until(() => up.held() === 2, 'two requests at the upstream');
    const shed = await Promise.all([get(), get(), get()]);
    for (const r of shed) {
      assert.equal(r.status, 503);
      assert.equal(r.headers['x-jibe-response-flags'], 'UO');
    }
    assert.equal(proxy.stats.cluster('svc').upstream_rq_pending_overflow, 3);
    up.mode = 'ok';
    up.release();
    for (const r of await Promise.all(held)) assert.equal(r.status, 200);
    assert.equal((await get()).status, 200, 'room again once the load is gone');
  });

  it('queues up to maxPendingRequests for maxConnections and sheds the rest', async () => {
    await configure({ maxConnections: 1, maxPendingRequests: 1 });
    const stats = proxy.stats.cluster('svc');
    const overflowBefore = stats.upstream_rq_pending_overflow;
    const connectionsBefore = up.connections;
    up.mode = 'hang';
    const first = get();
    await until(() => up.held() === 1, 'the first request at the upstream');
    const second = get();
    await until(() => stats.upstream_rq_pending_active === 1, 'the second request pending');
    const third = await get();
    assert.equal(third.status, 503);
    assert.equal(third.headers['x-jibe-response-flags'], 'UO');
    assert.equal(stats.upstream_rq_pending_overflow, overflowBefore + 1);
    up.release();
    await until(() => up.held() === 1, 'the pending request on the freed connection');
    up.mode = 'ok';
    up.release();
    assert.equal((await first).status, 200);
    assert.equal((await second).status, 200);
    assert.equal(stats.upstream_rq_pending_active, 0);
    assert.equal(up.connections - connectionsBefore, 1, 'both went over the one allowed connection');
  });

  it('closes an upstream connection after maxRequestsPerConnection', async () => {
    await configure({ maxRequestsPerConnection: 1 });
    up.mode = 'ok';
    const before = up.connections;
    for (let i = 0; i < 3; i++) assert.equal((await get()).status, 200);
    assert.equal(up.connections - before, 3);
  });
});
