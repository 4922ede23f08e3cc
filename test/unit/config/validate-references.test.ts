import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadFiles, parseDocuments } from '../../../core/config/load-documents.ts';
import { validateReferences } from '../../../core/config/validate-references.ts';
import type { Resource, ResourceSource } from '../../../core/model/resource.ts';
import { resourceKey } from '../../../core/model/resource.ts';
import { bookinfoHosts, fixture } from './fixtures.ts';

function resources(yaml: string): Resource[] {
  return parseDocuments(yaml).map((d) => d.resource);
}

async function bookinfo(): Promise<Resource[]> {
  return (await loadFiles([fixture('bookinfo')])).map((d) => d.resource);
}

function routeTo(name: string, namespace: string, destination: string, extra = ''): string {
  return `---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: ${name}, namespace: ${namespace}}\nspec:\n  hosts: [${name}]\n${extra}  http:\n  - route:\n    - destination: ${destination}\n`;
}

test('BookInfo\'s rules refer only to what exists', async () => {
  assert.deepEqual(validateReferences(await bookinfo(), bookinfoHosts()), []);
});

test('an undefined subset, an unknown host and a missing gateway are named, with what to do', async () => {
  const docs = await loadFiles([fixture('invalid/references.yaml')]);
  const sources = new Map<string, ResourceSource>(docs.map((d) => [resourceKey(d.resource), d.source]));
  const drs = (await bookinfo()).filter((r) => r.kind === 'DestinationRule');
  const errors = validateReferences([...drs, ...docs.map((d) => d.resource)], bookinfoHosts(), sources);
  assert.deepEqual(
    errors.map((e) => [e.code, e.details.file, e.details.documentIndex, e.details.resource, e.details.field]),
    [
      ['JIBE_ERR_REFERENCE', fixture('invalid/references.yaml'), 0, 'VirtualService/default/reviews', 'spec.http[0].route[0].destination.subset'],
      ['JIBE_ERR_REFERENCE', fixture('invalid/references.yaml'), 1, 'VirtualService/default/ratings', 'spec.http[0].route[0].destination.host'],
      ['JIBE_ERR_REFERENCE', fixture('invalid/references.yaml'), 2, 'VirtualService/default/bookinfo', 'spec.gateways[0]'],
    ],
  );
  assert.equal(
    errors[0].message,
    'subset "v4" is not defined for host reviews.default.svc.cluster.local (define it in a DestinationRule\'s spec.subsets, or route to one of: v1, v2, v3)',
  );
  assert.match(errors[1].message, /^host "ratingz" \(ratingz\.default\.svc\.cluster\.local\) is not a known service \(did you mean ratings\.default\.svc\.cluster\.local\?\)/);
  assert.match(errors[1].message, /add a ServiceEntry/);
  assert.match(errors[2].message, /no Gateway bookinfo-gw in namespace default/);
});

test('short names resolve in the rule\'s namespace; other namespaces need a qualified name', () => {
  const hosts = bookinfoHosts();
  assert.deepEqual(validateReferences(resources(routeTo('a', 'default', '{host: reviews}')), hosts), []);
  assert.deepEqual(validateReferences(resources(routeTo('a', 'prod', '{host: reviews.default}')), hosts), []);
  assert.deepEqual(validateReferences(resources(routeTo('a', 'prod', '{host: reviews.default.svc}')), hosts), []);
  const [e] = validateReferences(resources(routeTo('a', 'prod', '{host: reviews}')), hosts);
  assert.equal(e.details.field, 'spec.http[0].route[0].destination.host');
  assert.match(e.message, /reviews\.prod\.svc\.cluster\.local/);
});

test('a subset with no DestinationRule at all says to add one', () => {
  const [e] = validateReferences(resources(routeTo('a', 'default', '{host: details, subset: v1}')), bookinfoHosts());
  assert.equal(e.message, 'subset "v1" is not defined for host details.default.svc.cluster.local (no DestinationRule defines subsets for this host; add one with host: details.default.svc.cluster.local and spec.subsets)');
});

