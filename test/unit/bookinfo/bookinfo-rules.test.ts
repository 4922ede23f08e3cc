// The sample's rule files and workload list: Istio's tasks must find what they expect.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { isAcceptedApiVersion, kindInfo } from '../../../core/model/resource.ts';
import type { DestinationRuleSpec, GatewaySpec, HTTPRoute, VirtualServiceSpec } from '../../../core/model/networking.ts';
import { BOOKINFO_NETWORKING_DIR, BOOKINFO_SERVICES, BOOKINFO_WORKLOADS } from '../../../deploy/samples/bookinfo/bookinfo.ts';

interface Doc {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  spec: unknown;
}

function load(file: string): Doc[] {
  const text = readFileSync(join(BOOKINFO_NETWORKING_DIR, file), 'utf8');
  return parseAllDocuments(text).map((d) => {
    assert.deepEqual(d.errors, [], `${file} parses`);
    return d.toJS() as Doc;
  });
}

const FILES = [
  'bookinfo-gateway.yaml',
  'destination-rule-all.yaml',
  'virtual-service-all-v1.yaml',
  'virtual-service-reviews-v3.yaml',
  'virtual-service-reviews-50-v3.yaml',
  'virtual-service-reviews-80-20.yaml',
  'virtual-service-reviews-90-10.yaml',
  'virtual-service-reviews-test-v2.yaml',
  'virtual-service-reviews-jason-v2-v3.yaml',
  'virtual-service-reviews-v2-v3.yaml',
  'virtual-service-ratings-test-delay.yaml',
  'virtual-service-ratings-test-abort.yaml',
];

/** The reviews route of a file as [subset, weight] pairs per HTTP route. */
function reviewsRoutes(file: string): HTTPRoute[] {
  const [vs] = load(file);
  assert.equal(vs.kind, 'VirtualService');
  const spec = vs.spec as VirtualServiceSpec;
  assert.deepEqual(spec.hosts, ['reviews']);
  return spec.http ?? [];
}

function split(route: HTTPRoute): Array<[string | undefined, number | undefined]> {
  return (route.route ?? []).map((d) => [d.destination.subset, d.weight]);
}

const JASON = [{ headers: { 'end-user': { exact: 'jason' } } }];

