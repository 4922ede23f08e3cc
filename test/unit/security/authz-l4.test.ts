// AuthorizationPolicy on TCP connections (Istio's L4 view): only L4
// attributes exist; ALLOW rules with HTTP-only fields are dropped, DENY and
// AUDIT rules ignore their HTTP-only parts; CUSTOM is not evaluated.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import type { CompiledAuthorization, CompiledAuthzPolicy, ListenerResource } from '../../../core/model/proxy-config.ts';
import { compileAuthzL4, evaluateAuthz, matchingAudit } from '../../../proxy/security/authz-evaluator.ts';
import { ConnectionAttributes, authorizeConnection } from '../../../proxy/security/authz-connection.ts';
import { ProxyStats } from '../../../proxy/stats/proxy-stats.ts';

const SLEEP = 'spiffe://cluster.local/ns/default/sa/sleep';
const FOO = 'spiffe://cluster.local/ns/foo/sa/bar';
const policy = (name: string, rules: CompiledAuthzPolicy['rules'], provider?: string): CompiledAuthzPolicy => ({ name: `AuthorizationPolicy/default/${name}`, rules, ...(provider ? { provider } : {}) });
const authz = (parts: Partial<CompiledAuthorization>): CompiledAuthorization => ({ destinationPort: 9000, custom: [], deny: [], allow: [], audit: [], ...parts });

interface Conn {
  ip?: string;
  peer?: string;
  local?: string;
  sni?: string;
}

function socketOf(c: Conn): Socket {
  return { remoteAddress: c.ip ?? '10.0.0.1', localAddress: c.local ?? '10.0.0.9', ...(c.sni ? { servername: c.sni } : {}) } as unknown as Socket;
}

function decide(c: CompiledAuthorization, conn: Conn): string {
  const d = evaluateAuthz(compileAuthzL4(c), new ConnectionAttributes(socketOf(conn), conn.peer, c.destinationPort));
  return `${d.allowed ? 'allow' : 'deny'}:${d.policy ?? '-'}`;
}

test('L4 fields and conditions: principals, namespaces, ipBlocks, ports, source/destination keys, SNI', () => {
  const c = authz({
    allow: [
      policy('by-principal', [{ from: [{ source: { principals: ['cluster.local/ns/default/sa/sleep'] } }], to: [{ operation: { ports: ['9000'] } }] }]),
      policy('by-ns', [{ from: [{ source: { namespaces: ['foo'], notIpBlocks: ['10.9.0.0/16'] } }], when: [{ key: 'destination.port', values: ['9000'] }] }]),
      policy('by-ip', [{ from: [{ source: { ipBlocks: ['192.168.0.0/16'] } }], when: [{ key: 'destination.ip', values: ['10.0.0.9'] }] }]),
      policy('by-sni', [{ when: [{ key: 'connection.sni', values: ['outbound_.9000_._.db.default.svc.cluster.local'] }] }]),
    ],
  });
  const cases: Array<[Conn, string]> = [
    [{ peer: SLEEP }, 'allow:AuthorizationPolicy/default/by-principal'],
    [{}, 'deny:-'],
    [{ peer: FOO }, 'allow:AuthorizationPolicy/default/by-ns'],
    [{ peer: FOO, ip: '10.9.1.1' }, 'deny:-'],
    [{ ip: '::ffff:192.168.3.4' }, 'allow:AuthorizationPolicy/default/by-ip'],
    [{ ip: '192.168.3.4', local: '10.0.0.8' }, 'deny:-'],
    [{ sni: 'outbound_.9000_._.db.default.svc.cluster.local' }, 'allow:AuthorizationPolicy/default/by-sni'],
  ];
  for (const [conn, want] of cases) assert.equal(decide(c, conn), want, JSON.stringify(conn));
});

test('ALLOW rules using HTTP-only fields never match on TCP (Istio drops them), other rules of the policy still do', () => {
  const httpOnly: CompiledAuthzPolicy['rules'] = [
    { from: [{ source: { principals: ['*'] } }], to: [{ operation: { methods: ['GET'] } }] },
    { to: [{ operation: { paths: ['/x'], ports: ['9000'] } }] },
    { to: [{ operation: { hosts: ['db'] } }] },
    { from: [{ source: { requestPrincipals: ['*'] } }] },
    { from: [{ source: { notRequestPrincipals: ['x/y'] } }] },
    { when: [{ key: 'request.headers[x-user]', values: ['a'] }] },
    { when: [{ key: 'request.auth.claims[groups]', values: ['admin'] }] },
  ];
  for (const rule of httpOnly) assert.equal(decide(authz({ allow: [policy('http', [rule])] }), { peer: SLEEP }), 'deny:-', JSON.stringify(rule));
  const mixed = authz({ allow: [policy('mixed', [httpOnly[0], { from: [{ source: { principals: ['cluster.local/ns/default/sa/sleep'] } }] }])] });
  assert.equal(decide(mixed, { peer: SLEEP }), 'allow:AuthorizationPolicy/default/mixed');
  assert.equal(decide(mixed, { peer: FOO }), 'deny:-');
});

