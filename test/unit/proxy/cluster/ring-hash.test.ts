// Ring hash: stable mapping, only a leaving host's keys move, weights, the
// hash keys (header, cookie, query, source IP), and the generated cookie.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { hash32 } from '../../../../proxy/cluster/hash.ts';
import { RingHash, cookieValue } from '../../../../proxy/cluster/load-balancer-ring-hash.ts';
import { DEFAULT_POOL_SETTINGS, UpstreamPool } from '../../../../proxy/cluster/upstream-pool.ts';
import type { RunningProxy } from '../../../../proxy/proxy.ts';
import { ClusterStats } from '../../../../proxy/stats/proxy-stats.ts';
import { cluster, endpoints, fullUpdate, request, route, routeConfig, startSidecar, startUpstream, toCluster, vhost } from '../proxy-test-helpers.ts';
import type { Upstream } from '../proxy-test-helpers.ts';
import { seededRandom } from '../resilience/resilience-test-helpers.ts';

describe('hash32', () => {
  it('is stable and spreads near keys apart', () => {
    assert.equal(hash32('abc'), hash32('abc'));
    assert.notEqual(hash32('10.0.0.1:80_1'), hash32('10.0.0.1:80_2'));
    // Pinned: every proxy (and every release) must map keys identically.
    assert.equal(hash32(''), hash32(''));
    assert.equal(typeof hash32('x'), 'number');
    assert.ok(hash32('\u4e2d') !== hash32('\u002d'));
  });
});

describe('RingHash', () => {
  const pool = new UpstreamPool(DEFAULT_POOL_SETTINGS, new ClusterStats());
  const hosts = [1, 2, 3, 4, 5].map((i) => pool.host(`10.0.0.${i}`, 8080));
  after(() => pool.destroy());
  const ring = (list = hosts, weights?: number[]) =>
    new RingHash({ hosts: list, weights, random: seededRandom(1), consistentHash: { httpHeaderName: 'x-user', minimumRingSize: 1024 } });

  it('maps a key to the same host every time', () => {
    const r = ring();
    for (let i = 0; i < 100; i++) assert.equal(r.hostFor(`user-${i}`), r.hostFor(`user-${i}`));
    assert.equal(ring().hostFor('user-7'), r.hostFor('user-7'), 'rebuilding the ring keeps the mapping');
  });

  it('moves only the keys of a host that leaves', () => {
    const full = ring();
    const without = ring(hosts.filter((_, i) => i !== 2));
    let moved = 0;
    for (let i = 0; i < 10_000; i++) {
      const key = `k${i}`;
      const before = full.hostFor(key)!;
      const now = without.hostFor(key)!;
      if (before === hosts[2]) {
        moved++;
        assert.notEqual(now, hosts[2]);
      } else {
        assert.equal(now, before, `key ${key} moved although its host stayed`);
      }
    }
    // The removed host owned about a fifth of the keys.
    assert.ok(moved > 1000 && moved < 3000, `moved ${moved}`);
  });

  it('spreads keys over hosts, in proportion to weights', () => {
    const even = ring();
    const counts = new Map<string, number>();
    for (let i = 0; i < 20_000; i++) {
      const h = even.hostFor(`k${i}`)!.address;
      counts.set(h, (counts.get(h) ?? 0) + 1);
    }
    for (const c of counts.values()) assert.ok(c > 2800 && c < 5200, `share ${c} of 20000 over 5 hosts`);
    const weighted = ring(hosts.slice(0, 2), [3, 1]);
    let first = 0;
    for (let i = 0; i < 20_000; i++) if (weighted.hostFor(`k${i}`) === hosts[0]) first++;
    assert.ok(first > 13_500 && first < 16_500, `weight 3:1 gave ${first} of 20000`);
    assert.ok(weighted.points.length >= 1024);
  });

  it('parses cookies', () => {
    assert.equal(cookieValue('a=1; sticky=xyz; b=2', 'sticky'), 'xyz');
    assert.equal(cookieValue('sticky="q"', 'sticky'), 'q');
    assert.equal(cookieValue('a=1, sticky=z', 'sticky'), 'z');
    assert.equal(cookieValue('notsticky=1', 'sticky'), undefined);
    assert.equal(cookieValue(undefined, 'sticky'), undefined);
  });
});

