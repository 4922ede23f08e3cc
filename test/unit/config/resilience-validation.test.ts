import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadFiles, parseDocuments } from '../../../core/config/load-documents.ts';
import { validateApply } from '../../../core/config/validate-apply.ts';
import { validateResource } from '../../../core/config/validate-resource.ts';
import { isJibeError } from '../../../core/errors/errors.ts';
import type { JibeError } from '../../../core/errors/errors.ts';
import type { Resource } from '../../../core/model/resource.ts';
import { bookinfoHosts, fixture } from './fixtures.ts';

/** [code, field, message] of every problem in one YAML resource. */
function problems(yaml: string): Array<[string, string | undefined, string]> {
  const docs = parseDocuments(yaml, 'test.yaml');
  assert.equal(docs.length, 1);
  return validateResource(docs[0]).map((e) => [e.code, e.details.field, e.message]);
}

function rejected(yaml: string, current: Resource[] = []): JibeError {
  try {
    validateApply(parseDocuments(yaml, 'test.yaml'), current, bookinfoHosts());
  } catch (e) {
    assert.ok(isJibeError(e));
    assert.equal(e.code, 'JIBE_ERR_VALIDATION');
    return e;
  }
  assert.fail('expected the apply to be rejected');
}

const route = (extra: string) => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: r }
spec:
  hosts: [ratings]
  http:
  - route: [{ destination: { host: ratings } }]
${extra}`;

test('issue 3 rules that are right apply as a batch', async () => {
  const applied = validateApply(await loadFiles([fixture('resilience/valid.yaml')]), [], bookinfoHosts());
  assert.deepEqual(applied.map((r) => `${r.kind}/${r.metadata.namespace}/${r.metadata.name}`), [
    'VirtualService/default/ratings', 'DestinationRule/default/ratings', 'RateLimit/default/ratings', 'MeshConfig/jibe-system/mesh',
  ]);
});

test('VirtualService resilience mistakes name their field', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['    retries: { attempts: 2, retryOn: "5xx,bogus" }', 'spec.http[0].retries.retryOn', /unknown retry condition "bogus"/],
    ['    retries: { attempts: 2, perTryTimeout: 0s }', 'spec.http[0].retries.perTryTimeout', /at least 1ms/],
    ['    retries: { attempts: -1 }', 'spec.http[0].retries.attempts', /at least 0/],
    ['    fault: { abort: { httpStatus: 503, grpcStatus: UNAVAILABLE } }', 'spec.http[0].fault.abort', /exactly one of httpStatus or grpcStatus/],
    ['    fault: { abort: { grpcStatus: NOPE } }', 'spec.http[0].fault.abort.grpcStatus', /not one of/],
    ['    fault: { delay: { fixedDelay: 1s, percentage: { value: 101 } } }', 'spec.http[0].fault.delay.percentage.value', /at most 100/],
    ['    fault: { delay: { fixedDelay: soon } }', 'spec.http[0].fault.delay.fixedDelay', /invalid duration "soon"/],
    ['    mirrorPercentage: { value: 5 }', 'spec.http[0].mirrorPercentage', /needs mirror/],
    ['    mirror: { host: details }\n    mirrors: [{ destination: { host: details } }]', 'spec.http[0].mirrors', /mutually exclusive/],
    ['    corsPolicy: { allowOrigins: [{ exact: a, prefix: b }] }', 'spec.http[0].corsPolicy.allowOrigins[0]', /exactly one of exact, prefix or regex/],
    ['    corsPolicy: { allowMethods: [get] }', 'spec.http[0].corsPolicy.allowMethods[0]', /upper-case/],
  ];
  for (const [extra, field, message] of cases) {
    const found = problems(route(extra));
    assert.ok(found.some(([, f, m]) => f === field && message.test(m)), `${extra}\n→ ${JSON.stringify(found)}`);
  }
});

test('DestinationRule policy mistakes name their field', () => {
  const dr = (policy: string) => `apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: { name: d }\nspec:\n  host: ratings\n  trafficPolicy:\n${policy}`;
  const cases: Array<[string, string, RegExp]> = [
    ['    loadBalancer: { consistentHash: { httpHeaderName: x, useSourceIp: true } }', 'spec.trafficPolicy.loadBalancer.consistentHash', /exactly one hash key.*not httpHeaderName and useSourceIp/],
    ['    loadBalancer: { consistentHash: {} }', 'spec.trafficPolicy.loadBalancer.consistentHash', /exactly one hash key/],
    ['    connectionPool: { tcp: { connectTimeout: 0s } }', 'spec.trafficPolicy.connectionPool.tcp.connectTimeout', /at least 1ms/],
    ['    connectionPool: { tcp: { tcpKeepalive: { time: 500ms } } }', 'spec.trafficPolicy.connectionPool.tcp.tcpKeepalive.time', /at least 1s/],
    ['    connectionPool: { http: { maxRetries: -1 } }', 'spec.trafficPolicy.connectionPool.http.maxRetries', /at least 0/],
    ['    outlierDetection: { maxEjectionPercent: 150 }', 'spec.trafficPolicy.outlierDetection.maxEjectionPercent', /at most 100/],
    ['    outlierDetection: { interval: 0s }', 'spec.trafficPolicy.outlierDetection.interval', /at least 1ms/],
    ['    portLevelSettings: [{ port: { number: 80 }, loadBalancer: { simple: ROUND_ROBIN, consistentHash: { useSourceIp: true } } }]', 'spec.trafficPolicy.portLevelSettings[0].loadBalancer', /mutually exclusive/],
  ];
  for (const [policy, field, message] of cases) {
    const found = problems(dr(policy));
    assert.ok(found.some(([, f, m]) => f === field && message.test(m)), `${policy}\n→ ${JSON.stringify(found)}`);
  }
});

test('RateLimit mistakes name their field', () => {
  const rl = (limit: string, host = 'ratings') => `apiVersion: jibe.dev/v1alpha1\nkind: RateLimit\nmetadata: { name: l }\nspec:\n  host: ${host}\n  limits:\n  - ${limit}`;
  const cases: Array<[string, string, string, RegExp]> = [
    ['{ maxTokens: 1, fillInterval: 10ms }', 'ratings', 'spec.limits[0].fillInterval', /at least 50ms/],
    ['{ maxTokens: 0, fillInterval: 1s }', 'ratings', 'spec.limits[0].maxTokens', /at least 1/],
    ['{ fillInterval: 1s }', 'ratings', 'spec.limits[0].maxTokens', /required/],
    ['{ maxTokens: 1, fillInterval: 1s, per: { header: x, sourceIp: {} } }', 'ratings', 'spec.limits[0].per', /exactly one of header, sourcePrincipal or sourceIp, not header and sourceIp/],
    ['{ maxTokens: 1, fillInterval: 1s, per: {} }', 'ratings', 'spec.limits[0].per', /exactly one/],
    ['{ maxTokens: 1, fillInterval: 1s, match: [{ uri: { regex: "[" } }] }', 'ratings', 'spec.limits[0].match[0].uri.regex', /invalid regex/],
    ['{ maxTokens: 1, fillInterval: 1s }', '"*.example.com"', 'spec.host', /wildcard|invalid host/],
  ];
  for (const [limit, host, field, message] of cases) {
    const found = problems(rl(limit, host));
    assert.ok(found.some(([, f, m]) => f === field && message.test(m)), `${limit}\n→ ${JSON.stringify(found)}`);
  }
});

test('a mirror or RateLimit host that does not exist is a reference error, and nothing applies', () => {
  const err = rejected(`${route('    mirror: { host: nowhere }')}
