import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadFiles, parseDocuments } from '../../../core/config/load-documents.ts';
import type { ParsedDocument } from '../../../core/config/load-documents.ts';
import { validateResource } from '../../../core/config/validate-resource.ts';
import type { ErrorCode } from '../../../core/errors/errors.ts';
import { fixture } from './fixtures.ts';

/** Validates one YAML resource; returns [code, field, message] per problem. */
function problems(yaml: string): Array<[ErrorCode, string | undefined, string]> {
  const docs = parseDocuments(yaml, 'test.yaml');
  assert.equal(docs.length, 1);
  return validateResource(docs[0]).map((e) => [e.code, e.details.field, e.message]);
}

function vs(spec: string, extra = ''): string {
  return `apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: t\n${extra}spec:\n${spec}`;
}

test('BookInfo rules (DestinationRules, VirtualServices, Gateway, a List in JSON) are valid', async () => {
  const docs = await loadFiles([fixture('bookinfo')]);
  assert.equal(docs.length, 13);
  for (const doc of docs) assert.deepEqual(validateResource(doc).map((e) => e.format()), [], `${doc.source.file} #${doc.source.documentIndex}`);
});

test('each mistake yields its code, file, document, resource and field', async () => {
  const file = fixture('invalid/one-error-per-document.yaml');
  const expected: Array<[ErrorCode, string, string, RegExp]> = [
    ['JIBE_ERR_SCHEMA', 'VirtualService/default/typo', 'spec.http[0].route[0].weigth', /^unknown field "weigth" \(did you mean "weight"\?\)$/],
    ['JIBE_ERR_WEIGHTS', 'VirtualService/default/weights', 'spec.http[0].route', /add up to 110, not 100/],
    ['JIBE_ERR_SCHEMA', 'VirtualService/default/two-matches', 'spec.http[0].match[0].uri', /exactly one of exact, prefix or regex, not exact and prefix/],
    ['JIBE_ERR_SCHEMA', 'VirtualService/default/bad-regex', 'spec.http[0].match[0].headers["user-agent"].regex', /invalid regex "\[a-z"/],
    ['JIBE_ERR_SCHEMA', 'VirtualService/default/bad-duration', 'spec.http[0].timeout', /invalid duration "10 seconds"/],
    ['JIBE_ERR_SCHEMA', 'VirtualService/default/redirect-and-route', 'spec.http[0]', /route and redirect are mutually exclusive/],
    ['JIBE_ERR_SCHEMA', 'VirtualService/default/no-action', 'spec.http[0]', /needs one of route .*, redirect or directResponse/],
    ['JIBE_ERR_SCHEMA', 'Gateway/default/bad-port', 'spec.servers[0].port.number', /at most 65535, not 70000/],
    ['JIBE_ERR_SCHEMA', 'Gateway/default/bad-host', 'spec.servers[0].hosts[0]', /"namespace\/host"/],
    ['JIBE_ERR_SCHEMA', 'DestinationRule/default/dup-subsets', 'spec.subsets[1].name', /duplicate subset name "v1"/],
    ['JIBE_ERR_SCHEMA', 'DestinationRule/Prod_NS/bad-namespace', 'metadata.namespace', /invalid namespace "Prod_NS"/],
    ['JIBE_ERR_UNKNOWN_KIND', 'VirtualServce/default/kind-typo', 'kind', /did you mean VirtualService\?.*known kinds: VirtualService, DestinationRule, Gateway, ServiceEntry, WorkloadEntry/],
    ['JIBE_ERR_UNKNOWN_KIND', 'VirtualService/default/bad-version', 'apiVersion', /use networking\.istio\.io\/v1 .*networking\.jibe\.dev\/v1/],
    ['JIBE_ERR_SCHEMA', 'ServiceEntry/default/no-port-name', 'spec.ports[0].name', /required field "name" is missing/],
    ['JIBE_ERR_SCHEMA', 'WorkloadEntry/default/bad-port-name', 'spec.ports.HTTP_PORT', /invalid port name "HTTP_PORT"/],
    ['JIBE_ERR_SCHEMA', 'DestinationRule/default/enum-typo', 'spec.trafficPolicy.loadBalancer.simple', /did you mean ROUND_ROBIN\?/],
  ];
  const docs = await loadFiles([file]);
  assert.equal(docs.length, expected.length);
  docs.forEach((doc, i) => {
    const errors = validateResource(doc);
    const [code, resource, field, message] = expected[i];
    assert.equal(errors.length, 1, `document ${i}: ${errors.map((e) => e.format()).join('\n')}`);
    const [e] = errors;
    assert.deepEqual(
      { code: e.code, file: e.details.file, documentIndex: e.details.documentIndex, resource: e.details.resource, field: e.details.field },
      { code, file, documentIndex: i, resource, field },
    );
    assert.match(e.message, message);
  });
});

