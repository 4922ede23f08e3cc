// Virtual host lookup order and route matching, without sockets.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RouteMatch } from '../../../core/model/proxy-config.ts';
import { CompiledMatch, matchRoute } from '../../../proxy/router/route-matcher.ts';
import type { MatchInput } from '../../../proxy/router/route-matcher.ts';
import { compileFullMatchRegex } from '../../../proxy/router/string-matcher.ts';
import { VirtualHostTable, stripPort } from '../../../proxy/router/virtual-host-table.ts';

function input(path: string, extra: Partial<MatchInput> & { headers?: Record<string, string>; query?: Record<string, string> } = {}): MatchInput {
  return {
    method: extra.method ?? 'GET',
    path,
    authority: extra.authority ?? 'svc',
    scheme: 'http',
    listenerPort: extra.listenerPort ?? 15001,
    matchedPrefixLength: -1,
    lowerPath: () => path.toLowerCase(),
    header: (name) => extra.headers?.[name],
    queryParam: (name) => extra.query?.[name],
  };
}

const matches = (m: RouteMatch, i: MatchInput) => new CompiledMatch(m).test(i);

describe('virtual host table', () => {
  const table = new VirtualHostTable<string>();
  for (const [domain, value] of [
    ['reviews', 'exact'],
    ['reviews:9080', 'exact-port'],
    ['*.example.com', 'suffix'],
    ['*.shop.example.com', 'longer-suffix'],
    ['api.*', 'prefix'],
    ['*', 'any'],
  ]) {
    assert.equal(table.add(domain, value), true);
  }

  it('looks up exact, then host without port, then wildcards longest first, then *', () => {
    assert.equal(table.lookup('reviews'), 'exact');
    assert.equal(table.lookup('REVIEWS:9080'), 'exact-port');
    assert.equal(table.lookup('reviews:1234'), 'exact');
    assert.equal(table.lookup('a.example.com'), 'suffix');
    assert.equal(table.lookup('a.shop.example.com'), 'longer-suffix');
    assert.equal(table.lookup('a.example.com:8080'), 'suffix');
    assert.equal(table.lookup('api.internal'), 'prefix');
    assert.equal(table.lookup('example.com'), 'any');
    assert.equal(table.lookup('other'), 'any');
  });

  it('reports duplicate domains', () => {
    assert.equal(table.add('Reviews', 'again'), false);
    assert.equal(table.add('*', 'again'), false);
  });

  it('strips ports from names and IPv6 literals', () => {
    assert.equal(stripPort('a:80'), 'a');
    assert.equal(stripPort('[::1]:80'), '[::1]');
    assert.equal(stripPort('[::1]'), '[::1]');
    assert.equal(stripPort('a'), 'a');
  });
});

describe('route matching', () => {
  it('matches regexes fully, with RE2 (?i)', () => {
    assert.equal(compileFullMatchRegex('/a+').test('/aaa'), true);
    assert.equal(compileFullMatchRegex('/a+').test('/aaab'), false);
    assert.equal(compileFullMatchRegex('(?i)/ABC').test('/abc'), true);
  });

  it('ANDs the conditions of one match', () => {
    const m: RouteMatch = { uri: { prefix: '/api' }, method: { exact: 'POST' }, headers: [{ name: 'X-User', match: { prefix: 'adm' } }], queryParams: [{ name: 'v', match: { regex: '[0-9]+' } }], port: 80 };
    const ok = input('/api/x', { method: 'POST', headers: { 'x-user': 'admin' }, query: { v: '12' }, listenerPort: 80 });
    assert.equal(matches(m, ok), true);
    assert.equal(matches(m, { ...ok, method: 'GET' }), false);
    assert.equal(matches(m, { ...ok, listenerPort: 81 }), false);
    assert.equal(matches(m, input('/api/x', { method: 'POST', headers: { 'x-user': 'guest' }, query: { v: '12' }, listenerPort: 80 })), false);
    assert.equal(matches(m, input('/api/x', { method: 'POST', headers: { 'x-user': 'admin' }, query: { v: 'x' }, listenerPort: 80 })), false);
  });

  it('matches header presence, absence (invert) and pseudo-headers', () => {
    assert.equal(matches({ headers: [{ name: 'x-a' }] }, input('/', { headers: { 'x-a': '' } })), true);
    assert.equal(matches({ headers: [{ name: 'x-a' }] }, input('/')), false);
    assert.equal(matches({ headers: [{ name: 'x-a', invert: true }] }, input('/')), true);
    assert.equal(matches({ headers: [{ name: 'x-a', match: { exact: 'no' }, invert: true }] }, input('/', { headers: { 'x-a': 'yes' } })), true);
    assert.equal(matches({ headers: [{ name: ':authority', match: { exact: 'svc' } }] }, input('/')), true);
  });

  it('treats an empty exact query matcher as presence (as Istio)', () => {
    assert.equal(matches({ queryParams: [{ name: 'debug', match: { exact: '' } }] }, input('/', { query: { debug: 'anything' } })), true);
    assert.equal(matches({ queryParams: [{ name: 'debug', match: { exact: '' } }] }, input('/')), false);
  });

  it('takes the first matching route, ORs its matches, and records the prefix length', () => {
    const routes = [
      { name: 'one', matches: [new CompiledMatch({ uri: { exact: '/x' } }), new CompiledMatch({ uri: { prefix: '/pre' } })] },
      { name: 'two', matches: [] },
    ];
    const i = input('/prefix');
    assert.equal(matchRoute(routes, i)?.name, 'one');
    assert.equal(i.matchedPrefixLength, 4);
    const j = input('/other');
    assert.equal(matchRoute(routes, j)?.name, 'two');
    assert.equal(j.matchedPrefixLength, -1);
    assert.equal(matchRoute(routes.slice(0, 1), input('/nope')), undefined);
  });
});
