// Delta updates at scale: a push that only changes some clusters' endpoints is
// applied in O(changed) — the other clusters, route tables and the listener
// generation are carried over as the same objects — while anything that could
// break a reference still goes through the full check.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { JibeError } from '../../../core/errors/errors.ts';
import type { ProxyResource } from '../../../core/model/proxy-config.ts';
import { defaultLoadBalancers } from '../../../proxy/cluster/load-balancers.ts';
import { applyUpdate, buildState } from '../../../proxy/config/proxy-state.ts';
import type { StateContext } from '../../../proxy/config/proxy-state.ts';
import { listenerIndex } from '../../../proxy/listeners/listener-index.ts';
import { ProxyStats } from '../../../proxy/stats/proxy-stats.ts';
import { cluster, deltaUpdate, endpoints, fullUpdate, route, routeConfig, toCluster, vhost } from './proxy-test-helpers.ts';

function context(): StateContext {
  return { loadBalancers: defaultLoadBalancers, stats: new ProxyStats(), random: () => 0 };
}

const NAMES = ['a', 'b', 'c', 'd'];
const base = (): ProxyResource[] => [
  routeConfig('outbound', NAMES.map((n) => vhost(n, [n], [route('r', [{ uri: { prefix: '/' } }], toCluster(n))]))),
  { type: 'listener', name: 'outbound|80|a', direction: 'outbound', address: '0.0.0.0', port: 80, protocol: 'http', routeConfig: 'outbound', destinationAddresses: ['10.0.0.1'] },
  ...NAMES.flatMap((n) => [cluster(n), endpoints(n, [8080])]),
];

describe('delta updates of endpoints', () => {
  it('rebuilds only the clusters whose endpoints changed and keeps the listener generation', () => {
    const ctx = context();
    const first = applyUpdate(new Map(), fullUpdate(base(), 'v1'), ctx);
    const index = listenerIndex(first.state);
    const second = applyUpdate(first.resources, deltaUpdate([endpoints('b', [8080, 8081])], [], 'v2'), ctx, first.state);
    assert.equal(second.state.version, 'v2');
    for (const n of NAMES) {
      if (n === 'b') assert.notEqual(second.state.clusters.get(n), first.state.clusters.get(n));
      else assert.equal(second.state.clusters.get(n), first.state.clusters.get(n), `cluster ${n} carried over`);
    }
    assert.equal(second.state.clusters.get('b')!.endpointKeys.size, 2);
    assert.equal(second.state.routeTables.get('outbound'), first.state.routeTables.get('outbound'));
    assert.equal(second.state.listenerGeneration, first.state.listenerGeneration);
    assert.equal(listenerIndex(second.state), index, 'the listener index is not compiled again');
    // The same state a full build of the resulting resources gives.
    const full = buildState('v2', second.resources, ctx);
    assert.deepEqual([...full.clusters.keys()].sort(), [...second.state.clusters.keys()].sort());
    assert.deepEqual(full.clusters.get('b')!.endpointKeys, second.state.clusters.get('b')!.endpointKeys);
  });

  it('drops a cluster whose cluster and endpoints are removed when nothing refers to it, and compiles a new listener generation on listener changes', () => {
    const ctx = context();
    const first = applyUpdate(new Map(), fullUpdate([...base(), cluster('e'), endpoints('e', [1])], 'v1'), ctx);
    const second = applyUpdate(first.resources, deltaUpdate([], [{ type: 'cluster', name: 'e' }, { type: 'endpoints', name: 'e' }], 'v2'), ctx, first.state);
    assert.equal(second.state.clusters.has('e'), false);
    const listener = { ...(first.resources.get('listener/outbound|80|a') as ProxyResource & { type: 'listener' }), destinationAddresses: ['10.0.0.2'] };
    const third = applyUpdate(second.resources, deltaUpdate([listener], [], 'v3'), ctx, second.state);
    assert.notEqual(third.state.listenerGeneration, second.state.listenerGeneration);
    assert.equal(listenerIndex(third.state).outbound('10.0.0.2', 80)?.name, 'outbound|80|a');
  });

  it('still refuses a delta that removes a cluster a route refers to', () => {
    const ctx = context();
    const first = applyUpdate(new Map(), fullUpdate(base(), 'v1'), ctx);
    assert.throws(
      () => applyUpdate(first.resources, deltaUpdate([endpoints('a', [9090])], [{ type: 'cluster', name: 'c' }], 'v2'), ctx, first.state),
      (e: unknown) => e instanceof JibeError && /unknown cluster c/.test(e.message),
    );
  });
});
