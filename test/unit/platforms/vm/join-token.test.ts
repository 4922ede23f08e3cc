// Join tokens: the string's codec, storage by hash, expiry, uses (atomic under
// concurrency), revocation by token or id, and the Authenticator plugin.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { FileStateStore } from '../../../../core/state/state-store-file.ts';
import { JoinTokenAuthenticator } from '../../../../platforms/vm/authenticator-join-token.ts';
import { decodeJoinToken, encodeJoinToken, joinSecretHash, JOIN_TOKEN_TYPE, newJoinSecret, parseHostPort } from '../../../../platforms/vm/join-token.ts';
import { consumeJoinToken, createJoinToken, JOIN_TOKEN_STORE_PREFIX, listJoinTokens, pruneJoinTokens, revokeJoinToken } from '../../../../platforms/vm/join-token-store.ts';
import type { JoinTokenIssuer } from '../../../../platforms/vm/join-token-store.ts';

const ISSUER: JoinTokenIssuer = {
  trustDomain: 'cluster.local',
  rootSha256: 'ab'.repeat(32),
  controlPlane: 'spiffe://cluster.local/ns/jibe-system/sa/jibe-control-plane',
  addresses: ['192.0.2.10:15015', '[2001:db8::1]:15015'],
};
const T0 = Date.parse('2030-01-01T00:00:00Z');

const joinCode = (fn: () => unknown, re: RegExp) =>
  assert.rejects(async () => fn(), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'JIBE_ERR_JOIN_TOKEN', e.message);
    assert.match(e.message, re);
    return true;
  });

describe('join token string', () => {
  it('round-trips addresses, pin, identity and secret', () => {
    const secret = newJoinSecret();
    const text = encodeJoinToken({ addresses: ISSUER.addresses, rootSha256: ISSUER.rootSha256, controlPlane: ISSUER.controlPlane, identity: 'spiffe://cluster.local/ns/a/sa/b', secret });
    assert.match(text, /^jibe1\.[A-Za-z0-9_-]+$/);
    const back = decodeJoinToken(`  ${text}\n`);
    assert.deepEqual(back.addresses, ISSUER.addresses);
    assert.equal(back.rootSha256, ISSUER.rootSha256);
    assert.equal(back.controlPlane, ISSUER.controlPlane);
    assert.equal(back.identity, 'spiffe://cluster.local/ns/a/sa/b');
    assert.ok(back.secret.equals(secret));
  });

  it('refuses malformed strings with a reason', async () => {
    const good = encodeJoinToken({ ...ISSUER, identity: 'spiffe://cluster.local/ns/a/sa/b', secret: newJoinSecret() });
    await joinCode(() => decodeJoinToken('abc'), /does not start with jibe1\./);
    await joinCode(() => decodeJoinToken('jibe1.abc$'), /base64url/);
    await joinCode(() => decodeJoinToken(good.slice(0, 40)), /truncated/);
    await joinCode(() => decodeJoinToken(good.slice(0, -6)), /truncated or altered|no control plane/);
    const raw = Buffer.from(good.slice(6), 'base64url');
    raw[0] = 9;
    await joinCode(() => decodeJoinToken('jibe1.' + raw.toString('base64url')), /version 9/);
  });

  it('parses host:port and [v6]:port', () => {
    assert.deepEqual(parseHostPort('10.0.0.1:15015'), { host: '10.0.0.1', port: 15015 });
    assert.deepEqual(parseHostPort('[::1]:1'), { host: '::1', port: 1 });
    assert.deepEqual(parseHostPort('cp.example.com:443'), { host: 'cp.example.com', port: 443 });
    assert.equal(parseHostPort('10.0.0.1'), undefined);
    assert.equal(parseHostPort('10.0.0.1:70000'), undefined);
  });
});