test('weights: one destination may omit its weight or give 100; several must add up to 100', () => {
  const route = (dests: string) => vs(`  hosts: [reviews]\n  http:\n  - route:\n${dests}`);
  const dest = (subset: string, weight?: number) => `    - destination: {host: reviews, subset: ${subset}}\n${weight === undefined ? '' : `      weight: ${weight}\n`}`;
  assert.deepEqual(problems(route(dest('v1'))), []);
  assert.deepEqual(problems(route(dest('v1', 100))), []);
  assert.deepEqual(problems(route(dest('v1', 80) + dest('v3', 20))), []);
  assert.deepEqual(problems(route(dest('v1', 50) + dest('v2', 25) + dest('v3', 25))), []);
  assert.deepEqual(problems(route(dest('v1', 60)))[0].slice(0, 2), ['JIBE_ERR_WEIGHTS', 'spec.http[0].route']);
  const [omitted] = problems(route(dest('v1', 80) + dest('v3')));
  assert.equal(omitted[0], 'JIBE_ERR_WEIGHTS');
  assert.match(omitted[2], /add up to 80, not 100 \(reviews v1: 80, reviews v3: no weight\); a destination without weight counts as 0/);
  const tcp = vs('  hosts: [db]\n  tcp:\n  - route:\n    - destination: {host: db, subset: a}\n      weight: 70\n    - destination: {host: db, subset: b}\n      weight: 20\n');
  assert.deepEqual(problems(tcp).map((p) => p.slice(0, 2)), [['JIBE_ERR_WEIGHTS', 'spec.tcp[0].route']]);
  assert.deepEqual(problems(route(dest('v1', 101))).map((p) => p.slice(0, 2)), [['JIBE_ERR_SCHEMA', 'spec.http[0].route[0].weight']]);
});

test('string matches: header presence {} is allowed, query parameters take no prefix, regex flags work', () => {
  const match = (m: string) => vs(`  hosts: [reviews]\n  http:\n  - match:\n    - ${m}\n    route:\n    - destination: {host: reviews}\n`);
  assert.deepEqual(problems(match('headers: {x-canary: {}}')), []);
  assert.deepEqual(problems(match('withoutHeaders: {x-canary: {}}')), []);
  assert.deepEqual(problems(match('headers: {user-agent: {regex: "(?i).*chrome.*"}}')), []);
  assert.deepEqual(problems(match('uri: {}')).map((p) => p.slice(0, 2)), [['JIBE_ERR_SCHEMA', 'spec.http[0].match[0].uri']]);
  assert.deepEqual(problems(match('queryParams: {page: {prefix: "1"}}')).map((p) => p.slice(0, 2)), [['JIBE_ERR_SCHEMA', 'spec.http[0].match[0].queryParams.page.prefix']]);
  assert.deepEqual(problems(match('uri: {regex: "/a(?=b)"}')).map((p) => p.slice(0, 2)), [['JIBE_ERR_SCHEMA', 'spec.http[0].match[0].uri.regex']]);
  assert.deepEqual(problems(match('uri: {exakt: /x}')).map((p) => [p[1], p[2]]), [
    ['spec.http[0].match[0].uri.exakt', 'unknown field "exakt" (did you mean "exact"?)'],
    ['spec.http[0].match[0].uri', 'set exactly one of exact, prefix or regex'],
  ]);
});