test('ServiceEntry hosts are known, wildcards cover names, declared ports are checked', () => {
  const se = `apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: ext, namespace: egress}\nspec:\n  hosts: [httpbin.org, "*.wikipedia.org"]\n  ports: [{number: 443, name: https, protocol: TLS}]\n  resolution: NONE\n`;
  const hosts = bookinfoHosts();
  assert.deepEqual(validateReferences(resources(se + routeTo('a', 'default', '{host: httpbin.org}') + routeTo('b', 'default', '{host: en.wikipedia.org}')), hosts), []);
  const [e] = validateReferences(resources(se + routeTo('a', 'default', '{host: httpbin.org, port: {number: 80}}')), hosts);
  assert.equal(e.details.field, 'spec.http[0].route[0].destination.port.number');
  assert.match(e.message, /port 80 is not a port of host httpbin\.org \(ServiceEntry\/egress\/ext declares 443/);
});

test('exportTo hides ServiceEntries and DestinationRules from other namespaces', () => {
  const se = `apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: ext, namespace: team-a}\nspec:\n  hosts: [api.example.com]\n  exportTo: ["."]\n`;
  const hosts = bookinfoHosts();
  assert.deepEqual(validateReferences(resources(se + routeTo('a', 'team-a', '{host: api.example.com}')), hosts), []);
  assert.equal(validateReferences(resources(se + routeTo('a', 'team-b', '{host: api.example.com}')), hosts).length, 1);

  const dr = (exportTo: string) => `apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: default}\nspec:\n  host: reviews\n  exportTo: ${exportTo}\n  subsets: [{name: v1, labels: {version: v1}}]\n`;
  const vs = routeTo('r', 'prod', '{host: reviews.default, subset: v1}');
  assert.deepEqual(validateReferences(resources(dr('["*"]') + vs), hosts), []);
  assert.deepEqual(validateReferences(resources(dr('[prod]') + vs), hosts), []);
  assert.deepEqual(validateReferences(resources(dr('["."]') + vs), hosts).map((e) => e.details.field), ['spec.http[0].route[0].destination.subset']);
});

test('gateway references: mesh is reserved, name is same-namespace, ns/name crosses namespaces, match gateways too', () => {
  const gw = `apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: ingress, namespace: istio-system}\nspec:\n  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]\n`;
  const hosts = bookinfoHosts();
  const ok = routeTo('a', 'default', '{host: productpage}', '  gateways: [mesh, istio-system/ingress]\n');
  assert.deepEqual(validateReferences(resources(gw + ok), hosts), []);
  const sameNs = routeTo('a', 'default', '{host: productpage}', '  gateways: [ingress]\n');
  const [e] = validateReferences(resources(gw + sameNs), hosts);
  assert.equal(e.details.field, 'spec.gateways[0]');
  assert.match(e.message, /did you mean istio-system\/ingress\?/);
  const matchGw = `---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: m}\nspec:\n  hosts: [productpage]\n  gateways: [mesh]\n  http:\n  - match: [{gateways: [istio-system/egress]}]\n    route: [{destination: {host: productpage}}]\n`;
  assert.deepEqual(validateReferences(resources(gw + matchGw), hosts).map((x) => x.details.field), ['spec.http[0].match[0].gateways[0]']);
});

test('a DestinationRule for a host no one knows is allowed (the service may come later)', () => {
  const dr = `apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: future}\nspec:\n  host: future-service\n  subsets: [{name: v1, labels: {version: v1}}]\n`;
  assert.deepEqual(validateReferences(resources(dr), new Set()), []);
});

test('tcp routes are checked like http routes', () => {
  const vs = `apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: db}\nspec:\n  hosts: [mysql]\n  tcp:\n  - route: [{destination: {host: mysqldb, subset: v1}}]\n`;
  assert.deepEqual(validateReferences(resources(vs), bookinfoHosts()).map((e) => e.details.field), ['spec.tcp[0].route[0].destination.host']);
});
