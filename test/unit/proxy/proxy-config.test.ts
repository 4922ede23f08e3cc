// Config updates: validated as a whole, applied atomically, rejected with
// every problem named while the previous config keeps serving; unchanged
// clusters and route tables carried over so keep-alive pools survive.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { JibeError } from '../../../core/errors/errors.ts';
import type { ProxyResource } from '../../../core/model/proxy-config.ts';
import { defaultLoadBalancers } from '../../../proxy/cluster/load-balancers.ts';
import { applyUpdate, releaseUnused } from '../../../proxy/config/proxy-state.ts';
import type { ResourceMap, StateContext } from '../../../proxy/config/proxy-state.ts';
import { ProxyStats } from '../../../proxy/stats/proxy-stats.ts';
import type { RunningProxy } from '../../../proxy/proxy.ts';
import {
  cluster,
  deltaUpdate,
  endpoints,
  fullUpdate,
  listener,
  request,
  route,
  routeConfig,
  simpleOutbound,
  startSidecar,
  startUpstream,
  toCluster,
  vhost,
} from './proxy-test-helpers.ts';
import type { Upstream } from './proxy-test-helpers.ts';

function context(): StateContext {
  return { loadBalancers: defaultLoadBalancers, stats: new ProxyStats(), random: Math.random, reservedPorts: new Map([[15000, 'admin server']]) };
}

const base = (): ProxyResource[] => [
  routeConfig('outbound', [vhost('a', ['a'], [route('r', [{ uri: { prefix: '/' } }], toCluster('a'))])]),
  cluster('a'),
  endpoints('a', [8080]),
];

function rejects(resources: ResourceMap, upserts: unknown[], pattern: RegExp): JibeError {
  let caught: unknown;
  try {
    applyUpdate(resources, fullUpdate(upserts as ProxyResource[]), context());
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof JibeError, 'expected a JibeError');
  assert.equal(caught.code, 'JIBE_ERR_CONFIG_REJECTED');
  assert.match(caught.message, pattern);
  return caught;
}

describe('applyUpdate', () => {
  const empty: ResourceMap = new Map();

  it('builds a state from a valid full update', () => {
    const { resources, state } = applyUpdate(empty, fullUpdate(base(), 'v1'), context());
    assert.equal(state.version, 'v1');
    assert.equal(resources.size, 3);
    assert.ok(state.outbound);
    assert.equal(state.clusters.get('a')!.hosts.length, 1);
  });

  it('rejects a route to an unknown cluster, naming route and cluster', () => {
    const e = rejects(empty, [routeConfig('outbound', [vhost('a', ['a'], [route('to-nowhere', [], toCluster('missing'))])])], /route to-nowhere refers to unknown cluster missing/);
    assert.equal(e.details.causes![0].code, 'JIBE_ERR_REFERENCE');
    assert.equal(e.details.causes![0].details.field, 'virtualHosts[0].routes[0].action.clusters[0].cluster');
  });

  it('rejects regexes that do not compile', () => {
    rejects(empty, [...base().slice(1), routeConfig('outbound', [vhost('a', ['a'], [route('re', [{ uri: { regex: '/(unclosed' } }], toCluster('a'))])])], /regex "\/\(unclosed" does not compile/);
  });

  it('rejects duplicate listener ports, ports the proxy holds, and unknown route configs', () => {
    rejects(empty, [...base(), listener('l1', 'gateway', 8080, 'outbound'), listener('l2', 'gateway', 8080, 'outbound')], /port 8080 is also used by listener l1/);
    rejects(empty, [...base(), listener('l1', 'gateway', 15000, 'outbound')], /port 15000 is used by the admin server/);
    rejects(empty, [...base(), listener('l1', 'inbound', 9090, 'nope')], /route config nope does not exist/);
  });

  it('rejects malformed resources and reports every problem at once', () => {
    const e = rejects(
      empty,
      [
        { type: 'cluster', name: 'c', service: 'c', port: 80, lbPolicy: 'MAGLEV', protocol: 'http1' },
        { type: 'endpoints', name: 'c', endpoints: [{ address: 'not an address', port: 70000, healthy: 'yes' }] },
        { type: 'widget', name: 'w' },
        { name: 'no-type' },
        routeConfig('r', [vhost('v', ['x', 'X'], [route('bad', [], { clusters: [{ cluster: 'c', weight: 0 }], directResponse: { status: 200 } })])]),
      ],
      /unknown load balancer policy "MAGLEV"/,
    );
    const messages = e.details.causes!.map((c) => c.message).join('\n');
    for (const part of [/address must be/, /port must be/, /healthy must be a boolean/, /unknown resource type "widget"/, /domain X is also listed/, /exactly one of clusters, redirect, directResponse/, /add up to 0/]) {
      assert.match(messages, part);
    }
  });

  it('rejects the same resource twice in one update', () => {
    rejects(empty, [...base(), cluster('a')], /appears twice/);
  });

  it('applies delta updates: removes, then upserts', () => {
    const ctx = context();
    const first = applyUpdate(empty, fullUpdate([...base(), cluster('b'), endpoints('b', [1])]), ctx);
    const second = applyUpdate(first.resources, deltaUpdate([endpoints('a', [8080, 8081])], [{ type: 'cluster', name: 'b' }, { type: 'endpoints', name: 'b' }]), ctx, first.state);
    assert.equal(second.state.clusters.has('b'), false);
    assert.equal(second.state.clusters.get('a')!.hosts.length, 2);
    assert.equal(first.state.clusters.get('a')!.hosts.length, 1, 'the previous state is untouched');
  });

  it('keeps pools and route tables across updates that do not change them', () => {
    const ctx = context();
    const first = applyUpdate(empty, fullUpdate(base()), ctx);
    const a1 = first.state.clusters.get('a')!;
    const second = applyUpdate(first.resources, deltaUpdate([endpoints('a', [8080, 8081])]), ctx, first.state);
    const a2 = second.state.clusters.get('a')!;
    assert.notEqual(a2, a1);
    assert.equal(a2.pool, a1.pool, 'an endpoint change keeps the pool');
    assert.equal(a2.hosts[0], a1.hosts[0], 'and the host (its agent and in-flight count)');
    assert.equal(second.state.routeTables.get('outbound'), first.state.routeTables.get('outbound'));
    const third = applyUpdate(second.resources, deltaUpdate([cluster('a', 'LEAST_REQUEST')]), ctx, second.state);
    assert.equal(third.state.clusters.get('a')!.pool, a1.pool, 'a policy change keeps the pool');
    const fourth = applyUpdate(third.resources, deltaUpdate([cluster('a', 'LEAST_REQUEST', { maxConnectionsPerEndpoint: 4 })]), ctx, third.state);
    assert.notEqual(fourth.state.clusters.get('a')!.pool, a1.pool, 'new pool settings build a new pool');
    releaseUnused(third.state, fourth.state, ctx.stats);
    fourth.state.clusters.get('a')!.pool.destroy();
  });
});

