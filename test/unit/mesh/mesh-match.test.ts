import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { compareByAge, hostMatchesPattern, hostsIntersect, isExportedTo, narrowerHost, selectorMatches } from '../../../core/mesh/mesh-match.ts';
import { resolveGatewayRef } from '../../../core/mesh/build-context.ts';

describe('mesh-match', () => {
  it('reads exportTo as Istio does', () => {
    assert.equal(isExportedTo(undefined, 'a', 'b'), true);
    assert.equal(isExportedTo([], 'a', 'b'), true);
    assert.equal(isExportedTo(['*'], 'a', 'b'), true);
    assert.equal(isExportedTo(['.'], 'a', 'a'), true);
    assert.equal(isExportedTo(['.'], 'a', 'b'), false);
    assert.equal(isExportedTo(['.', 'b'], 'a', 'b'), true);
    assert.equal(isExportedTo(['~'], 'a', 'a'), false);
  });

  it('selects by label subset', () => {
    assert.equal(selectorMatches({ app: 'x' }, { app: 'x', version: 'v1' }), true);
    assert.equal(selectorMatches({ app: 'x', version: 'v2' }, { app: 'x', version: 'v1' }), false);
    assert.equal(selectorMatches({}, {}), true);
    assert.equal(selectorMatches(undefined, {}), true);
  });

  it('matches and intersects wildcard hosts', () => {
    assert.equal(hostMatchesPattern('a.example.com', '*.example.com'), true);
    assert.equal(hostMatchesPattern('example.com', '*.example.com'), false);
    assert.equal(hostMatchesPattern('A.Example.com', 'a.example.COM'), true);
    assert.equal(hostMatchesPattern('anything', '*'), true);
    assert.equal(hostsIntersect('*.a.example.com', '*.example.com'), true);
    assert.equal(hostsIntersect('*.example.com', '*.example.org'), false);
    assert.equal(hostsIntersect('x.example.com', '*'), true);
    assert.equal(narrowerHost('*', 'x.example.com'), 'x.example.com');
    assert.equal(narrowerHost('*.example.com', 'a.example.com'), 'a.example.com');
    assert.equal(narrowerHost('*.example.com', '*.a.example.com'), '*.a.example.com');
  });

  it('orders rules oldest first, then by name and namespace, missing timestamps first', () => {
    const r = (name: string, namespace: string, creationTimestamp?: string) => ({ metadata: { name, namespace, creationTimestamp } });
    const sorted = [r('b', 'x', '2024-01-02T00:00:00Z'), r('a', 'y', '2024-01-02T00:00:00Z'), r('a', 'x', '2024-01-02T00:00:00Z'), r('z', 'x', '2024-01-01T00:00:00Z'), r('q', 'x')].sort(compareByAge);
    assert.deepEqual(sorted.map((s) => `${s.metadata.namespace}/${s.metadata.name}`), ['x/q', 'x/z', 'x/a', 'y/a', 'x/b']);
  });

  it('resolves gateway references relative to the VirtualService namespace', () => {
    assert.equal(resolveGatewayRef('mesh', 'default'), 'mesh');
    assert.equal(resolveGatewayRef('gw', 'default'), 'default/gw');
    assert.equal(resolveGatewayRef('infra/gw', 'default'), 'infra/gw');
    assert.equal(resolveGatewayRef('gw.infra.svc.cluster.local', 'default'), 'infra/gw');
  });
});