test('DENY rules ignore their HTTP-only parts on TCP and so match more broadly', () => {
  const methodsOnly = authz({ deny: [policy('no-get', [{ to: [{ operation: { methods: ['GET'] } }] }])] });
  assert.equal(decide(methodsOnly, { peer: SLEEP }), 'deny:AuthorizationPolicy/default/no-get');
  assert.equal(decide(methodsOnly, {}), 'deny:AuthorizationPolicy/default/no-get');
  // The L4 part still narrows the rule: only `foo` is denied, whatever the path.
  const scoped = authz({ deny: [policy('foo-admin', [{ from: [{ source: { namespaces: ['foo'] } }], to: [{ operation: { paths: ['/admin'] } }], when: [{ key: 'request.headers[x]', values: ['1'] }] }])] });
  assert.equal(decide(scoped, { peer: FOO }), 'deny:AuthorizationPolicy/default/foo-admin');
  assert.equal(decide(scoped, { peer: SLEEP }), 'allow:-');
  // AUDIT follows DENY's reading.
  const audit = compileAuthzL4(authz({ audit: [policy('audit-get', [{ to: [{ operation: { methods: ['GET'] } }] }])] }));
  assert.equal(matchingAudit(audit, new ConnectionAttributes(socketOf({}), undefined, 9000)), 'AuthorizationPolicy/default/audit-get');
});

test('an ALLOW policy whose every rule is HTTP-only denies all TCP; DENY by ipBlocks', () => {
  assert.equal(decide(authz({ allow: [policy('paths', [{ to: [{ operation: { paths: ['/'] } }] }])] }), { peer: SLEEP }), 'deny:-');
  const byIp = authz({ deny: [policy('block', [{ from: [{ source: { ipBlocks: ['10.0.0.0/24'] } }] }])] });
  assert.equal(decide(byIp, { ip: '10.0.0.7' }), 'deny:AuthorizationPolicy/default/block');
  assert.equal(decide(byIp, { ip: '10.0.1.7' }), 'allow:-');
});

test('authorizeConnection: CUSTOM is skipped with a warning, counters and records per decision, bad rules refuse', () => {
  const warnings: unknown[] = [];
  const infos: unknown[] = [];
  const logger = { info: (o: object, m?: string) => infos.push([o, m]), warn: (o: object, m?: string) => warnings.push([o, m]), error: () => {}, debug: () => {} } as never;
  const stats = new ProxyStats();
  const listener = (a: CompiledAuthorization): ListenerResource => ({ type: 'listener', name: 'inbound|9000', direction: 'inbound', address: '0.0.0.0', port: 15000, protocol: 'tcp', authz: a });
  const r = listener(authz({ custom: [policy('ext', [{}], 'opa')], allow: [policy('sleep', [{ from: [{ source: { principals: ['cluster.local/ns/default/sa/sleep'] } }] }])] }));
  assert.deepEqual(authorizeConnection(r, socketOf({}), SLEEP, stats, logger), { policy: 'AuthorizationPolicy/default/sleep', result: 'allowed' });
  assert.deepEqual(authorizeConnection(r, socketOf({}), FOO, stats, logger), { policy: undefined, result: 'denied' });
  assert.equal(warnings.length, 1, 'CUSTOM warned once per listener config');
  assert.equal(stats.tcp_rbac_allowed, 1);
  assert.equal(stats.tcp_rbac_denied, 1);
  assert.ok(infos.some((l) => (l as [Record<string, unknown>, string])[1] === 'rbac connection denied'));
  const none: ListenerResource = { type: 'listener', name: 'inbound|9001', direction: 'inbound', address: '0.0.0.0', port: 15000, protocol: 'tcp' };
  assert.equal(authorizeConnection(none, socketOf({}), undefined, stats, logger), undefined);
  const bad = listener(authz({ deny: [policy('bad', [{ from: [{ source: { ipBlocks: ['10.0.0.0/99'] } }] }])] }));
  assert.deepEqual(authorizeConnection(bad, socketOf({}), SLEEP, stats, logger), { policy: undefined, result: 'denied' });
});
