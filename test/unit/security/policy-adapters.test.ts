// The policy layer: registry errors, deny expressions, lists, quotas, and
// external authorization against a real local HTTP server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { JibeError } from '../../../core/errors/errors.ts';
import { PolicyAdapterRegistry } from '../../../proxy/security/policy-adapter.ts';
import { compileExpression, createDenyExpressionAdapter } from '../../../proxy/security/policy-adapter-expression.ts';
import { createExtAuthzAdapter } from '../../../proxy/security/policy-adapter-ext-authz.ts';
import { createListAdapter } from '../../../proxy/security/policy-adapter-lists.ts';
import { createQuotaAdapter } from '../../../proxy/security/policy-adapter-quota.ts';
import { attrs } from './security-fixtures.ts';

test('the registry refuses unknown and duplicate names with typed errors', () => {
  const reg = new PolicyAdapterRegistry([createDenyExpressionAdapter('deny-bots', 'request.headers[user-agent] contains "bot"')]);
  assert.throws(() => reg.register(createDenyExpressionAdapter('deny-bots', 'source.ip == "1.2.3.4"')), (e: unknown) => e instanceof JibeError && e.code === 'JIBE_ERR_PLUGIN_DUPLICATE');
  assert.throws(() => reg.get('nope'), (e: unknown) => e instanceof JibeError && e.code === 'JIBE_ERR_PLUGIN_UNKNOWN' && /deny-bots/.test(e.details.hint ?? ''));
});

test('deny expressions: operators, boolean logic, CIDR lists; syntax errors say where', () => {
  const table: Array<[string, Parameters<typeof attrs>[0], boolean]> = [
    ['request.headers[user-agent] contains "bot"', { headers: { 'user-agent': 'AcmeBot/1' } }, false],
    ['request.headers[user-agent] contains "Bot"', { headers: { 'user-agent': 'AcmeBot/1' } }, true],
    ['request.method == "DELETE" && !(request.path startsWith "/tmp/")', { method: 'DELETE', path: '/etc' }, true],
    ['request.method == "DELETE" && !(request.path startsWith "/tmp/")', { method: 'DELETE', path: '/tmp/x' }, false],
    ['source.ip in ["10.0.0.0/8", "192.168.0.1"] || request.headers[x-debug]', { remoteAddress: '10.2.3.4' }, true],
    ['source.ip in ["10.0.0.0/8"] || request.headers[x-debug]', { remoteAddress: '11.0.0.1', headers: { 'x-debug': '1' } }, true],
    ['request.path matches "/v[0-9]+/admin"', { path: '/v2/admin' }, true],
    ['request.host endsWith ".internal"', { authority: 'db.internal:5432' }, true],
  ];
  for (const [expr, r, deny] of table) assert.equal(compileExpression(expr)(attrs(r)), deny, expr);
  assert.throws(() => compileExpression('request.method == '), /expected a "string" at 18/);
  assert.throws(() => compileExpression('request.bogus == "x"'), /unknown attribute/);
  assert.throws(() => compileExpression('source.ip == "a" "b"'), /unexpected/);
  assert.deepEqual(createDenyExpressionAdapter('d', 'request.method == "PUT"').check(attrs({ method: 'PUT' })), { allow: false, status: 403, body: 'RBAC: access denied' });
});

test('allow and deny lists over an attribute', () => {
  const allow = createListAdapter('ips', { attribute: 'source.ip', mode: 'allow', values: ['10.0.0.0/24'] });
  assert.equal((allow.check(attrs({ remoteAddress: '10.0.0.7' })) as { allow: boolean }).allow, true);
  assert.equal((allow.check(attrs({ remoteAddress: '10.0.1.7' })) as { allow: boolean }).allow, false);
  const deny = createListAdapter('keys', { attribute: 'request.headers[x-api-key]', mode: 'deny', values: ['revoked-*'] });
  assert.equal((deny.check(attrs({ headers: { 'x-api-key': 'revoked-1' } })) as { allow: boolean }).allow, false);
  assert.equal((deny.check(attrs({ headers: { 'x-api-key': 'good' } })) as { allow: boolean }).allow, true);
  assert.equal((deny.check(attrs({})) as { allow: boolean }).allow, true);
});

test('quota: a token bucket per key, refilled by the clock', () => {
  let t = 0;
  const q = createQuotaAdapter('q', { maxTokens: 2, tokensPerFill: 1, fillIntervalMs: 1000, key: 'source.ip', now: () => t });
  const from = (ip: string) => (q.check(attrs({ remoteAddress: ip })) as { allow: boolean; status?: number });
  assert.deepEqual([from('1.1.1.1').allow, from('1.1.1.1').allow, from('1.1.1.1').allow], [true, true, false]);
  assert.equal(from('1.1.1.1').status, 429);
  assert.equal(from('2.2.2.2').allow, true, 'separate bucket per key');
  t = 1000;
  assert.deepEqual([from('1.1.1.1').allow, from('1.1.1.1').allow], [true, false]);
});

test('ext authz: 2xx allows with upstream headers, other statuses deny with status and body, a slow service fails closed', async () => {
  const seen: http.IncomingHttpHeaders[] = [];
  const pending = new Set<http.ServerResponse>();
  const server = http.createServer((req, res) => {
    seen.push(req.headers);
    if (req.url?.startsWith('/check/slow')) {
      pending.add(res);
      return;
    }
    if (req.headers.authorization === 'Bearer good') {
      res.setHeader('x-user', 'alice');
      res.end();
    } else {
      res.statusCode = 401;
      res.setHeader('x-why', 'no creds');
      res.end('denied by ext');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/check`;
    const ext = createExtAuthzAdapter('ext', { url, timeoutMs: 200, headersToUpstream: ['x-user'] });
    assert.deepEqual(await ext.check(attrs({ path: '/a', headers: { authorization: 'Bearer good' } })), { allow: true, headers: [['x-user', 'alice']] });
    assert.equal(seen[0].authorization, 'Bearer good');
    assert.equal(seen[0]['x-forwarded-for'], '10.0.0.9');
    assert.deepEqual(await ext.check(attrs({ path: '/a' })), { allow: false, status: 401, body: 'denied by ext', headers: [['x-why', 'no creds']] });
    assert.deepEqual(await ext.check(attrs({ path: '/slow' })), { allow: false, status: 403, body: 'RBAC: access denied' });
    const open = createExtAuthzAdapter('open', { url, timeoutMs: 200, failOpen: true });
    assert.deepEqual(await open.check(attrs({ path: '/slow' })), { allow: true });
  } finally {
    for (const res of pending) res.end();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
