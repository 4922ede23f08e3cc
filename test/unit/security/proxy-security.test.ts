// End to end through a running proxy: an inbound listener carrying JWT rules
// and authorization policies answers 401 / 403 itself and forwards the rest.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ListenerResource } from '../../../core/model/proxy-config.ts';
import { JibeError } from '../../../core/errors/errors.ts';
import { PolicyAdapterRegistry } from '../../../proxy/security/policy-adapter.ts';
import { createDenyExpressionAdapter } from '../../../proxy/security/policy-adapter-expression.ts';
import { cluster, endpoints, freePort, fullUpdate, listener, request, route, routeConfig, startSidecar, startUpstream, toCluster, vhost } from '../proxy/proxy-test-helpers.ts';
import { jwks, signingKey, signJwt } from './security-fixtures.ts';

test('inbound listener enforces RequestAuthentication and AuthorizationPolicy', async () => {
  const app = await startUpstream('app');
  const key = signingKey('ES256', 'k1');
  const proxy = await startSidecar({ policyAdapters: new PolicyAdapterRegistry([createDenyExpressionAdapter('no-bots', 'request.headers[user-agent] contains "bot"')]) });
  try {
    const port = await freePort();
    const inbound: ListenerResource = {
      ...listener('inbound|9080', 'inbound', port, 'inbound|9080'),
      jwt: [{ name: 'RequestAuthentication/default/jwt#0', issuer: 'https://issuer', audiences: [], fromHeaders: [{ name: 'authorization', prefix: 'Bearer ' }], fromParams: [], forwardOriginalToken: false, jwks: jwks(key) }],
      authz: {
        destinationPort: 9080,
        custom: [{ name: 'AuthorizationPolicy/default/bots', provider: 'no-bots', rules: [{}] }],
        deny: [{ name: 'AuthorizationPolicy/default/no-admin', rules: [{ to: [{ operation: { paths: ['/admin*'] } }] }] }],
        allow: [{ name: 'AuthorizationPolicy/default/need-jwt', rules: [{ from: [{ source: { requestPrincipals: ['*'] } }] }, { to: [{ operation: { paths: ['/public*'] } }] }] }],
        audit: [],
      },
    };
    await proxy.apply(fullUpdate([inbound, routeConfig('inbound|9080', [vhost('inbound', ['*'], [route('default', [], toCluster('inbound|9080||'))])]), cluster('inbound|9080||'), endpoints('inbound|9080||', [app.port])]));

    const token = signJwt(key, { iss: 'https://issuer', sub: 'alice', exp: Math.floor(Date.now() / 1000) + 600 });
    const ok = await request(port, { path: '/data', headers: { authorization: `Bearer ${token}` } });
    assert.equal(ok.status, 200);
    assert.equal(ok.body, 'app GET /data');
    assert.equal(app.requests.at(-1)!.headers.authorization, undefined, 'the token is not forwarded');

    const open = await request(port, { path: '/public/x' });
    assert.equal(open.status, 200);

    const anonymous = await request(port, { path: '/data' });
    assert.deepEqual([anonymous.status, anonymous.body], [403, 'RBAC: access denied']);

    const denied = await request(port, { path: '/admin', headers: { authorization: `Bearer ${token}` } });
    assert.deepEqual([denied.status, denied.body], [403, 'RBAC: access denied']);

    const bad = await request(port, { path: '/data', headers: { authorization: 'Bearer not.a.token' } });
    assert.equal(bad.status, 401);
    assert.match(bad.body, /^Jwt /);
    assert.match(String(bad.headers['www-authenticate']), /^Bearer /);

    const bot = await request(port, { path: '/public', headers: { 'user-agent': 'spambot/1.0' } });
    assert.deepEqual([bot.status, bot.body], [403, 'RBAC: access denied']);
    assert.equal(app.requests.length, 2, 'only allowed requests reached the app');

    // A CUSTOM policy naming an adapter the proxy does not have is refused; the old config keeps serving.
    const broken: ListenerResource = { ...inbound, authz: { ...inbound.authz!, custom: [{ name: 'AuthorizationPolicy/default/x', provider: 'missing', rules: [{}] }] } };
    await assert.rejects(
      proxy.apply(fullUpdate([broken, routeConfig('inbound|9080', [vhost('inbound', ['*'], [route('default', [], toCluster('inbound|9080||'))])]), cluster('inbound|9080||'), endpoints('inbound|9080||', [app.port])])),
      (e: unknown) => e instanceof JibeError && e.code === 'JIBE_ERR_CONFIG_REJECTED' && /provider "missing"/.test(e.message),
    );
    assert.equal((await request(port, { path: '/public' })).status, 200);
  } finally {
    await proxy.close();
    await app.close();
  }
});
