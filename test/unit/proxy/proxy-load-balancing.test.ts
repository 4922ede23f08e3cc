// Load balancing: weighted route clusters, round robin, least request, random,
// the balancer registry, and no healthy upstream.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { JibeError } from '../../../core/errors/errors.ts';
import type { ClusterResource } from '../../../core/model/proxy-config.ts';
import { UnknownLoadBalancerError } from '../../../proxy/cluster/load-balancer.ts';
import { createDefaultLoadBalancerRegistry } from '../../../proxy/cluster/load-balancers.ts';
import { UpstreamPool, DEFAULT_POOL_SETTINGS } from '../../../proxy/cluster/upstream-pool.ts';
import { CompiledRoute } from '../../../proxy/router/route-table.ts';
import { ClusterStats } from '../../../proxy/stats/proxy-stats.ts';
import type { RunningProxy } from '../../../proxy/proxy.ts';
import { cluster, endpoints, fullUpdate, request, route, routeConfig, startSidecar, startUpstream, vhost } from './proxy-test-helpers.ts';
import type { Upstream } from './proxy-test-helpers.ts';

/** A deterministic stand-in for Math.random: evenly spaced values over [0, 1). */
function evenlySpaced(n: number): () => number {
  let i = 0;
  return () => ((i++ % n) + 0.5) / n;
}

describe('weighted route clusters', () => {
  it('splits exactly 80/20 over evenly spaced random numbers', () => {
    const r = new CompiledRoute(
      { name: 'split', match: [], action: { clusters: [{ cluster: 'v1', weight: 80 }, { cluster: 'v2', weight: 20 }] } },
      'vh',
    );
    const next = evenlySpaced(1000);
    const counts = [0, 0];
    for (let i = 0; i < 1000; i++) counts[r.pickCluster(next())]++;
    assert.deepEqual(counts, [800, 200]);
  });

  it('never picks a zero-weight cluster', () => {
    const r = new CompiledRoute({ name: 's', match: [], action: { clusters: [{ cluster: 'a', weight: 0 }, { cluster: 'b', weight: 100 }] } }, 'vh');
    const next = evenlySpaced(100);
    for (let i = 0; i < 100; i++) assert.equal(r.pickCluster(next()), 1);
  });
});

describe('balancers', () => {
  const registry = createDefaultLoadBalancerRegistry();
  const pool = new UpstreamPool(DEFAULT_POOL_SETTINGS, new ClusterStats());
  const hosts = [pool.host('10.0.0.1', 80), pool.host('10.0.0.2', 80), pool.host('10.0.0.3', 80)];
  after(() => pool.destroy());

  it('round robin visits every host in turn', () => {
    const lb = registry.create('ROUND_ROBIN', { hosts, weights: undefined, random: () => 0.5 });
    const seen = Array.from({ length: 6 }, () => lb.pick()!.address);
    assert.deepEqual(seen.slice(0, 3).sort(), ['10.0.0.1', '10.0.0.2', '10.0.0.3']);
    assert.deepEqual(seen.slice(3), seen.slice(0, 3));
  });

  it('weighted round robin keeps the proportions, interleaved', () => {
    const lb = registry.create('ROUND_ROBIN', { hosts, weights: [3, 1, 1], random: Math.random });
    const counts = new Map<string, number>();
    for (let i = 0; i < 50; i++) {
      const a = lb.pick()!.address;
      counts.set(a, (counts.get(a) ?? 0) + 1);
    }
    assert.deepEqual([counts.get('10.0.0.1'), counts.get('10.0.0.2'), counts.get('10.0.0.3')], [30, 10, 10]);
  });

  it('least request prefers the host with fewer requests in flight', () => {
    const lb = registry.create('LEAST_REQUEST', { hosts: hosts.slice(0, 2), weights: undefined, random: Math.random });
    hosts[0].active = 5;
    try {
      for (let i = 0; i < 20; i++) assert.equal(lb.pick(), hosts[1]);
    } finally {
      hosts[0].active = 0;
    }
  });

  it('random follows the random source, and endpoint weights when they differ', () => {
    const uniform = registry.create('RANDOM', { hosts, weights: undefined, random: () => 0.7 });
    assert.equal(uniform.pick(), hosts[2]);
    const weighted = registry.create('RANDOM', { hosts, weights: [8, 1, 1], random: () => 0.79 });
    assert.equal(weighted.pick(), hosts[0]);
  });

  it('rejects unknown and duplicate policy names with typed errors', () => {
    assert.throws(() => registry.create('MAGLEV', { hosts, weights: undefined, random: Math.random }), (e: unknown) => {
      assert.ok(e instanceof UnknownLoadBalancerError);
      assert.equal(e.code, 'JIBE_ERR_PLUGIN_UNKNOWN');
      assert.match(e.message, /MAGLEV/);
      return true;
    });
    assert.throws(() => registry.register('RANDOM', () => ({ pick: () => undefined })), (e: unknown) => e instanceof JibeError && e.code === 'JIBE_ERR_PLUGIN_DUPLICATE');
  });
});

