import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalJson, diffResources, encodeResource, encodeResources, versionsOf } from '../../../core/discovery/resource-diff.ts';
import type { ProxyResource } from '../../../core/model/proxy-config.ts';
import { cluster } from './discovery-fixtures.ts';

test('canonicalJson sorts keys at every level and drops undefined members', () => {
  assert.equal(canonicalJson({ b: 1, a: { d: [2, { z: 1, y: undefined }], c: null } }), '{"a":{"c":null,"d":[2,{"z":1}]},"b":1}');
  assert.equal(canonicalJson([undefined, 'x']), '[null,"x"]');
});

test('equal content has one version whatever the key order; other content another', () => {
  const a = encodeResource(cluster('a'));
  const reordered = encodeResource({ protocol: 'http1', lbPolicy: 'ROUND_ROBIN', port: 80, service: 'a.default.svc.cluster.local', name: 'a', type: 'cluster' });
  const other = encodeResource(cluster('a', 81));
  assert.equal(a.wire.version, reordered.wire.version);
  assert.notEqual(a.wire.version, other.wire.version);
  assert.match(a.wire.version, /^[0-9a-f]{40}$/);
  assert.deepEqual(JSON.parse(a.wire.body.toString()), cluster('a'));
  assert.equal(a.key, 'cluster/a');
});

test('the same name under two types is two resources; twice under one type is refused', () => {
  const endpoints: ProxyResource = { type: 'endpoints', name: 'a', endpoints: [] };
  assert.equal(encodeResources([cluster('a'), endpoints]).size, 2);
  assert.throws(() => encodeResources([cluster('a'), cluster('a', 81)]), /holds cluster\/a twice/);
});

test('diffResources sends what is new or changed and names what is gone', () => {
  const base = versionsOf(encodeResources([cluster('a'), cluster('b'), cluster('c')]));
  const next = encodeResources([cluster('a'), cluster('b', 81), cluster('d')]);
  const diff = diffResources(base, next);
  assert.deepEqual(diff.changed.map((r) => r.name).sort(), ['b', 'd']);
  assert.deepEqual(diff.removed, [{ type: 'cluster', name: 'c' }]);
  assert.deepEqual(diffResources(versionsOf(next), next), { changed: [], removed: [] });
});
