// JWT verification by hand-signed tokens: algorithms, claims checks, key
// lookup, token locations, header stripping, and JWKS served over HTTP.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { CompiledJwtRule } from '../../../core/model/proxy-config.ts';
import { JwksCache } from '../../../proxy/security/jwks-cache.ts';
import { JwtAuthenticator } from '../../../proxy/security/jwt-authenticator.ts';
import { attrs, jwks, signingKey, signJwt } from './security-fixtures.ts';

const NOW = 1_700_000_000;
const ISS = 'https://issuer.example';
const rule = (extra: Partial<CompiledJwtRule> = {}): CompiledJwtRule => ({
  name: 'RequestAuthentication/default/jwt#0',
  issuer: ISS,
  audiences: ['bookstore'],
  fromHeaders: [{ name: 'authorization', prefix: 'Bearer ' }],
  fromParams: ['access_token'],
  forwardOriginalToken: false,
  ...extra,
});
const claims = (extra: Record<string, unknown> = {}) => ({ iss: ISS, sub: 'alice', aud: 'bookstore', exp: NOW + 600, nbf: NOW - 10, ...extra });

test('every supported algorithm verifies; expiry, audience, issuer, signature and kid are enforced', async () => {
  const keys = (['RS256', 'PS256', 'ES256', 'ES384', 'EdDSA'] as const).map((alg, i) => signingKey(alg, `k${i}`));
  const auth = new JwtAuthenticator([rule({ jwks: jwks(...keys) })], new JwksCache(), () => NOW);
  for (const k of keys) {
    const a = attrs({ headers: { authorization: `Bearer ${signJwt(k, claims({ groups: ['x'] }))}` } });
    assert.equal(await auth.authenticate(a), undefined, k.alg);
    assert.equal(a.requestPrincipal, `${ISS}/alice`);
    assert.deepEqual(a.claims?.groups, ['x']);
    assert.equal(a.ex.header('authorization'), undefined, 'forwardOriginalToken false strips the header');
  }
  const k = keys[0];
  const other = signingKey('RS256', 'k0');
  const refused: Array<[string, string]> = [
    [signJwt(k, claims({ exp: NOW - 61 })), 'Jwt is expired'],
    [signJwt(k, claims({ nbf: NOW + 61 })), 'Jwt not yet valid'],
    [signJwt(k, claims({ aud: ['other'] })), 'Audiences in Jwt are not allowed'],
    [signJwt(k, claims({ iss: 'https://evil' })), 'Jwt issuer is not configured'],
    [signJwt(other, claims()), 'Jwt verification fails'],
    [signJwt(k, claims(), { kid: 'unknown' }), "Jwks doesn't have key to match kid or alg from Jwt"],
    [signJwt(k, claims(), { alg: 'none' }), 'Jwt algorithm none is not supported'],
    ['abc.def', 'Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections'],
  ];
  for (const [token, reason] of refused) assert.equal(await auth.authenticate(attrs({ headers: { authorization: `Bearer ${token}` } })), reason);
  // Within the 60 s skew is still valid.
  assert.equal(await auth.authenticate(attrs({ headers: { authorization: `Bearer ${signJwt(k, claims({ exp: NOW - 59 }))}` } })), undefined);
  // No token: passes without a principal (authorization decides).
  const none = attrs({});
  assert.equal(await auth.authenticate(none), undefined);
  assert.equal(none.requestPrincipal, '');
});

test('fromHeaders with a prefix, query parameters, forwardOriginalToken and claim output headers', async () => {
  const k = signingKey('ES256', 'e1');
  const token = signJwt(k, claims({ tenant: 'acme' }));
  const custom = new JwtAuthenticator([rule({ jwks: jwks(k), fromHeaders: [{ name: 'x-jwt', prefix: 'Token ' }], fromParams: [], forwardOriginalToken: true, outputClaimToHeaders: [{ header: 'x-tenant', claim: 'tenant' }] })], new JwksCache(), () => NOW);
  const a = attrs({ headers: { 'x-jwt': `Token ${token}` } });
  assert.equal(await custom.authenticate(a), undefined);
  assert.equal(a.ex.header('x-jwt'), `Token ${token}`, 'kept when forwardOriginalToken is true');
  assert.equal(a.ex.header('x-tenant'), 'acme');
  assert.equal(a.requestPrincipal, `${ISS}/alice`);
  const q = attrs({ query: { access_token: token } });
  assert.equal(await new JwtAuthenticator([rule({ jwks: jwks(k) })], new JwksCache(), () => NOW).authenticate(q), undefined);
  assert.equal(q.requestPrincipal, `${ISS}/alice`);
});