---
apiVersion: jibe.dev/v1alpha1
kind: RateLimit
metadata: { name: l }
spec: { host: ghost, limits: [{ maxTokens: 1, fillInterval: 1s }] }
`);
  const causes = (err.details.causes ?? []).map((c) => [c.code, c.details.resource, c.details.field, c.details.file]);
  assert.deepEqual(causes, [
    ['JIBE_ERR_REFERENCE', 'VirtualService/default/r', 'spec.http[0].mirror.host', 'test.yaml'],
    ['JIBE_ERR_REFERENCE', 'RateLimit/default/l', 'spec.host', 'test.yaml'],
  ]);
});

test('a MeshConfig lives in the root namespace, one per mesh', () => {
  const mc = (ns: string, name = 'mesh') => `apiVersion: jibe.dev/v1alpha1\nkind: MeshConfig\nmetadata: { name: ${name}, namespace: ${ns} }\nspec: { outboundTrafficPolicy: { mode: REGISTRY_ONLY } }\n`;
  const wrongNs = rejected(mc('default'));
  assert.deepEqual(wrongNs.details.causes?.map((c) => [c.code, c.details.field]), [['JIBE_ERR_SCHEMA', 'metadata.namespace']]);
  const existing = validateApply(parseDocuments(mc('jibe-system'), 'a.yaml'), [], bookinfoHosts());
  const second = rejected(mc('jibe-system', 'other'), existing);
  assert.match(second.details.causes?.[0].message ?? '', /only one MeshConfig.*MeshConfig\/jibe-system\/mesh/);
  // Replacing the one that exists is fine.
  validateApply(parseDocuments(mc('jibe-system'), 'b.yaml'), existing, bookinfoHosts());
  assert.match(problems(mc('jibe-system').replace('{ outboundTrafficPolicy: { mode: REGISTRY_ONLY } }', '{ outboundTrafficPolicy: { mode: DENY } }'))[0][2], /not one of: ALLOW_ANY, REGISTRY_ONLY/);
});
