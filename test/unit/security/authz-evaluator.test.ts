// AuthorizationPolicy semantics, table-driven, on Istio's documented examples.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { CompiledAuthorization, CompiledAuthzPolicy } from '../../../core/model/proxy-config.ts';
import { compileAuthz, evaluateAuthz, matchingAudit, matchingCustom } from '../../../proxy/security/authz-evaluator.ts';
import { attrs } from './security-fixtures.ts';
import type { FakeRequest } from './security-fixtures.ts';


const SLEEP = 'spiffe://cluster.local/ns/default/sa/sleep';
const FOO = 'spiffe://cluster.local/ns/foo/sa/bar';
const policy = (name: string, rules: CompiledAuthzPolicy['rules'], provider?: string): CompiledAuthzPolicy => ({ name: `AuthorizationPolicy/default/${name}`, rules, ...(provider ? { provider } : {}) });
const authz = (parts: Partial<CompiledAuthorization>): CompiledAuthorization => ({ destinationPort: 8080, custom: [], deny: [], allow: [], audit: [], ...parts });

function decide(c: CompiledAuthorization, r: FakeRequest): string {
  const d = evaluateAuthz(compileAuthz(c), attrs(r));
  return `${d.allowed ? 'allow' : 'deny'}:${d.policy ?? '-'}`;
}

test('a rule matches when every part it sets matches; fields are OR within, AND across', () => {
  const c = authz({
    allow: [
      policy('httpbin', [
        {
          from: [{ source: { principals: ['cluster.local/ns/default/sa/sleep'] } }, { source: { namespaces: ['test'] } }],
          to: [{ operation: { methods: ['GET'], paths: ['/info*'] } }, { operation: { methods: ['POST'], paths: ['/data'] } }],
          when: [{ key: 'request.auth.claims[iss]', values: ['https://accounts.google.com'] }],
        },
      ]),
    ],
  });
  const claims = { authorization: '' };
  const cases: Array<[FakeRequest, string, string]> = [
    [{ principal: SLEEP, path: '/info/x' }, 'deny:-', 'when: claim missing'],
    [{ principal: FOO, path: '/info' }, 'deny:-', 'wrong principal and namespace'],
  ];
  for (const [r, want, why] of cases) assert.equal(decide(c, { ...r, headers: claims }), want, why);
  const engine = compileAuthz(c);
  const ok = attrs({ principal: SLEEP, path: '/info/x' });
  ok.claims = { iss: 'https://accounts.google.com' };
  assert.deepEqual(evaluateAuthz(engine, ok), { allowed: true, policy: 'AuthorizationPolicy/default/httpbin' });
  const post = attrs({ principal: SLEEP, method: 'POST', path: '/data' });
  post.claims = { iss: 'https://accounts.google.com' };
  assert.equal(evaluateAuthz(engine, post).allowed, true);
  const wrongPath = attrs({ principal: SLEEP, method: 'POST', path: '/info' });
  wrongPath.claims = { iss: 'https://accounts.google.com' };
  assert.equal(evaluateAuthz(engine, wrongPath).allowed, false);
});

test('DENY beats ALLOW; no ALLOW policy means allow; an ALLOW policy with no rules allows nothing', () => {
  const denyFoo = policy('deny-foo', [{ from: [{ source: { namespaces: ['foo'] } }] }]);
  const allowAll = policy('allow-all', [{}]);
  const allowNothing = policy('allow-nothing', []);
  const table: Array<[Partial<CompiledAuthorization>, FakeRequest, string]> = [
    [{}, {}, 'allow:-'],
    [{ deny: [denyFoo] }, { principal: FOO }, 'deny:AuthorizationPolicy/default/deny-foo'],
    [{ deny: [denyFoo] }, { principal: SLEEP }, 'allow:-'],
    [{ deny: [denyFoo], allow: [allowAll] }, { principal: FOO }, 'deny:AuthorizationPolicy/default/deny-foo'],
    [{ deny: [denyFoo], allow: [allowAll] }, { principal: SLEEP }, 'allow:AuthorizationPolicy/default/allow-all'],
    [{ allow: [allowNothing] }, { principal: SLEEP }, 'deny:-'],
    [{ deny: [policy('deny-nothing', [])] }, {}, 'allow:-'],
  ];
  for (const [c, r, want] of table) assert.equal(decide(authz(c), r), want, JSON.stringify(c));
});