test('jwksUri is fetched over HTTP, cached, and refetched when a token names a new key', async () => {
  const k1 = signingKey('RS256', 'r1');
  const k2 = signingKey('RS256', 'r2');
  let served = jwks(k1);
  let fetches = 0;
  const server = http.createServer((_req, res) => {
    fetches++;
    res.setHeader('content-type', 'application/json');
    res.end(served);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    let clock = 0;
    const cache = new JwksCache({ now: () => clock, minRefetchMs: 1000 });
    const uri = `http://127.0.0.1:${(server.address() as AddressInfo).port}/keys`;
    const auth = new JwtAuthenticator([rule({ jwksUri: uri })], cache, () => NOW);
    const bearer = (k: typeof k1) => attrs({ headers: { authorization: `Bearer ${signJwt(k, claims())}` } });
    assert.equal(await auth.authenticate(bearer(k1)), undefined);
    assert.equal(await auth.authenticate(bearer(k1)), undefined);
    assert.equal(fetches, 1, 'cached');
    served = jwks(k1, k2);
    clock = 5000;
    assert.equal(await auth.authenticate(bearer(k2)), undefined, 'rotated key found by refetch');
    assert.equal(fetches, 2);
    const unreachable = new JwtAuthenticator([rule({ jwksUri: 'http://127.0.0.1:1/keys', timeoutMs: 500 })], new JwksCache(), () => NOW);
    assert.equal(await unreachable.authenticate(bearer(k1)), 'Jwks remote fetch is failed');
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

test('fromCookies: the token is found in any Cookie field (HTTP/2 clients send one field per cookie), quoted or not', async () => {
  const k = signingKey('ES256', 'c1');
  const token = signJwt(k, claims());
  const auth = new JwtAuthenticator([rule({ jwks: jwks(k), fromHeaders: [], fromParams: [], fromCookies: ['session'] })], new JwksCache(), () => NOW);
  // Two fields; Exchange.header joins them with ', '.
  const split = attrs({ headers: { cookie: 'theme=dark', Cookie: `session=${token}` } });
  assert.equal(await auth.authenticate(split), undefined);
  assert.equal(split.requestPrincipal, `${ISS}/alice`);
  const quoted = attrs({ headers: { cookie: `a=1; session="${token}"` } });
  assert.equal(await auth.authenticate(quoted), undefined);
  assert.equal(quoted.requestPrincipal, `${ISS}/alice`);
});

test('several rules reading one location: a token is checked by the rule of its issuer; a rule reading elsewhere does not take it', async () => {
  const k1 = signingKey('ES256', 'm1');
  const k2 = signingKey('ES256', 'm2');
  const OTHER = 'https://other.example';
  const auth = new JwtAuthenticator(
    [rule({ jwks: jwks(k1) }), rule({ name: 'RequestAuthentication/default/jwt#1', issuer: OTHER, jwks: jwks(k2) }), rule({ name: 'RequestAuthentication/default/jwt#2', issuer: 'https://param-only.example', fromHeaders: [], jwks: jwks(k2) })],
    new JwksCache(),
    () => NOW,
  );
  const a = attrs({ headers: { authorization: `Bearer ${signJwt(k2, claims({ iss: OTHER }))}` } });
  assert.equal(await auth.authenticate(a), undefined);
  assert.equal(a.requestPrincipal, `${OTHER}/alice`);
  const elsewhere = attrs({ headers: { authorization: `Bearer ${signJwt(k2, claims({ iss: 'https://param-only.example' }))}` } });
  assert.equal(await auth.authenticate(elsewhere), 'Jwt issuer is not configured');
});
