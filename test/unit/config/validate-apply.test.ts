import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadFiles, parseDocuments } from '../../../core/config/load-documents.ts';
import { validateApply, validateDelete } from '../../../core/config/validate-apply.ts';
import { isJibeError } from '../../../core/errors/errors.ts';
import type { JibeError } from '../../../core/errors/errors.ts';
import type { Resource } from '../../../core/model/resource.ts';
import { resourceKey } from '../../../core/model/resource.ts';
import { bookinfoHosts, fixture } from './fixtures.ts';

function thrown(fn: () => unknown): JibeError {
  try {
    fn();
  } catch (e) {
    assert.ok(isJibeError(e), `expected a JibeError, got ${e}`);
    return e;
  }
  assert.fail('expected an error');
}

async function bookinfo(): Promise<Resource[]> {
  return validateApply(await loadFiles([fixture('bookinfo')]), [], bookinfoHosts());
}

test('BookInfo applies: resources come back normalized, namespace defaulted, apiVersion kept', async () => {
  const applied = await bookinfo();
  assert.equal(applied.length, 13);
  assert.ok(applied.every((r) => r.metadata.namespace === 'default'));
  const se = applied.find((r) => r.kind === 'ServiceEntry')!;
  assert.equal(se.apiVersion, 'networking.istio.io/v1beta1');
  assert.deepEqual(Object.keys(se).sort(), ['apiVersion', 'kind', 'metadata', 'spec']);
  const vs = applied.find((r) => resourceKey(r) === 'VirtualService/default/bookinfo')!;
  assert.deepEqual(vs.spec, {
    hosts: ['*'],
    gateways: ['bookinfo-gateway'],
    http: [
      {
        match: [{ uri: { exact: '/productpage' } }, { uri: { prefix: '/static' } }, { uri: { exact: '/login' } }, { uri: { exact: '/logout' } }, { uri: { prefix: '/api/v1/products' } }],
        route: [{ destination: { host: 'productpage', port: { number: 9080 } } }],
      },
    ],
  });
});

test('a batch with one bad document is rejected whole, with every problem as a cause', async () => {
  const batch = await loadFiles([fixture('invalid/batch-one-bad.yaml')]);
  const e = thrown(() => validateApply(batch, [], bookinfoHosts()));
  assert.equal(e.code, 'JIBE_ERR_VALIDATION');
  assert.match(e.message, /nothing was applied/);
  assert.equal(e.details.file, fixture('invalid/batch-one-bad.yaml'));
  assert.deepEqual(
    e.details.causes?.map((c) => [c.code, c.details.documentIndex, c.details.resource, c.details.field]),
    [
      ['JIBE_ERR_SCHEMA', 2, 'VirtualService/default/ratings', 'spec.http[0].route[1].weigth'],
      ['JIBE_ERR_WEIGHTS', 2, 'VirtualService/default/ratings', 'spec.http[0].route'],
    ],
  );
  const json = e.toJSON() as { causes: unknown[] };
  assert.equal(json.causes.length, 2, 'causes survive the trip over the API');
});

test('the same resource twice in a batch is JIBE_ERR_DUPLICATE at the second place', () => {
  const vs = 'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews, namespace: default}\nspec:\n  hosts: [reviews]\n  http: [{route: [{destination: {host: reviews}}]}]\n';
  const batch = parseDocuments(`${vs}---\n${vs.replace(', namespace: default', '')}`, 'dup.yaml');
  const e = thrown(() => validateApply(batch, [], bookinfoHosts()));
  assert.deepEqual(
    e.details.causes?.map((c) => [c.code, c.details.file, c.details.documentIndex, c.details.resource]),
    [['JIBE_ERR_DUPLICATE', 'dup.yaml', 1, 'VirtualService/default/reviews']],
  );
  assert.match(e.details.causes![0].message, /first at dup\.yaml \(document 1\)/);
});

test('references are checked against the config as it would be after the apply', async () => {
  const current = await bookinfo();
  const hosts = bookinfoHosts();
  // A VirtualService may use a subset that only the stored config defines...
  const vs = parseDocuments('apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\nspec:\n  hosts: [reviews]\n  http: [{route: [{destination: {host: reviews, subset: v2}}]}]\n', 'vs.yaml');
  assert.equal(validateApply(vs, current, hosts).length, 1);
  // ...and a DestinationRule in the batch that drops v3 breaks the stored VirtualService that routes 20% there.
  const dr = parseDocuments('apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews}\nspec:\n  host: reviews\n  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]\n', 'dr.yaml');
  const e = thrown(() => validateApply(dr, current, hosts));
  assert.deepEqual(
    e.details.causes?.map((c) => [c.code, c.details.resource, c.details.field]),
    [['JIBE_ERR_REFERENCE', 'VirtualService/default/reviews', 'spec.http[1].route[1].destination.subset']],
  );
  assert.match(e.details.causes![0].message, /subset "v3" is not defined .*this apply would break this existing rule/);
  // Changing both in one batch is fine.
  const both = parseDocuments(`${'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\nspec:\n  hosts: [reviews]\n  http: [{route: [{destination: {host: reviews, subset: v2}}]}]\n'}---\n${'apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews}\nspec:\n  host: reviews\n  subsets: [{name: v2, labels: {version: v2}}]\n'}`);
  assert.equal(validateApply(both, current, hosts).length, 2);
});