test('http route actions: redirect, directResponse and route exclude each other', () => {
  const http = (body: string) => vs(`  hosts: [productpage]\n  http:\n  - ${body}\n`);
  assert.deepEqual(problems(http('redirect: {uri: /v2/productpage, redirectCode: 301}')), []);
  assert.deepEqual(problems(http('directResponse: {status: 503, body: {string: "maintenance"}}')), []);
  assert.deepEqual(problems(http('directResponse: {status: 200, body: {string: a, bytes: YQ==}}')).map((p) => p[1]), ['spec.http[0].directResponse.body']);
  assert.deepEqual(problems(http('redirect: {uri: /a}\n    directResponse: {status: 404}')).map((p) => p.slice(0, 2)), [['JIBE_ERR_SCHEMA', 'spec.http[0]']]);
  assert.deepEqual(problems(http('redirect: {uri: /a}\n    rewrite: {uri: /b}')).map((p) => p[1]), ['spec.http[0].rewrite']);
  assert.deepEqual(problems(http('redirect: {redirectCode: 301}')).map((p) => p[1]), ['spec.http[0].redirect']);
});

test('retries and faults: known retry conditions, an abort that says how', () => {
  const http = (body: string) => vs(`  hosts: [ratings]\n  http:\n  - route:\n    - destination: {host: ratings}\n    ${body}\n`);
  assert.deepEqual(problems(http('retries: {attempts: 3, perTryTimeout: 2s, retryOn: "5xx,reset,429"}')), []);
  assert.deepEqual(problems(http('retries: {attempts: 3, retryOn: "5xx,on-error"}')).map((p) => [p[1], /"on-error"/.test(p[2])]), [['spec.http[0].retries.retryOn', true]]);
  assert.deepEqual(problems(http('retries: {perTryTimeout: 2s}')).map((p) => p[1]), ['spec.http[0].retries.attempts']);
  assert.deepEqual(problems(http('fault: {abort: {httpStatus: 503, percentage: {value: 10}}}')), []);
  assert.deepEqual(problems(http('fault: {abort: {percentage: {value: 10}}}')).map((p) => p[1]), ['spec.http[0].fault.abort']);
  assert.deepEqual(problems(http('fault: {delay: {fixedDelay: 5s, percentage: {value: 120}}}')).map((p) => p[1]), ['spec.http[0].fault.delay.percentage.value']);
});

test('VirtualService hosts and gateways: "*" only off the mesh, gateway references in their forms', () => {
  const route = '  http:\n  - route:\n    - destination: {host: productpage}\n';
  assert.deepEqual(problems(vs(`  hosts: ["*"]\n  gateways: [bookinfo-gateway]\n${route}`)), []);
  assert.deepEqual(problems(vs(`  hosts: ["*"]\n${route}`)).map((p) => p[1]), ['spec.hosts[0]']);
  assert.deepEqual(problems(vs(`  hosts: ["*"]\n  gateways: [mesh, gw]\n${route}`)).map((p) => p[1]), ['spec.hosts[0]']);
  assert.deepEqual(problems(vs(`  hosts: [a.example.com]\n  gateways: [istio-system/gw, mesh]\n${route}`)), []);
  assert.deepEqual(problems(vs(`  hosts: [a.example.com]\n  gateways: [a/b/c]\n${route}`)).map((p) => p[1]), ['spec.gateways[0]']);
  assert.deepEqual(problems(vs(`  hosts: [a..example.com]\n${route}`)).map((p) => p[1]), ['spec.hosts[0]']);
  assert.deepEqual(problems(vs('  hosts: [reviews]\n')).map((p) => p[1]), ['spec']);
  assert.deepEqual(problems(vs('  hosts: []\n' + route)).map((p) => [p[1], p[2]]), [['spec.hosts', 'must list at least 1 item']]);
});