test('not-forms, plaintext peers, and Istio string patterns', () => {
  const table: Array<[CompiledAuthzPolicy['rules'][number], FakeRequest, boolean]> = [
    [{ from: [{ source: { notNamespaces: ['foo'] } }] }, { principal: FOO }, false],
    [{ from: [{ source: { notNamespaces: ['foo'] } }] }, {}, true],
    [{ from: [{ source: { principals: ['*'] } }] }, {}, false],
    [{ from: [{ source: { notPrincipals: ['*'] } }] }, {}, true],
    [{ from: [{ source: { principals: ['cluster.local/ns/default/*'] } }] }, { principal: SLEEP }, true],
    [{ from: [{ source: { principals: ['*/sa/sleep'] } }] }, { principal: SLEEP }, true],
    [{ from: [{ source: { ipBlocks: ['10.0.0.0/16'] } }] }, { remoteAddress: '::ffff:10.0.3.4' }, true],
    [{ from: [{ source: { ipBlocks: ['10.0.0.0/16'] } }] }, { remoteAddress: '10.1.0.1' }, false],
    [{ from: [{ source: { notIpBlocks: ['2001:db8::/32'] } }] }, { remoteAddress: '2001:db8::1' }, false],
    [{ to: [{ operation: { hosts: ['*.example.com'] } }] }, { authority: 'API.Example.com:8443' }, true],
    [{ to: [{ operation: { hosts: ['svc.default'] } }] }, { authority: 'svc.default:8080' }, true],
    [{ to: [{ operation: { ports: ['8080'] } }] }, {}, true],
    [{ to: [{ operation: { notPorts: ['8080'] } }] }, {}, false],
    [{ to: [{ operation: { notMethods: ['DELETE'] } }] }, { method: 'DELETE' }, false],
    [{ to: [{ operation: { paths: ['*/healthz'] } }] }, { path: '/a/healthz' }, true],
    [{ to: [{ operation: { paths: ['/api/{*}/items/{**}'] } }] }, { path: '/api/v1/items/a/b' }, true],
    [{ to: [{ operation: { paths: ['/api/{*}/items'] } }] }, { path: '/api/v1/v2/items' }, false],
    [{ when: [{ key: 'request.headers[x-token]', values: ['admin*'] }] }, { headers: { 'X-Token': 'admin-1' } }, true],
    [{ when: [{ key: 'request.headers[x-token]', notValues: ['*'] }] }, {}, true],
    [{ when: [{ key: 'source.ip', values: ['10.0.0.9'] }] }, {}, true],
    [{ when: [{ key: 'destination.port', values: ['9090'] }] }, {}, false],
    [{ when: [{ key: 'source.namespace', values: ['default'] }, { key: 'source.principal', values: ['*sleep'] }] }, { principal: SLEEP }, true],
  ];
  table.forEach(([rule, r, want], i) => {
    assert.equal(decide(authz({ allow: [policy('p', [rule])] }), r), want ? 'allow:AuthorizationPolicy/default/p' : 'deny:-', `case ${i}: ${JSON.stringify(rule)}`);
  });
});

test('claims conditions match any value of a list claim and nested claims; request principal is iss/sub', () => {
  const engine = compileAuthz(
    authz({
      allow: [
        policy('groups', [{ when: [{ key: 'request.auth.claims[groups]', values: ['admins'] }, { key: 'request.auth.claims[realm][role]', values: ['ops'] }] }]),
        policy('rp', [{ from: [{ source: { requestPrincipals: ['https://issuer/*'] } }] }]),
      ],
    }),
  );
  const a = attrs({});
  a.claims = { groups: ['dev', 'admins'], realm: { role: 'ops' } };
  assert.deepEqual(evaluateAuthz(engine, a), { allowed: true, policy: 'AuthorizationPolicy/default/groups' });
  const b = attrs({});
  b.requestPrincipal = 'https://issuer/alice';
  assert.deepEqual(evaluateAuthz(engine, b), { allowed: true, policy: 'AuthorizationPolicy/default/rp' });
  assert.equal(evaluateAuthz(engine, attrs({})).allowed, false);
});

test('CUSTOM and AUDIT policies are found by their rules', () => {
  const engine = compileAuthz(authz({ custom: [policy('ext', [{ to: [{ operation: { paths: ['/admin*'] } }] }], 'ext-authz')], audit: [policy('audit', [{ to: [{ operation: { methods: ['DELETE'] } }] }])] }));
  assert.equal(matchingCustom(engine, attrs({ path: '/admin/x' }))?.provider, 'ext-authz');
  assert.equal(matchingCustom(engine, attrs({ path: '/public' })), undefined);
  assert.equal(matchingAudit(engine, attrs({ method: 'DELETE' })), 'AuthorizationPolicy/default/audit');
});

test('a policy that cannot be compiled names itself', () => {
  assert.throws(() => compileAuthz(authz({ deny: [policy('bad', [{ from: [{ source: { ipBlocks: ['10.0.0.0/40'] } }] }])] })), /AuthorizationPolicy\/default\/bad rules\[0\]: invalid IP block/);
  assert.throws(() => compileAuthz(authz({ deny: [policy('bad', [{ when: [{ key: 'request.nope', values: ['x'] }] }])] })), /unknown condition key/);
});
