import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { analyzeMesh, summarize } from '../../../core/analyze/analyze-mesh.ts';
import type { AnalyzeInput } from '../../../core/analyze/analyze-mesh.ts';
import type { Resource } from '../../../core/model/resource.ts';
import type { ServiceAlias } from '../../../core/model/service-alias.ts';
import { dr, host, service, snapshot, vs, workload } from '../mesh/mesh-fixtures.ts';

const NOW = Date.UTC(2026, 0, 1);

function input(extra: Partial<AnalyzeInput> = {}): AnalyzeInput {
  const rules = [
    dr('reviews', { host: 'reviews', subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v3', labels: { version: 'v3' } }, { name: 'v9', labels: { version: 'v9' } }] }),
    vs('reviews', { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews', subset: 'v1' }, weight: 50 }, { destination: { host: 'reviews', subset: 'v3' }, weight: 50 }] }] }),
    vs('gone', { hosts: ['gone'], http: [{ route: [{ destination: { host: 'gone' } }] }] }),
  ];
  const snap = snapshot({
    services: [service('reviews'), service('productpage')],
    workloads: [
      workload('reviews-v1', '10.0.0.1', { app: 'reviews', version: 'v1' }, ['reviews'], { platform: 'kubernetes' }),
      workload('productpage-v1', '10.0.0.2', { app: 'productpage' }, ['productpage'], { serviceAccount: 'default' }),
      workload('orphan', '10.0.0.3', { app: 'orphan' }, [], { serviceAccount: '', identity: '' }),
    ],
    destinationRules: [rules[0] as never],
    virtualServices: [rules[1] as never, rules[2] as never],
  });
  return {
    snapshot: snap,
    resources: rules as Resource[],
    registryConflicts: [],
    configConflicts: [],
    aliasConflicts: [],
    platformHasService: () => true,
    heartbeats: [],
    now: NOW,
    staleAfterMs: 60_000,
    ...extra,
  };
}

const brief = (i: AnalyzeInput) => analyzeMesh(i).map((f) => `${f.severity} ${f.code} ${f.resource ?? ''} ${f.field ?? ''}`.trim());

describe('jibe analyze findings', () => {
  it('flags routes to subsets no platform provides, unknown hosts, and workloads without their own identity', () => {
    assert.deepEqual(brief(input()), [
      'error JIBE_ERR_REFERENCE VirtualService/default/gone spec.http[0].route[0].destination.host',
      'error JIBE_ERR_REFERENCE VirtualService/default/reviews spec.http[0].route[1].destination.subset',
      'error JIBE_ERR_WORKLOAD_INVALID Workload/vm/default/orphan serviceAccount',
      'warning JIBE_ERR_WORKLOAD_INVALID Workload/vm/default/productpage-v1 serviceAccount',
    ]);
    const subset = analyzeMesh(input()).find((f) => f.field?.endsWith('.subset'))!;
    assert.match(subset.message, /subset "v3" of reviews\.default\.svc\.cluster\.local has no endpoints on any platform/);
    assert.ok(subset.hint);
  });

  it('reports registry conflicts, config store conflicts and alias problems', () => {
    const alias: ServiceAlias = { apiVersion: 'jibe.dev/v1alpha1', kind: 'ServiceAlias', metadata: { name: 'reviews', namespace: 'default' }, spec: { host: 'reviews', aliases: [{ platform: 'consul', name: 'reviews-legacy' }] } };
    const rule = { platform: 'consul' as const, from: host('reviews-legacy'), to: host('reviews'), toNamespace: 'default', rule: 'ServiceAlias/default/reviews' };
    const base = input();
    const found = analyzeMesh({
      ...base,
      resources: [...base.resources, alias],
      registryConflicts: [{ hostname: host('reviews'), port: 9080, message: 'port 9080 is http on kubernetes but tcp on consul', kind: 'protocol', platforms: ['kubernetes', 'consul'] }],
      configConflicts: [{ resource: 'VirtualService/default/reviews', stores: ['file', 'consul'], winner: 'file', message: 'VirtualService/default/reviews is defined differently in the file and consul config stores; the file copy is used' }],
      aliasConflicts: [{ platform: 'consul', from: rule.from, kept: rule, dropped: { ...rule, to: host('details'), rule: 'ServiceAlias/default/details' } }],
      platformHasService: (platform, h) => !(platform === 'consul' && h === host('reviews-legacy')),
    });
    const codes = found.map((f) => `${f.severity} ${f.code} ${f.resource}`);
    assert.ok(codes.includes(`error JIBE_ERR_SERVICE_CONFLICT Service/${host('reviews')}`));
    assert.ok(codes.includes('error JIBE_ERR_STORE_CONFLICT VirtualService/default/reviews'));
    assert.ok(codes.includes('error JIBE_ERR_SERVICE_CONFLICT ServiceAlias/default/details'));
    assert.ok(codes.includes('warning JIBE_ERR_REFERENCE ServiceAlias/default/reviews'));
  });

  it('a VM whose agent stopped reporting is stale past the limit, not before', () => {
    const heartbeats = [
      { namespace: 'default', name: 'ratings-vm', lastSeen: NOW - 61_000 },
      { namespace: 'default', name: 'details-vm', lastSeen: NOW - 59_000 },
    ];
    const stale = analyzeMesh(input({ heartbeats })).filter((f) => f.code === 'JIBE_ERR_WORKLOAD_STALE');
    assert.deepEqual(stale.map((f) => f.resource), ['Workload/vm/default/ratings-vm']);
    assert.match(stale[0].message, /last reported 61s ago \(limit 60s\)/);
    assert.equal(analyzeMesh(input({ heartbeats, staleAfterMs: 120_000 })).filter((f) => f.code === 'JIBE_ERR_WORKLOAD_STALE').length, 0);
  });

  it('a clean mesh has no findings', () => {
    const clean = input();
    const findings = analyzeMesh({
      ...clean,
      resources: [clean.resources[0]],
      snapshot: { ...clean.snapshot, virtualServices: [], destinationRules: [], workloads: clean.snapshot.workloads.filter((w) => w.name === 'reviews-v1') },
    });
    assert.deepEqual(findings, []);
    assert.deepEqual(summarize(findings), { errors: 0, warnings: 0 });
  });
});