test('a reference that already dangled (a service left the registry) does not block unrelated applies', async () => {
  const current = await bookinfo();
  const withoutRatings = new Set([...bookinfoHosts()].filter((h) => !h.startsWith('ratings.')));
  const gw = parseDocuments('apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: other}\nspec:\n  servers: [{port: {number: 9090, name: http, protocol: HTTP}, hosts: ["*"]}]\n');
  assert.equal(validateApply(gw, current, withoutRatings).length, 1);
  // Reapplying the rule that dangles is refused: the user is asking for it.
  const ratings = (await loadFiles([fixture('bookinfo/virtual-services.yaml')])).filter((d) => d.resource.metadata.name === 'ratings');
  const e = thrown(() => validateApply(ratings, current, withoutRatings));
  assert.deepEqual(e.details.causes?.map((c) => c.details.field), ['spec.http[0].route[0].destination.host', 'spec.http[1].route[0].destination.host']);
  assert.ok(e.details.causes?.every((c) => c.details.file === fixture('bookinfo/virtual-services.yaml') && c.details.documentIndex === 1));
});

test('schema errors and reference errors of one batch are reported together, each once', () => {
  const batch = parseDocuments(
    'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\nspec:\n  hosts: [a]\n  http: [{route: [{destination: {host: nowhere}}], timeout: 3 s}]\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: b}\nspec:\n  hosts: [b]\n  http: [{route: [{destination: {host: nowhere}}]}]\n',
    'mixed.yaml',
  );
  const e = thrown(() => validateApply(batch, [], bookinfoHosts()));
  assert.deepEqual(
    e.details.causes?.map((c) => [c.code, c.details.documentIndex, c.details.field]),
    [
      ['JIBE_ERR_SCHEMA', 0, 'spec.http[0].timeout'],
      ['JIBE_ERR_REFERENCE', 1, 'spec.http[0].route[0].destination.host'],
    ],
  );
});

test('validateApply survives documents of any shape sent over the API', () => {
  const e = thrown(() => validateApply([null, { resource: 5 }, { resource: { kind: 'VirtualService', metadata: { name: 'x' } } }] as never, [], new Set()));
  assert.equal(e.code, 'JIBE_ERR_VALIDATION');
  assert.ok((e.details.causes?.length ?? 0) >= 3);
});

test('a delete that would leave dangling references is refused with JIBE_ERR_REFERENCE', async () => {
  const current = await bookinfo();
  const hosts = bookinfoHosts();
  const e = thrown(() => validateDelete([{ kind: 'DestinationRule', namespace: 'default', name: 'reviews' }], current, hosts));
  assert.equal(e.code, 'JIBE_ERR_REFERENCE');
  assert.equal(e.details.resource, 'DestinationRule/default/reviews');
  assert.deepEqual(
    e.details.causes?.map((c) => [c.details.resource, c.details.field]),
    [
      ['VirtualService/default/reviews', 'spec.http[0].route[0].destination.subset'],
      ['VirtualService/default/reviews', 'spec.http[1].route[0].destination.subset'],
      ['VirtualService/default/reviews', 'spec.http[1].route[1].destination.subset'],
    ],
  );
  const gw = thrown(() => validateDelete([{ kind: 'gw', namespace: 'default', name: 'bookinfo-gateway' }], current, hosts));
  assert.deepEqual(gw.details.causes?.map((c) => [c.details.resource, c.details.field]), [['VirtualService/default/bookinfo', 'spec.gateways[0]']]);
  const se = thrown(() => validateDelete([{ kind: 'ServiceEntry', namespace: 'default', name: 'httpbin-ext' }], current, hosts));
  assert.deepEqual(se.details.causes?.map((c) => c.details.field), ['spec.tcp[0].route[0].destination.host']);
});

test('deleting the referrer together with what it refers to is fine; a missing ref is JIBE_ERR_NOT_FOUND', async () => {
  const current = await bookinfo();
  const hosts = bookinfoHosts();
  const deleted = validateDelete(
    [
      { kind: 'DestinationRule', namespace: 'default', name: 'reviews' },
      { kind: 'vs', namespace: 'default', name: 'reviews' },
    ],
    current,
    hosts,
  );
  assert.deepEqual(deleted.map(resourceKey), ['DestinationRule/default/reviews', 'VirtualService/default/reviews']);
  assert.equal(validateDelete([{ kind: 'VirtualService', namespace: 'default', name: 'bookinfo' }], current, hosts).length, 1);
  const e = thrown(() => validateDelete([{ kind: 'VirtualService', namespace: 'default', name: 'nope' }], current, hosts));
  assert.equal(e.code, 'JIBE_ERR_NOT_FOUND');
  assert.equal(e.details.resource, 'VirtualService/default/nope');
});