test('envelope: apiVersion variants, unknown top-level fields, labels, missing spec', () => {
  const spec = '  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews}\n';
  for (const apiVersion of ['networking.istio.io/v1', 'networking.istio.io/v1beta1', 'networking.istio.io/v1alpha3', 'networking.jibe.dev/v1']) {
    assert.deepEqual(problems(vs(spec).replace('networking.istio.io/v1', apiVersion)), [], apiVersion);
  }
  assert.deepEqual(problems(vs(spec, 'status: {observedGeneration: 1}\n')), [], 'status from kubectl get -o yaml is tolerated');
  assert.deepEqual(problems(vs(spec, 'specs: {}\n')).map((p) => [p[1], p[2]]), [['specs', 'unknown field "specs" (did you mean "spec"?)']]);
  assert.deepEqual(problems(vs(spec).replace('  name: t\n', '  name: t\n  labels: {version: 2}\n')).map((p) => p[1]), ['metadata.labels.version']);
  assert.deepEqual(problems(vs(spec).replace('name: t', 'name: Reviews')).map((p) => p[1]), ['metadata.name']);
  assert.deepEqual(problems('apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: g}\n').map((p) => [p[1], p[2]]), [['spec', 'spec is required for Gateway']]);
  assert.deepEqual(problems('apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec: [1]\n').map((p) => [p[1], p[2]]), [['spec', 'must be a mapping, not a list']]);
});

test('Gateway: protocols, TLS for HTTPS, unique server names', () => {
  const gw = (servers: string) => `apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec:\n  servers:\n${servers}`;
  const https = '  - port: {number: 443, name: https, protocol: HTTPS}\n    hosts: [bookinfo.example.com]\n';
  assert.deepEqual(problems(gw(`${https}    tls: {mode: SIMPLE, credentialName: bookinfo-cert}\n`)), []);
  assert.deepEqual(problems(gw(https)).map((p) => p[1]), ['spec.servers[0].tls']);
  assert.deepEqual(problems(gw(`${https}    tls: {mode: MUTUAL, serverCertificate: /c.pem, privateKey: /k.pem}\n`)).map((p) => p[1]), ['spec.servers[0].tls']);
  assert.deepEqual(problems(gw('  - port: {number: 80, name: http, protocol: HTTPX}\n    hosts: ["prod/*.example.com"]\n')).map((p) => p[1]), ['spec.servers[0].port.protocol']);
  assert.deepEqual(problems(gw('  - port: {number: 80, name: http}\n    hosts: ["./a.example.com"]\n')).map((p) => p[1]), ['spec.servers[0].port.protocol']);
  const named = '  - name: web\n    port: {number: 80, name: http, protocol: http}\n    hosts: ["*"]\n';
  assert.deepEqual(problems(gw(named + named.replace('80', '81'))).map((p) => p[1]), ['spec.servers[1].name']);
  assert.deepEqual(problems(gw('  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: ["Prod_X/a.example.com"]\n')).map((p) => p[1]), ['spec.servers[0].hosts[0]']);
});

