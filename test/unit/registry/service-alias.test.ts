import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { parseDocuments } from '../../../core/config/load-documents.ts';
import { validateApply } from '../../../core/config/validate-apply.ts';
import { JibeError } from '../../../core/errors/errors.ts';
import type { Service } from '../../../core/model/service.ts';
import type { ServiceAlias } from '../../../core/model/service-alias.ts';
import type { Workload } from '../../../core/model/workload.ts';
import { RegistryAggregator } from '../../../core/registry/registry-aggregator.ts';
import { compileServiceAliases } from '../../../core/registry/service-alias-rules.ts';
import { DEFAULT_CONVERT_OPTIONS, toService } from '../../../platforms/consul/consul-converters.ts';
import type { ConsulHealthEntry } from '../../../platforms/consul/consul-types.ts';

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
const REVIEWS = 'reviews.default.svc.cluster.local';
const RATINGS = 'ratings.default.svc.cluster.local';

function k8sService(name: string, port = 9080): Service {
  return { hostname: `${name}.default.svc.cluster.local`, name, namespace: 'default', ports: [{ name: 'http', port, protocol: 'http' }], platforms: ['kubernetes'], location: 'MESH_INTERNAL', resolution: 'STATIC' };
}

function pod(name: string, service: string, address: string): Workload {
  return {
    name, namespace: 'default', platform: 'kubernetes', address, labels: { version: 'v1' }, serviceAccount: service,
    identity: `spiffe://cluster.local/ns/default/sa/${service}`, health: 'healthy', services: [{ hostname: `${service}.default.svc.cluster.local`, ports: { 9080: 9080 } }],
  };
}

function loadAliases(): ServiceAlias[] {
  const docs = parseDocuments(readFileSync(fixture('service-alias.yaml'), 'utf8'), 'service-alias.yaml');
  return validateApply(docs, [], new Set()) as ServiceAlias[];
}

function consulView() {
  const entries = JSON.parse(readFileSync(fixture('consul-legacy.health.json'), 'utf8')) as ConsulHealthEntry[];
  const services: Service[] = [];
  const workloads: Workload[] = [];
  for (const name of ['reviews-legacy', 'ratings-old']) {
    const converted = toService(entries.filter((e) => e.Service.Service === name), new Map(), { ...DEFAULT_CONVERT_OPTIONS, onlyPassing: false });
    assert.deepEqual(converted.problems, []);
    services.push(...converted.services);
    workloads.push(...converted.workloads);
  }
  return { services, workloads };
}

function mesh(): RegistryAggregator {
  const agg = new RegistryAggregator();
  agg.apply('kubernetes', [{ kind: 'sync', services: [k8sService('reviews'), k8sService('ratings')], workloads: [pod('reviews-v1-abc', 'reviews', '10.0.0.1'), pod('ratings-v1-abc', 'ratings', '10.0.0.2')] }]);
  agg.apply('consul', [{ kind: 'sync', ...consulView() }]);
  return agg;
}