describe('join token store', () => {
  let dir: string;
  let state: FileStateStore;
  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jibe-join-'));
    state = await FileStateStore.open(dir);
  });
  afterEach(async () => {
    await state.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('stores only the hash of the secret, as a secret entry', async () => {
    const { token, info } = await createJoinToken(state, ISSUER, { namespace: 'bookinfo', serviceAccount: 'reviews', labels: { version: 'v3' }, uses: 1 }, T0);
    const hash = joinSecretHash(decodeJoinToken(token).secret);
    const entry = await state.get(JOIN_TOKEN_STORE_PREFIX + hash);
    assert.ok(entry);
    assert.equal(info.id, hash.slice(0, 12));
    assert.ok(!JSON.stringify(entry.value).includes(decodeJoinToken(token).secret.toString('base64url')));
    const onDisk = fs.readdirSync(path.join(dir, 'state'), { recursive: true, withFileTypes: true }).filter((d) => d.isFile() && d.name.includes(hash.slice(0, 12)));
    assert.ok(onDisk.length > 0, "the token entry is a file in the state dir");
    for (const f of onDisk) assert.equal(fs.statSync(path.join(f.parentPath, f.name)).mode & 0o777, 0o600);
    assert.deepEqual((await listJoinTokens(state)).map((t) => [t.id, t.namespace, t.serviceAccount, t.usesLeft]), [[info.id, 'bookinfo', 'reviews', 1]]);
  });

  it('grants the identity and labels, once for a single-use token', async () => {
    const { token } = await createJoinToken(state, ISSUER, { namespace: 'bookinfo', serviceAccount: 'reviews', labels: { version: 'v3' }, uses: 1 }, T0);
    const id = await consumeJoinToken(state, token, T0 + 1000);
    assert.equal(id.spiffeId, 'spiffe://cluster.local/ns/bookinfo/sa/reviews');
    assert.deepEqual(id.labels, { version: 'v3' });
    await joinCode(() => consumeJoinToken(state, token, T0 + 2000), /used 1 time\(s\) and allows no more/);
  });

  it('lets exactly N of many concurrent joins through for an N-use token', async () => {
    const { token } = await createJoinToken(state, ISSUER, { namespace: 'default', serviceAccount: 'web', uses: 3 }, T0);
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => consumeJoinToken(state, token, T0)));
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 3);
    assert.equal((await listJoinTokens(state))[0].uses, 3);
  });

  it('refuses an expired token, a revoked one (by token and by id) and one never issued here', async () => {
    const a = await createJoinToken(state, ISSUER, { namespace: 'default', serviceAccount: 'a', ttlMs: 60_000 }, T0);
    await joinCode(() => consumeJoinToken(state, a.token, T0 + 60_000), /expired at 2030-01-01T00:01:00.000Z/);
    const b = await createJoinToken(state, ISSUER, { namespace: 'default', serviceAccount: 'b' }, T0);
    assert.equal((await revokeJoinToken(state, b.token, T0))?.id, b.info.id);
    await joinCode(() => consumeJoinToken(state, b.token, T0), /revoked at/);
    const c = await createJoinToken(state, ISSUER, { namespace: 'default', serviceAccount: 'c' }, T0);
    assert.ok(await revokeJoinToken(state, c.info.id, T0));
    await joinCode(() => consumeJoinToken(state, c.token, T0), /revoked/);
    assert.equal(await revokeJoinToken(state, 'ffffffffffff', T0), undefined);
    const stranger = encodeJoinToken({ ...ISSUER, identity: 'spiffe://cluster.local/ns/a/sa/b', secret: newJoinSecret() });
    await joinCode(() => consumeJoinToken(state, stranger, T0), /does not know it/);
  });

  it('validates what it is asked to create', async () => {
    await assert.rejects(createJoinToken(state, ISSUER, { namespace: 'Bad NS', serviceAccount: 'x' }), /namespace/);
    await assert.rejects(createJoinToken(state, ISSUER, { namespace: 'a', serviceAccount: 'x', ttlMs: 0 }), /1 s to 30 days/);
    await assert.rejects(createJoinToken(state, ISSUER, { namespace: 'a', serviceAccount: 'x', uses: 0 }), /uses/);
    await assert.rejects(createJoinToken(state, ISSUER, { namespace: 'a', serviceAccount: 'x', labels: { 'bad key!': 'v' } }), /label/);
  });

  it('prunes tokens a day after they expire', async () => {
    await createJoinToken(state, ISSUER, { namespace: 'default', serviceAccount: 'a', ttlMs: 1000 }, T0);
    assert.equal(await pruneJoinTokens(state, T0 + 2000), 0);
    assert.equal(await pruneJoinTokens(state, T0 + 1000 + 24 * 3600_000), 1);
    assert.deepEqual(await listJoinTokens(state), []);
  });

  it('the authenticator ignores other credential types and consumes join tokens', async () => {
    const auth = new JoinTokenAuthenticator(state, { now: () => T0 });
    const { token } = await createJoinToken(state, ISSUER, { namespace: 'default', serviceAccount: 'web', uses: 1 }, T0);
    assert.equal(await auth.authenticate({ type: 'bootstrap-token', token }), undefined);
    assert.equal((await auth.authenticate({ type: JOIN_TOKEN_TYPE, token }))?.serviceAccount, 'web');
    await joinCode(() => auth.authenticate({ type: JOIN_TOKEN_TYPE, token }), /allows no more/);
  });
});