test('DestinationRule: one load-balancing choice, one hash key, unique port settings', () => {
  const dr = (policy: string) => `apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\nspec:\n  host: reviews\n  trafficPolicy:\n${policy}`;
  assert.deepEqual(problems(dr('    loadBalancer: {consistentHash: {httpCookie: {name: user, ttl: 0s}}}\n')), []);
  assert.deepEqual(problems(dr('    loadBalancer: {simple: RANDOM, consistentHash: {useSourceIp: true}}\n')).map((p) => p[1]), ['spec.trafficPolicy.loadBalancer']);
  assert.deepEqual(problems(dr('    loadBalancer: {consistentHash: {useSourceIp: true, httpHeaderName: x}}\n')).map((p) => p[1]), ['spec.trafficPolicy.loadBalancer.consistentHash']);
  assert.deepEqual(
    problems(dr('    portLevelSettings:\n    - port: {number: 80}\n      loadBalancer: {simple: RANDOM}\n    - port: {number: 80}\n      tls: {mode: ISTIO_MUTUAL}\n')).map((p) => p[1]),
    ['spec.trafficPolicy.portLevelSettings[1].port.number'],
  );
  assert.deepEqual(problems(dr('    connectionPool: {tcp: {connectTimeout: 30}}\n')).map((p) => [p[1], p[2]]), [['spec.trafficPolicy.connectionPool.tcp.connectTimeout', 'must be a string, not number 30']]);
  assert.deepEqual(problems(dr('    tls: {mode: MUTUAL}\n')).map((p) => p[1]), ['spec.trafficPolicy.tls']);
});

test('ServiceEntry and WorkloadEntry: resolvable hosts, declared ports, consistent endpoints', () => {
  const se = (spec: string) => `apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: s}\nspec:\n${spec}`;
  const ports = '  ports:\n  - {number: 443, name: https, protocol: TLS}\n';
  assert.deepEqual(problems(se(`  hosts: ["*.wikipedia.org"]\n  resolution: NONE\n${ports}`)), []);
  assert.deepEqual(problems(se(`  hosts: ["*.wikipedia.org"]\n  resolution: DNS\n${ports}`)).map((p) => p[1]), ['spec.hosts[0]']);
  assert.deepEqual(problems(se(`  hosts: ["*"]\n${ports}`)).map((p) => p[1]), ['spec.hosts[0]']);
  assert.deepEqual(
    problems(se(`  hosts: [db.internal]\n  resolution: STATIC\n  addresses: [10.1.0.0/16]\n${ports}  endpoints:\n  - address: 10.1.2.3\n    ports: {https: 8443}\n  - address: db-2.internal\n    ports: {tls: 8443}\n`)).map((p) => p[1]),
    ['spec.endpoints[1].address', 'spec.endpoints[1].ports.tls'],
  );
  assert.deepEqual(problems(se(`  hosts: [db.internal]\n  resolution: NONE\n${ports}  endpoints:\n  - address: 10.1.2.3\n`)).map((p) => p[1]), ['spec.endpoints']);
  assert.deepEqual(problems(se(`  hosts: [a.example.com]\n  addresses: [10.0.0.0/33]\n${ports}  - {number: 443, name: tls}\n`)).map((p) => p[1]), ['spec.addresses[0]', 'spec.ports[1].number']);
  const we = (spec: string) => `apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: w}\nspec:\n${spec}`;
  assert.deepEqual(problems(we('  address: vm-1.example.com\n  ports: {http: 9080}\n')), []);
  assert.deepEqual(problems(we('  labels: {app: details}\n')).map((p) => p[1]), ['spec.address']);
  assert.deepEqual(problems(we('  network: vpc-2\n')), []);
  assert.deepEqual(problems(we('  address: 10.0.0.1\n  ports: {http: 0}\n')).map((p) => p[1]), ['spec.ports.http']);
});

test('malformed input of any shape yields errors, never an exception', () => {
  const shapes: unknown[] = [
    null,
    { resource: null, source: {} },
    { resource: 'text' },
    { resource: { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'x' }, spec: { hosts: 'reviews', http: 'nope', tcp: [null, 1] } } },
    { resource: { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'x' }, spec: { hosts: [1], http: [{ route: [null, { destination: 'x', weight: 'a' }], match: [null] }] } } },
    { resource: { apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'x' }, spec: { host: 7, subsets: [null, 'a', { name: 3 }] } } },
    { resource: { apiVersion: 7, kind: ['Gateway'], metadata: 'm' } },
  ];
  for (const shape of shapes) {
    const errors = validateResource(shape as ParsedDocument);
    assert.ok(errors.length > 0, JSON.stringify(shape));
  }
});
