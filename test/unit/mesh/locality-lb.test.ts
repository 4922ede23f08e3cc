// localityLbSetting compiled per caller: endpoint priorities (failover,
// failoverPriority with the platform as a dimension) and locality weights (distribute).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildProxyConfig } from '../../../core/mesh/proxy-config-builder.ts';
import type { DestinationRule } from '../../../core/model/networking.ts';
import { outboundClusterName } from '../../../core/model/proxy-config.ts';
import type { ProxyNode } from '../../../core/model/proxy-config.ts';
import type { Workload } from '../../../core/model/workload.ts';
import { dr, find, host, service, sidecar, snapshot, workload } from './mesh-fixtures.ts';

const REVIEWS = outboundClusterName(host('reviews'), 9080);
const OD = { consecutive5xxErrors: 1, interval: '1s', baseEjectionTime: '30s' };

function reviews(name: string, address: string, platform: Workload['platform'], region: string, zone: string, version = 'v1'): Workload {
  return workload(name, address, { app: 'reviews', version }, ['reviews'], { platform, locality: { region, zone } });
}

function mesh(rule: DestinationRule) {
  return snapshot({
    services: [service('productpage'), service('reviews')],
    workloads: [
      workload('productpage-v1', '10.0.0.1', { app: 'productpage', version: 'v1' }, ['productpage'], { platform: 'kubernetes', locality: { region: 'us-east', zone: 'a' } }),
      workload('productpage-nowhere', '10.0.0.2', { app: 'productpage' }, ['productpage'], { platform: 'kubernetes' }),
      reviews('reviews-k8s-a', '10.0.1.1', 'kubernetes', 'us-east', 'a'),
      reviews('reviews-k8s-b', '10.0.1.2', 'kubernetes', 'us-east', 'b'),
      reviews('reviews-vm-a', '10.0.2.1', 'vm', 'us-east', 'a', 'v2'),
      reviews('reviews-consul-west', '10.0.3.1', 'consul', 'us-west', 'a'),
      reviews('reviews-consul-eu', '10.0.4.1', 'consul', 'eu', 'a'),
    ],
    destinationRules: [rule],
  });
}

const PRODUCTPAGE: ProxyNode = { ...sidecar('productpage-v1', { app: 'productpage', version: 'v1' }), platform: 'kubernetes' };

function compiled(rule: DestinationRule, node: ProxyNode = PRODUCTPAGE) {
  const resources = buildProxyConfig(mesh(rule), node);
  const cluster = find(resources, 'cluster', REVIEWS);
  const priorities = Object.fromEntries(find(resources, 'endpoints', REVIEWS).endpoints.map((e) => [e.workload, e.priority ?? 0]));
  return { cluster, priorities };
}

describe('localityLbSetting compiled for the caller', () => {
  it('failover: own zone, then own region, then the failover region, then the rest', () => {
    const { cluster, priorities } = compiled(dr('reviews', { host: 'reviews', trafficPolicy: { outlierDetection: OD, loadBalancer: { simple: 'ROUND_ROBIN', localityLbSetting: { failover: [{ from: 'us-east', to: 'eu' }] } } } }));
    assert.deepEqual(cluster.localityLb, { overprovisioningFactor: 140 });
    assert.deepEqual(priorities, { 'reviews-k8s-a': 0, 'reviews-vm-a': 0, 'reviews-k8s-b': 1, 'reviews-consul-eu': 2, 'reviews-consul-west': 3 });
  });

  it('no failover without outlier detection (Istio only fails over on ejection)', () => {
    const { cluster, priorities } = compiled(dr('reviews', { host: 'reviews', trafficPolicy: { loadBalancer: { localityLbSetting: { enabled: true } } } }));
    assert.equal(cluster.localityLb, undefined);
    assert.ok(Object.values(priorities).every((p) => p === 0));
  });

  it('failoverPriority: the caller\'s region, then within it its own platform', () => {
    const { priorities } = compiled(
      dr('reviews', { host: 'reviews', trafficPolicy: { outlierDetection: OD, loadBalancer: { localityLbSetting: { failoverPriority: ['topology.kubernetes.io/region', 'topology.jibe.dev/platform'] } } } }),
    );
    assert.deepEqual(priorities, { 'reviews-k8s-a': 0, 'reviews-k8s-b': 0, 'reviews-vm-a': 1, 'reviews-consul-west': 2, 'reviews-consul-eu': 2 });
  });

  it('failoverPriority: labels compare as a prefix, so a platform mismatch first outranks any region match', () => {
    const { priorities } = compiled(
      dr('reviews', { host: 'reviews', trafficPolicy: { outlierDetection: OD, loadBalancer: { localityLbSetting: { failoverPriority: ['topology.jibe.dev/platform', 'topology.kubernetes.io/region'] } } } }),
    );
    assert.deepEqual(priorities, { 'reviews-k8s-a': 0, 'reviews-k8s-b': 0, 'reviews-vm-a': 1, 'reviews-consul-west': 1, 'reviews-consul-eu': 1 });
  });

  it('distribute: the first matching from gives each endpoint locality its share', () => {
    const { cluster, priorities } = compiled(
      dr('reviews', {
        host: 'reviews',
        trafficPolicy: { loadBalancer: { localityLbSetting: { distribute: [{ from: 'eu/*', to: { 'eu/*': 100 } }, { from: 'us-east/*', to: { 'us-east/a': 60, 'us-east/*': 30, 'us-west/*': 10 } }] } } },
      }),
    );
    assert.deepEqual(cluster.localityLb, { overprovisioningFactor: 140, localityWeights: { 'us-east/a': 60, 'us-east/b': 30, 'us-west/a': 10 } });
    assert.ok(Object.values(priorities).every((p) => p === 0));
  });

  it('a caller without a locality gets no locality preference', () => {
    const rule = dr('reviews', { host: 'reviews', trafficPolicy: { outlierDetection: OD, loadBalancer: { localityLbSetting: {} } } });
    assert.equal(compiled(rule, { ...sidecar('productpage-nowhere', { app: 'productpage' }), platform: 'kubernetes' }).cluster.localityLb, undefined);
    assert.deepEqual(compiled(rule).cluster.localityLb, { overprovisioningFactor: 140 });
  });

  it('a subset keeps the rule\'s locality setting and only its own endpoints', () => {
    const { priorities } = (() => {
      const rule = dr('reviews', {
        host: 'reviews',
        trafficPolicy: { outlierDetection: OD, loadBalancer: { localityLbSetting: {} } },
        subsets: [{ name: 'v1', labels: { version: 'v1' } }],
      });
      const resources = buildProxyConfig(mesh(rule), PRODUCTPAGE);
      const name = outboundClusterName(host('reviews'), 9080, 'v1');
      return { priorities: Object.fromEntries(find(resources, 'endpoints', name).endpoints.map((e) => [e.workload, e.priority ?? 0])) };
    })();
    assert.deepEqual(priorities, { 'reviews-k8s-a': 0, 'reviews-k8s-b': 1, 'reviews-consul-west': 2, 'reviews-consul-eu': 2 });
  });
});