describe('bookinfo rule files', () => {
  it('has exactly the files Istio\'s tasks name, each a known kind under networking.istio.io/v1', () => {
    assert.deepEqual(readdirSync(BOOKINFO_NETWORKING_DIR).sort(), [...FILES].sort());
    for (const file of FILES) {
      for (const doc of load(file)) {
        const info = kindInfo(doc.kind);
        assert.ok(info, `${file}: kind ${doc.kind}`);
        assert.equal(doc.apiVersion, 'networking.istio.io/v1', file);
        assert.ok(isAcceptedApiVersion(info, doc.apiVersion), file);
        assert.match(doc.metadata.name, /^[a-z0-9-]+$/, file);
      }
    }
  });

  it('every subset a route names is defined in destination-rule-all.yaml', () => {
    const subsets = new Map<string, Set<string>>();
    for (const doc of load('destination-rule-all.yaml')) {
      const spec = doc.spec as DestinationRuleSpec;
      assert.equal(spec.trafficPolicy, undefined, 'no mTLS settings');
      subsets.set(spec.host, new Set((spec.subsets ?? []).map((s) => s.name)));
    }
    assert.deepEqual([...subsets.keys()].sort(), [...BOOKINFO_SERVICES].sort());
    assert.deepEqual([...(subsets.get('reviews') ?? [])], ['v1', 'v2', 'v3']);
    for (const file of FILES.filter((f) => f.startsWith('virtual-service-'))) {
      for (const doc of load(file)) {
        for (const route of (doc.spec as VirtualServiceSpec).http ?? []) {
          const weights = (route.route ?? []).map((d) => d.weight);
          if (weights.length > 1) assert.equal(weights.reduce((a, b) => (a ?? 0) + (b ?? 0), 0), 100, `${file} weights`);
          for (const { destination } of route.route ?? []) {
            assert.ok(subsets.get(destination.host)?.has(destination.subset ?? ''), `${file}: ${destination.host}/${destination.subset}`);
          }
        }
      }
    }
  });

  it('the gateway sends the product page\'s paths to productpage:9080', () => {
    const [gw, vs] = load('bookinfo-gateway.yaml');
    assert.equal(gw.kind, 'Gateway');
    assert.equal(gw.metadata.name, 'bookinfo-gateway');
    const gateway = gw.spec as GatewaySpec;
    assert.deepEqual(gateway.selector, { istio: 'ingressgateway' });
    assert.deepEqual(gateway.servers, [{ port: { number: 8080, name: 'http', protocol: 'HTTP' }, hosts: ['*'] }]);
    assert.equal(vs.kind, 'VirtualService');
    assert.equal(vs.metadata.name, 'bookinfo');
    const spec = vs.spec as VirtualServiceSpec;
    assert.deepEqual(spec.hosts, ['*']);
    assert.deepEqual(spec.gateways, ['bookinfo-gateway']);
    assert.deepEqual(spec.http, [
      {
        match: [
          { uri: { exact: '/productpage' } },
          { uri: { prefix: '/static' } },
          { uri: { exact: '/login' } },
          { uri: { exact: '/logout' } },
          { uri: { prefix: '/api/v1/products' } },
        ],
        route: [{ destination: { host: 'productpage', port: { number: 9080 } } }],
      },
    ]);
  });

  it('routes reviews as Istio\'s tasks expect', () => {
    assert.deepEqual(reviewsRoutes('virtual-service-reviews-v3.yaml').map(split), [[['v3', undefined]]]);
    assert.deepEqual(reviewsRoutes('virtual-service-reviews-50-v3.yaml').map(split), [[['v1', 50], ['v3', 50]]]);
    assert.deepEqual(reviewsRoutes('virtual-service-reviews-80-20.yaml').map(split), [[['v1', 80], ['v2', 20]]]);
    assert.deepEqual(reviewsRoutes('virtual-service-reviews-90-10.yaml').map(split), [[['v1', 90], ['v2', 10]]]);
    assert.deepEqual(reviewsRoutes('virtual-service-reviews-v2-v3.yaml').map(split), [[['v2', 50], ['v3', 50]]]);

    const testV2 = reviewsRoutes('virtual-service-reviews-test-v2.yaml');
    assert.deepEqual(testV2.map((r) => r.match), [JASON, undefined]);
    assert.deepEqual(testV2.map(split), [[['v2', undefined]], [['v1', undefined]]]);
    const jasonV2V3 = reviewsRoutes('virtual-service-reviews-jason-v2-v3.yaml');
    assert.deepEqual(jasonV2V3.map((r) => r.match), [JASON, undefined]);
    assert.deepEqual(jasonV2V3.map(split), [[['v2', undefined]], [['v3', undefined]]]);

    const allV1 = load('virtual-service-all-v1.yaml');
    assert.deepEqual(allV1.map((d) => d.metadata.name).sort(), [...BOOKINFO_SERVICES].sort());
    for (const doc of allV1) {
      assert.deepEqual((doc.spec as VirtualServiceSpec).http?.map(split), [[['v1', undefined]]], doc.metadata.name);
    }
  });

  it('injects a 7 s delay and an HTTP 500 into ratings for jason only', () => {
    for (const [file, fault] of [
      ['virtual-service-ratings-test-delay.yaml', { delay: { percentage: { value: 100 }, fixedDelay: '7s' } }],
      ['virtual-service-ratings-test-abort.yaml', { abort: { percentage: { value: 100 }, httpStatus: 500 } }],
    ] as const) {
      const [vs] = load(file);
      const spec = vs.spec as VirtualServiceSpec;
      assert.deepEqual(spec.hosts, ['ratings'], file);
      assert.deepEqual(spec.http?.map((r) => r.match), [JASON, undefined], file);
      assert.deepEqual(spec.http?.map((r) => r.fault), [fault, undefined], file);
      assert.deepEqual(spec.http?.map(split), [[['v1', undefined]], [['v1', undefined]]], file);
    }
  });
});

describe('bookinfo workloads', () => {
  it('lists productpage, details, reviews v1–v3 and ratings, each runnable', () => {
    assert.deepEqual(
      BOOKINFO_WORKLOADS.map((w) => w.name),
      ['productpage-v1', 'details-v1', 'reviews-v1', 'reviews-v2', 'reviews-v3', 'ratings-v1'],
    );
    for (const w of BOOKINFO_WORKLOADS) {
      assert.equal(w.name, `${w.service}-${w.version}`);
      assert.equal(w.serviceAccount, `bookinfo-${w.service}`);
      assert.equal(w.servicePort, 9080);
      assert.deepEqual(w.labels, { app: w.service, version: w.version });
      assert.ok(existsSync(w.script), w.script);
      assert.ok(w.script.endsWith(`/${w.service}.ts`), w.script);
      assert.deepEqual(w.args, ['--version', w.version, '--name', w.name]);
      assert.ok(!w.args.includes('--port'), 'the runner chooses the port');
    }
  });
});