describe('load balancing through the proxy', () => {
  let proxy: RunningProxy;
  const upstreams: Upstream[] = [];
  let slow: Upstream;
  let releaseSlow: () => void = () => {};
  let port: number;

  before(async () => {
    for (const name of ['a', 'b', 'c', 'v1', 'v2']) upstreams.push(await startUpstream(name));
    let held: http.ServerResponse[] = [];
    slow = await startUpstream('slow', (_req, res) => {
      held.push(res);
    });
    releaseSlow = () => {
      for (const res of held) res.end('slow');
      held = [];
    };
    const [a, b, c, v1, v2] = upstreams;
    const fast = await startUpstream('fast');
    upstreams.push(fast);
    proxy = await startSidecar();
    port = proxy.ports.outbound!;
    const lr: ClusterResource = cluster('lr', 'LEAST_REQUEST');
    await proxy.apply(
      fullUpdate([
        routeConfig('outbound', [
          vhost('rr', ['rr'], [route('all', [], { clusters: [{ cluster: 'rr', weight: 100 }] })]),
          vhost('split', ['split'], [route('all', [], { clusters: [{ cluster: 'v1', weight: 80 }, { cluster: 'v2', weight: 20 }] })]),
          vhost('lr', ['lr'], [route('all', [], { clusters: [{ cluster: 'lr', weight: 100 }] })]),
          vhost('down', ['down'], [route('all', [], { clusters: [{ cluster: 'down', weight: 100 }] })]),
        ]),
        cluster('rr'),
        endpoints('rr', [a.port, b.port, c.port, { port: 1, healthy: false }]),
        cluster('v1'),
        endpoints('v1', [v1.port]),
        cluster('v2'),
        endpoints('v2', [v2.port]),
        lr,
        endpoints('lr', [slow.port, fast.port]),
        cluster('down'),
        endpoints('down', [{ port: 1, healthy: false }]),
      ]),
    );
  });

  after(async () => {
    releaseSlow();
    await proxy.close();
    for (const u of upstreams) await u.close();
    await slow.close();
  });

  it('round robin spreads requests evenly over healthy endpoints only', async () => {
    const counts = new Map<string, number>();
    for (let i = 0; i < 30; i++) {
      const reply = await request(port, { headers: { host: 'rr' } });
      assert.equal(reply.status, 200);
      const name = reply.body.split(' ')[0];
      counts.set(name, (counts.get(name) ?? 0) + 1);
    }
    assert.deepEqual(Object.fromEntries([...counts].sort()), { a: 10, b: 10, c: 10 });
  });

  it('splits a weighted route about 80/20 over 1000 requests', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 20 });
    try {
      const replies = await Promise.all(Array.from({ length: 1000 }, () => request(port, { headers: { host: 'split' }, agent })));
      const v1 = replies.filter((r) => r.body.startsWith('v1 ')).length;
      const v2 = replies.filter((r) => r.body.startsWith('v2 ')).length;
      assert.equal(v1 + v2, 1000);
      // Binomial(1000, 0.8) has a standard deviation of 12.6: ±70 is more than 5 of them.
      assert.ok(v1 > 730 && v1 < 870, `v1 got ${v1} of 1000`);
    } finally {
      agent.destroy();
    }
  });

  it('least request sends to the idle endpoint while the other is busy', async () => {
    const agent = new http.Agent({ keepAlive: true });
    try {
      // Whichever endpoint the first request lands on, wait until the slow one holds one.
      const pending: Array<Promise<unknown>> = [];
      while (slow.requests.length === 0) {
        pending.push(request(port, { headers: { host: 'lr' }, agent }));
        await new Promise((r) => setTimeout(r, 20));
      }
      for (let i = 0; i < 10; i++) {
        const reply = await request(port, { headers: { host: 'lr' }, agent });
        assert.equal(reply.body, 'fast GET /');
      }
      releaseSlow();
      await Promise.all(pending);
    } finally {
      agent.destroy();
    }
  });

  it('answers 503 no healthy upstream when no endpoint is healthy', async () => {
    const reply = await request(port, { headers: { host: 'down' } });
    assert.equal(reply.status, 503);
    assert.equal(reply.body, 'no healthy upstream');
    assert.equal(reply.headers.server, 'jibe');
    assert.equal(reply.headers['x-jibe-response-flags'], 'UH');
    assert.ok(proxy.stats.cluster('down').upstream_rq_no_healthy >= 1);
  });
});
