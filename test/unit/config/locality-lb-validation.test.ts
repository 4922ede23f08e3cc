import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDocuments } from '../../../core/config/load-documents.ts';
import { validateResource } from '../../../core/config/validate-resource.ts';

function problems(trafficPolicy: string, subsets = ''): Array<[string, string | undefined]> {
  const yaml = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews, namespace: default }
spec:
  host: reviews
  trafficPolicy: ${trafficPolicy}
${subsets}`;
  const docs = parseDocuments(yaml, 'dr.yaml');
  return validateResource(docs[0]).map((e) => [e.code, e.details.field]);
}

test('a valid localityLbSetting passes: failover with outlier detection, failoverPriority, distribute', () => {
  assert.deepEqual(problems('{ outlierDetection: {}, loadBalancer: { localityLbSetting: { failover: [{ from: us-east, to: eu }] } } }'), []);
  assert.deepEqual(problems('{ outlierDetection: {}, loadBalancer: { simple: ROUND_ROBIN, localityLbSetting: { failoverPriority: [topology.jibe.dev/platform, topology.kubernetes.io/region] } } }'), []);
  assert.deepEqual(problems("{ loadBalancer: { localityLbSetting: { distribute: [{ from: 'us-east/*', to: { 'us-east/a/*': 80, '*': 20 } }] } } }"), []);
  // Disabled: nothing to fail over, so no outlier detection needed.
  assert.deepEqual(problems('{ loadBalancer: { localityLbSetting: { enabled: false, failover: [{ from: a, to: b }] } } }'), []);
});

test('failover without outlier detection is refused where it is set; a subset may rely on the rule\'s', () => {
  assert.deepEqual(problems('{ loadBalancer: { localityLbSetting: { failover: [{ from: us-east, to: eu }] } } }'), [['JIBE_ERR_SCHEMA', 'spec.trafficPolicy.loadBalancer.localityLbSetting']]);
  assert.deepEqual(
    problems('{ outlierDetection: {} }', '  subsets: [{ name: v1, labels: { version: v1 }, trafficPolicy: { loadBalancer: { localityLbSetting: { failoverPriority: [app] } } } }]'),
    [],
  );
  assert.deepEqual(
    problems('{}', '  subsets: [{ name: v1, trafficPolicy: { loadBalancer: { localityLbSetting: { failoverPriority: [app] } } } }]'),
    [['JIBE_ERR_SCHEMA', 'spec.subsets[0].trafficPolicy.loadBalancer.localityLbSetting']],
  );
});

test('bad localityLbSettings name the field', () => {
  const field = 'spec.trafficPolicy.loadBalancer.localityLbSetting';
  assert.deepEqual(problems("{ outlierDetection: {}, loadBalancer: { localityLbSetting: { distribute: [{ from: 'a/*', to: { b: 100 } }], failover: [{ from: a, to: b }] } } }"), [['JIBE_ERR_SCHEMA', field]]);
  assert.deepEqual(problems("{ loadBalancer: { localityLbSetting: { distribute: [{ from: 'a/*', to: { b: 60, c: 30 } }] } } }"), [['JIBE_ERR_WEIGHTS', `${field}.distribute[0].to`]]);
  assert.deepEqual(problems("{ loadBalancer: { localityLbSetting: { distribute: [{ from: 'a/*/c', to: { b: 100 } }] } } }"), [['JIBE_ERR_SCHEMA', `${field}.distribute[0].from`]]);
  assert.deepEqual(
    problems("{ outlierDetection: {}, loadBalancer: { localityLbSetting: { failover: [{ from: 'us-east/a', to: us-east }, { from: eu, to: eu }], failoverPriority: [x, x] } } }"),
    [
      ['JIBE_ERR_SCHEMA', `${field}.failover[0].from`],
      ['JIBE_ERR_SCHEMA', `${field}.failover[1].to`],
      ['JIBE_ERR_DUPLICATE', `${field}.failoverPriority[1]`],
    ],
  );
  assert.deepEqual(problems("{ loadBalancer: { localityLbSetting: { distribute: [{ from: a, to: { b: 101 } }] } } }").map((p) => p[0]).sort(), ['JIBE_ERR_SCHEMA', 'JIBE_ERR_WEIGHTS']);
});