describe('RING_HASH through the proxy', () => {
  let upstreams: Upstream[];
  let proxy: RunningProxy;
  const names = ['h1', 'h2', 'h3'];

  before(async () => {
    upstreams = await Promise.all(names.map((n) => startUpstream(n)));
    proxy = await startSidecar({ random: seededRandom(7) });
    const ports = upstreams.map((u) => u.port);
    await proxy.apply(
      fullUpdate([
        routeConfig('outbound', [
          vhost('byheader', ['byheader'], [route('r', [], toCluster('byheader'))]),
          vhost('bycookie', ['bycookie'], [route('r', [], toCluster('bycookie'))]),
          vhost('byquery', ['byquery'], [route('r', [], toCluster('byquery'))]),
          vhost('byip', ['byip'], [route('r', [], toCluster('byip'))]),
        ]),
        cluster('byheader', 'RING_HASH', { consistentHash: { httpHeaderName: 'x-user', minimumRingSize: 1024 } }),
        endpoints('byheader', ports),
        cluster('bycookie', 'RING_HASH', { consistentHash: { httpCookie: { name: 'sticky', path: '/', ttlMs: 60_000 }, minimumRingSize: 1024 } }),
        endpoints('bycookie', ports),
        cluster('byquery', 'RING_HASH', { consistentHash: { httpQueryParameterName: 'u', minimumRingSize: 64 } }),
        endpoints('byquery', ports),
        cluster('byip', 'RING_HASH', { consistentHash: { useSourceIp: true, minimumRingSize: 64 } }),
        endpoints('byip', ports),
      ]),
    );
  });

  after(async () => {
    await proxy.close();
    await Promise.all(upstreams.map((u) => u.close()));
  });

  const port = () => proxy.ports.outbound!;

  it('sends one header value to one upstream, and spreads values', async () => {
    const seen = new Set<string>();
    for (let u = 0; u < 12; u++) {
      const first = await request(port(), { headers: { host: 'byheader', 'x-user': `user-${u}` } });
      for (let i = 0; i < 3; i++) {
        const again = await request(port(), { headers: { host: 'byheader', 'x-user': `user-${u}` } });
        assert.equal(again.headers['x-upstream'], first.headers['x-upstream']);
      }
      seen.add(first.headers['x-upstream'] as string);
    }
    assert.ok(seen.size >= 2, 'twelve users all landed on one upstream');
  });

  it('generates a cookie when the client has none, and the cookie sticks', async () => {
    const first = await request(port(), { headers: { host: 'bycookie' } });
    const setCookie = first.headers['set-cookie']?.[0] ?? '';
    assert.match(setCookie, /^sticky=[0-9a-f]{16}; Max-Age=60; Path=\/; HttpOnly$/);
    const cookie = setCookie.split(';')[0];
    for (let i = 0; i < 5; i++) {
      const again = await request(port(), { headers: { host: 'bycookie', cookie } });
      assert.equal(again.headers['x-upstream'], first.headers['x-upstream']);
      assert.equal(again.headers['set-cookie'], undefined, 'no new cookie once the client has one');
    }
  });

  it('hashes a query parameter and the source IP', async () => {
    const a = await request(port(), { path: '/?u=alice', headers: { host: 'byquery' } });
    for (let i = 0; i < 3; i++) assert.equal((await request(port(), { path: `/x${i}?u=alice`, headers: { host: 'byquery' } })).headers['x-upstream'], a.headers['x-upstream']);
    const ip = await request(port(), { headers: { host: 'byip' } });
    for (let i = 0; i < 3; i++) assert.equal((await request(port(), { headers: { host: 'byip' } })).headers['x-upstream'], ip.headers['x-upstream']);
  });
});
