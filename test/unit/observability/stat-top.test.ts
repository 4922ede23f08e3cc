// `jibe stat` and `jibe top` over real sidecars on loopback: per-service
// success rate, rate and quantiles from two scrapes of the proxies' metrics;
// the busiest paths from the proxies' on-demand sampling (bounded memory).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { formatStats, parseInterval, peerHost, scrapeAll } from '../../../cli/commands/stat.ts';
import { formatTop, topRound } from '../../../cli/commands/top.ts';
import type { Exchange } from '../../../proxy/http/exchange.ts';
import type { RunningProxy } from '../../../proxy/proxy.ts';
import type { Sample } from '../../../proxy/telemetry/prometheus-text.ts';
import { serviceStats } from '../../../proxy/telemetry/telemetry-stat.ts';
import { MAX_TOP_KEYS, MAX_TOP_SAMPLERS, PathSampler } from '../../../proxy/telemetry/telemetry-top.ts';
import { freePort, fullUpdate, inboundToApp, outboundToService, request, startSidecar, startUpstream } from '../proxy/proxy-test-helpers.ts';
import type { Upstream } from '../proxy/proxy-test-helpers.ts';

const HOST = 'reviews.default.svc.cluster.local';

function counter(reporter: string, service: string, code: string, value: number): Sample {
  return { name: 'istio_requests_total', labels: { reporter, destination_service_name: service, destination_service_namespace: 'default', response_code: code }, value };
}

function buckets(reporter: string, service: string, cumulative: Array<[string, number]>): Sample[] {
  return cumulative.map(([le, value]) => ({
    name: 'istio_request_duration_milliseconds_bucket',
    labels: { reporter, destination_service_name: service, destination_service_namespace: 'default', le },
    value,
  }));
}

describe('serviceStats', () => {
  it('turns two scrapes into rate, success rate and histogram quantiles', () => {
    const before = [{ proxy: 'a', samples: [counter('destination', 'reviews', '200', 100), counter('destination', 'reviews', '503', 10), ...buckets('destination', 'reviews', [['10', 50], ['100', 110], ['+Inf', 110]])] }];
    const after = [{ proxy: 'a', samples: [counter('destination', 'reviews', '200', 190), counter('destination', 'reviews', '503', 20), ...buckets('destination', 'reviews', [['10', 100], ['100', 210], ['+Inf', 210]])] }];
    const [s] = serviceStats(before, after, 10);
    assert.equal(s.service, 'reviews');
    assert.equal(s.requests, 100);
    assert.equal(s.successRate, 0.9);
    assert.equal(s.rps, 10);
    // 50 of 100 in (0,10], 50 in (10,100]: the median is the top of the first bucket, p99 interpolates in the second.
    assert.equal(s.p50, 10);
    assert.ok(Math.abs(s.p99 - (10 + 90 * (49 / 50))) < 1e-9, String(s.p99));
  });

  it('prefers what the service\'s own proxies report, falls back to its callers, and survives a counter reset', () => {
    const before = [{ proxy: 'a', samples: [counter('source', 'reviews', '200', 5), counter('source', 'httpbin', '200', 40)] }, { proxy: 'b', samples: [counter('destination', 'reviews', '200', 7)] }];
    const after = [
      { proxy: 'a', samples: [counter('source', 'reviews', '200', 9), counter('source', 'httpbin', '200', 3)] },
      { proxy: 'b', samples: [counter('destination', 'reviews', '200', 11)] },
    ];
    const stats = serviceStats(before, after, 1);
    assert.deepEqual(stats.map((s) => [s.service, s.reporter, s.requests]), [['httpbin', 'source', 3], ['reviews', 'destination', 4]]);
    assert.ok(Number.isNaN(stats[0].p50), 'no histogram, no quantile');
    assert.match(formatStats(stats), /httpbin +- +3\.0rps|httpbin +100\.00% +3\.0rps/);
  });

  it('reads durations and grpc peer strings', () => {
    assert.equal(parseInterval('5s'), 5000);
    assert.equal(parseInterval('250ms'), 250);
    assert.throws(() => parseInterval('5 parsecs'), /interval/);
    assert.equal(peerHost('ipv4:10.1.2.3:51234'), '10.1.2.3');
    assert.equal(peerHost('ipv6:[::1]:51234'), '::1');
  });
});

describe('PathSampler', () => {
  const ex = (path: string): Exchange => ({ listener: { kind: 'inbound' }, method: 'GET', authority: 'reviews:9080', path }) as unknown as Exchange;

  it('keeps at most MAX_TOP_KEYS distinct paths and counts the rest under one row', () => {
    const sampler = new PathSampler();
    for (let i = 0; i < MAX_TOP_KEYS + 50; i++) sampler.record(ex(`/item/${i}`), 200, 1);
    for (let i = 0; i < 3; i++) sampler.record(ex('/item/0'), 503, 4);
    const report = sampler.report(1000, 2 * MAX_TOP_KEYS);
    assert.equal(report.total, MAX_TOP_KEYS + 53);
    assert.equal(report.entries.length, MAX_TOP_KEYS + 1);
    assert.equal(report.entries[0].path, '(other paths)');
    assert.deepEqual(report.entries[1], { direction: 'inbound', method: 'GET', authority: 'reviews:9080', path: '/item/0', count: 4, errors: 3, totalMs: 13, maxMs: 4 });
    assert.equal(report.entries.find((e) => e.path === '(other paths)')?.count, 50);
  });
});