describe('ServiceAlias', () => {
  it('validates through the normal apply path and compiles to platform renames', () => {
    const { rules, conflicts } = compileServiceAliases(loadAliases(), 'cluster.local');
    assert.deepEqual(conflicts, []);
    assert.deepEqual(
      rules.map((r) => [r.platform, r.from, r.to, r.datacenter]),
      [
        ['consul', 'ratings-old.default.svc.cluster.local', RATINGS, 'dc2'],
        ['consul', 'reviews-legacy.default.svc.cluster.local', REVIEWS, undefined],
      ],
    );
  });

  it('joins the aliased Consul service to the canonical host: one service, union of endpoints, platform kept', () => {
    const agg = mesh();
    assert.ok(agg.services().has('reviews-legacy.default.svc.cluster.local'), 'without the alias the names are two services');
    agg.setAliases(compileServiceAliases(loadAliases(), 'cluster.local').rules);
    const reviews = agg.services().get(REVIEWS)!;
    assert.deepEqual([...reviews.platforms].sort(), ['consul', 'kubernetes']);
    assert.equal(agg.services().has('reviews-legacy.default.svc.cluster.local'), false);
    const endpoints = agg.workloads().filter((w) => w.services.some((b) => b.hostname === REVIEWS));
    assert.deepEqual(endpoints.map((w) => `${w.platform}:${w.address}:${w.locality?.region ?? ''}`).sort(), ['consul:10.1.0.11:dc1', 'kubernetes:10.0.0.1:']);
    assert.deepEqual(agg.conflicts(), []);
  });

  it('moves only the named datacenter\'s instances and keeps the platform name for the rest', () => {
    const agg = mesh();
    agg.setAliases(compileServiceAliases(loadAliases(), 'cluster.local').rules);
    const old = 'ratings-old.default.svc.cluster.local';
    assert.ok(agg.services().has(old));
    const of = (host: string) => agg.workloads().filter((w) => w.services.some((b) => b.hostname === host)).map((w) => w.address).sort();
    assert.deepEqual(of(RATINGS), ['10.0.0.2', '10.3.0.11']);
    assert.deepEqual(of(old), ['10.2.0.11']);
  });

  it('notifies listeners only when the alias set changes', () => {
    const agg = mesh();
    let changes = 0;
    agg.onChange(() => changes++);
    const { rules } = compileServiceAliases(loadAliases(), 'cluster.local');
    agg.setAliases(rules);
    agg.setAliases([...rules]);
    assert.equal(changes, 1);
    agg.setAliases([]);
    assert.equal(changes, 2);
    assert.ok(agg.services().has('reviews-legacy.default.svc.cluster.local'));
  });

  it('keeps the oldest of two aliases claiming one service for different hosts and reports the other', () => {
    const [reviews] = loadAliases();
    const older = { ...reviews, metadata: { ...reviews.metadata, creationTimestamp: '2026-01-01T00:00:00Z' } };
    const newer: ServiceAlias = { ...reviews, metadata: { name: 'details', namespace: 'default', creationTimestamp: '2026-02-01T00:00:00Z' }, spec: { ...reviews.spec, host: 'details' } };
    const { rules, conflicts } = compileServiceAliases([newer, older], 'cluster.local');
    assert.equal(rules.length, 1);
    assert.equal(rules[0].to, REVIEWS);
    assert.equal(conflicts.length, 1);
    assert.equal(conflicts[0].dropped.rule, 'ServiceAlias/default/details');
  });

  it('refuses a datacenter on a non-Consul alias and a repeated entry, naming the field', () => {
    const docs = parseDocuments(
      [
        'apiVersion: jibe.dev/v1alpha1',
        'kind: ServiceAlias',
        'metadata: { name: bad, namespace: default }',
        'spec:',
        '  host: "*.example.com"',
        '  aliases:',
        '  - { platform: vm, name: a, datacenter: dc1 }',
        '  - { platform: vm, name: a, datacenter: dc1 }',
        '  - { platform: nomad, name: b }',
      ].join('\n'),
      'bad.yaml',
    );
    assert.throws(
      () => validateApply(docs, [], new Set()),
      (e: unknown) => {
        assert.ok(e instanceof JibeError);
        const fields = (e.details.causes ?? []).map((c) => `${c.code} ${c.details.field}`).sort();
        assert.deepEqual(fields, [
          'JIBE_ERR_DUPLICATE spec.aliases[1]',
          'JIBE_ERR_SCHEMA spec.aliases[0].datacenter',
          'JIBE_ERR_SCHEMA spec.aliases[1].datacenter',
          'JIBE_ERR_SCHEMA spec.aliases[2].platform',
          'JIBE_ERR_SCHEMA spec.host',
        ]);
        return true;
      },
    );
  });

  it('reports platforms that share a host but no port', () => {
    const agg = new RegistryAggregator();
    agg.apply('kubernetes', [{ kind: 'sync', services: [k8sService('reviews', 80)], workloads: [] }]);
    agg.apply('vm', [{ kind: 'sync', services: [{ ...k8sService('reviews', 9080), platforms: ['vm'] }], workloads: [] }]);
    assert.deepEqual(agg.conflicts().map((c) => [c.kind, c.hostname, c.platforms]), [['ports', REVIEWS, ['kubernetes', 'vm']]]);
  });
});