describe('config updates on a running proxy', () => {
  let proxy: RunningProxy;
  let a: Upstream;
  let b: Upstream;
  let port: number;

  before(async () => {
    a = await startUpstream('a');
    b = await startUpstream('b');
    proxy = await startSidecar();
    port = proxy.ports.outbound!;
    await proxy.apply(fullUpdate(simpleOutbound(a, b), 'good'));
  });

  after(async () => {
    await proxy.close();
    await a.close();
    await b.close();
  });

  it('rejects an invalid update and keeps serving the previous config', async () => {
    await assert.rejects(
      proxy.apply(deltaUpdate([routeConfig('outbound', [vhost('a', ['a'], [route('r', [], toCluster('gone'))])])])),
      (e: unknown) => e instanceof JibeError && /unknown cluster gone/.test(e.message),
    );
    assert.equal(proxy.state().version, 'good');
    assert.equal((await request(port, { headers: { host: 'a' } })).body, 'a GET /');
    assert.equal(proxy.stats.config_update_rejected, 1);
  });

  it('keeps keep-alive connections to endpoints that stay when endpoints change', async () => {
    for (let i = 0; i < 5; i++) await request(port, { headers: { host: 'a' } });
    const connections = a.connections;
    // Endpoint set changes (an unhealthy one joins); `a` stays.
    await proxy.apply(deltaUpdate([endpoints('a', [a.port, { port: 1, healthy: false }])]));
    for (let i = 0; i < 5; i++) assert.equal((await request(port, { headers: { host: 'a' } })).body, 'a GET /');
    assert.equal(a.connections, connections);
  });

  it('moves traffic when endpoints move, and closes idle connections to the endpoint that left', async () => {
    await request(port, { headers: { host: 'a' } });
    assert.ok(a.open.size > 0);
    await proxy.apply(deltaUpdate([endpoints('a', [b.port])]));
    assert.equal((await request(port, { headers: { host: 'a' } })).body, 'b GET /');
    // The pool of the endpoint that left is closed: its idle connections go.
    while (a.open.size > 0) await new Promise((r) => setTimeout(r, 5));
  });
});