describe('jibe stat and jibe top against two sidecars', () => {
  let app: Upstream;
  let caller: RunningProxy;
  let callee: RunningProxy;
  const call = (path: string) => request(caller.ports.outbound!, { path, headers: { host: 'reviews:9080' } });

  before(async () => {
    app = await startUpstream('reviews', (req, res) => {
      res.statusCode = req.url?.startsWith('/fail') ? 503 : 200;
      res.end('ok');
    });
    const inboundPort = await freePort();
    callee = await startSidecar({
      node: { id: 'sidecar~reviews-v1.default', type: 'sidecar', namespace: 'default', workload: 'reviews-v1', labels: { app: 'reviews', version: 'v1' } },
      metricsPort: 0,
      metricsAddress: '127.0.0.1',
    });
    await callee.apply(fullUpdate(inboundToApp(inboundPort, app.port)));
    caller = await startSidecar({
      node: { id: 'sidecar~productpage-v1.default', type: 'sidecar', namespace: 'default', workload: 'productpage-v1', labels: { app: 'productpage', version: 'v1' } },
      metricsPort: 0,
      metricsAddress: '127.0.0.1',
    });
    await caller.apply(fullUpdate(outboundToService(HOST, 9080, { port: inboundPort, workload: 'reviews-v1', namespace: 'default', labels: { app: 'reviews', version: 'v1' } })));
  });

  after(async () => {
    await caller?.close();
    await callee?.close();
    await app?.close();
  });

  it('stat: the service as its server saw it between two scrapes', async () => {
    const targets = [`127.0.0.1:${caller.ports.metrics}`, `127.0.0.1:${callee.ports.metrics}`];
    const warnings: string[] = [];
    const before = await scrapeAll(targets, (l) => warnings.push(l));
    for (let i = 0; i < 8; i++) assert.equal((await call(`/ok/${i}`)).status, 200);
    for (let i = 0; i < 2; i++) assert.equal((await call('/fail')).status, 503);
    const after = await scrapeAll([...targets, '127.0.0.1:1'], (l) => warnings.push(l));
    assert.equal(warnings.length, 1, 'the dead target is named, the rest still count');
    const [reviews] = serviceStats(before, after, 2);
    assert.equal(reviews.service, 'reviews');
    assert.equal(reviews.reporter, 'destination');
    assert.equal(reviews.requests, 10);
    assert.equal(reviews.successRate, 0.8);
    assert.equal(reviews.rps, 5);
    assert.ok(reviews.p50 > 0 && reviews.p50 <= reviews.p95 && reviews.p95 <= reviews.p99);
    await assert.rejects(scrapeAll(['127.0.0.1:1'], () => {}), { code: 'JIBE_ERR_PROXY_UNREACHABLE' });
  });

  it('top: a sampling window counts the paths served in it, busiest first', async () => {
    const sampling = callee.telemetry.sampleTop(60_000, 10)!;
    for (let i = 0; i < 3; i++) await call('/hot');
    await call('/fail');
    await call('/cold');
    sampling.stop();
    const report = await sampling.done;
    assert.equal(report.total, 5);
    assert.deepEqual(report.entries.map((e) => [e.direction, e.path, e.count, e.errors]), [['inbound', '/hot', 3, 0], ['inbound', '/cold', 1, 0], ['inbound', '/fail', 1, 1]]);
    assert.equal(callee.telemetry.activeSamplings, 0);
    // Nothing is sampled outside a window.
    await call('/hot');
    assert.equal(report.total, 5);
  });

  it('top: the admin endpoint answers a window as JSON, bounds concurrent samplings and checks its query', async () => {
    const admin = `127.0.0.1:${callee.ports.admin}`;
    const rows = await topRound([admin], 100, 5, () => {});
    assert.ok(Array.isArray(rows));
    assert.match(formatTop(rows, 100), /No requests|PROXY/);
    const bad = await request(callee.ports.admin, { path: '/top?duration=forever' });
    assert.equal(bad.status, 400);
    const held = Array.from({ length: MAX_TOP_SAMPLERS }, () => callee.telemetry.sampleTop(60_000, 1)!);
    const busy = await request(callee.ports.admin, { path: '/top?duration=1s' });
    assert.equal(busy.status, 429);
    for (const h of held) h.stop();
    await Promise.all(held.map((h) => h.done));
    await assert.rejects(topRound(['127.0.0.1:1'], 100, 5, () => {}), { code: 'JIBE_ERR_PROXY_UNREACHABLE' });
  });
});
