import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { Authenticator } from '../../../core/ca/authenticator.ts';
import {
  BOOTSTRAP_TOKEN_PREFIX,
  BOOTSTRAP_TOKEN_TYPE,
  BootstrapTokenAuthenticator,
  createBootstrapToken,
  pruneBootstrapTokens,
  revokeBootstrapToken,
} from '../../../core/ca/authenticator-bootstrap-token.ts';
import { CertificateAuthority } from '../../../core/ca/certificate-authority.ts';
import { CsrSigningService } from '../../../core/ca/csr-signing-service.ts';
import { isJibeError } from '../../../core/errors/errors.ts';
import { generateKeyAndCsr } from '../../../proxy/identity/workload-key.ts';
import { issuedBy, openStore, RATINGS, REVIEWS, TRUST_DOMAIN } from './ca-fixtures.ts';

const HOUR = 3600_000;
const reviews = { spiffeId: REVIEWS, namespace: 'default', serviceAccount: 'reviews' };

describe('bootstrap tokens', () => {
  it('a valid token proves the identity it was created for; unknown, malformed and other-type credentials prove none', async () => {
    const { store } = await openStore();
    const token = await createBootstrapToken(store, reviews, HOUR);
    assert.match(token, /^[A-Za-z0-9_-]{43}$/, '32 random bytes, base64url');
    const auth = new BootstrapTokenAuthenticator(store);
    assert.equal(auth.name, 'bootstrap-token');
    assert.deepEqual(await auth.authenticate({ type: BOOTSTRAP_TOKEN_TYPE, token }), reviews);
    assert.deepEqual(await auth.authenticate({ type: BOOTSTRAP_TOKEN_TYPE, token }), reviews, 'usable again until it expires (certificate renewal)');

    const unknown = Buffer.alloc(32, 7).toString('base64url');
    assert.equal(await auth.authenticate({ type: BOOTSTRAP_TOKEN_TYPE, token: unknown }), undefined);
    assert.equal(await auth.authenticate({ type: BOOTSTRAP_TOKEN_TYPE, token: token.slice(1) }), undefined);
    assert.equal(await auth.authenticate({ type: BOOTSTRAP_TOKEN_TYPE, token: '' }), undefined);
    assert.equal(await auth.authenticate({ type: 'kubernetes-sa-token', token }), undefined);
  });

  it('an expired token proves nothing, and pruning removes it', async () => {
    const { store } = await openStore();
    let now = Date.now();
    const token = await createBootstrapToken(store, reviews, HOUR, now);
    const keep = await createBootstrapToken(store, reviews, 3 * HOUR, now);
    const auth = new BootstrapTokenAuthenticator(store, { now: () => now });
    now += HOUR - 1;
    assert.deepEqual(await auth.authenticate({ type: BOOTSTRAP_TOKEN_TYPE, token }), reviews);
    now += 1;
    assert.equal(await auth.authenticate({ type: BOOTSTRAP_TOKEN_TYPE, token }), undefined);
    assert.equal(await pruneBootstrapTokens(store, now), 1);
    assert.equal((await store.list(BOOTSTRAP_TOKEN_PREFIX)).length, 1);
    assert.deepEqual(await auth.authenticate({ type: BOOTSTRAP_TOKEN_TYPE, token: keep }), reviews);
  });

  it('stores only the SHA-256 of the token, owner-only', async () => {
    const { store, dataDir } = await openStore();
    const token = await createBootstrapToken(store, reviews, HOUR);
    const hash = createHash('sha256').update(token).digest('hex');
    const [entry] = await store.list(BOOTSTRAP_TOKEN_PREFIX);
    assert.equal(entry.key, BOOTSTRAP_TOKEN_PREFIX + hash);
    const stateDir = join(dataDir, 'state');
    for (const name of await readdir(stateDir)) {
      if (!name.endsWith('.json')) continue;
      assert.ok(!(await readFile(join(stateDir, name), 'utf8')).includes(token), `${name} must not hold the token`);
      assert.equal((await stat(join(stateDir, name))).mode & 0o777, 0o600);
    }
  });

  it('revocation takes effect at once', async () => {
    const { store } = await openStore();
    const token = await createBootstrapToken(store, reviews, HOUR);
    assert.equal(await revokeBootstrapToken(store, token), true);
    assert.equal(await new BootstrapTokenAuthenticator(store).authenticate({ type: BOOTSTRAP_TOKEN_TYPE, token }), undefined);
    assert.equal(await revokeBootstrapToken(store, token), false);
  });

  it('refuses to create a token for an identity whose parts disagree, or without a lifetime', async () => {
    const { store } = await openStore();
    const bad = [
      { ...reviews, serviceAccount: 'ratings' },
      { ...reviews, spiffeId: 'spiffe://cluster.local/reviews' },
      { ...reviews, spiffeId: 'not a spiffe id' },
    ];
    for (const identity of bad) await assert.rejects(createBootstrapToken(store, identity, HOUR), (err: unknown) => isJibeError(err) && err.code === 'JIBE_ERR_BAD_REQUEST');
    await assert.rejects(createBootstrapToken(store, reviews, 0), (err: unknown) => isJibeError(err) && err.code === 'JIBE_ERR_BAD_REQUEST');
  });
});

describe('CsrSigningService', async () => {
  const { store } = await openStore();
  const ca = await CertificateAuthority.open(store, { trustDomain: TRUST_DOMAIN });
  const service = new CsrSigningService({ ca, authenticators: [new BootstrapTokenAuthenticator(store)] });
  const token = await createBootstrapToken(store, reviews, HOUR);

  it('signs the CSR for exactly the identity the credential proves, and hands out the trust bundle', async () => {
    const { csrPem } = await generateKeyAndCsr(REVIEWS);
    const signed = await service.signWithCredential({ type: BOOTSTRAP_TOKEN_TYPE, token }, csrPem);
    assert.deepEqual(signed.identity, reviews);
    assert.deepEqual(signed.trustBundle, ca.trustBundle());
    const leaf = new X509Certificate(signed.certChainPem);
    assert.equal(leaf.subjectAltName, `URI:${REVIEWS}`);
    assert.ok(issuedBy(leaf, ca.trustBundle()[0]));
  });

  it('refuses an unknown credential with JIBE_ERR_UNAUTHENTICATED', async () => {
    const { csrPem } = await generateKeyAndCsr(REVIEWS);
    await assert.rejects(
      service.signWithCredential({ type: BOOTSTRAP_TOKEN_TYPE, token: Buffer.alloc(32).toString('base64url') }, csrPem),
      (err: unknown) => isJibeError(err) && err.code === 'JIBE_ERR_UNAUTHENTICATED' && !err.message.includes('AAAA'),
    );
    await assert.rejects(service.signWithCredential({ type: 'unknown', token: 'x' }, csrPem), (err: unknown) => isJibeError(err) && err.code === 'JIBE_ERR_UNAUTHENTICATED');
  });

  it('refuses a CSR for another identity than the one the credential proves', async () => {
    const { csrPem } = await generateKeyAndCsr(RATINGS);
    await assert.rejects(service.signWithCredential({ type: BOOTSTRAP_TOKEN_TYPE, token }, csrPem), (err: unknown) => isJibeError(err) && err.code === 'JIBE_ERR_CSR_REJECTED');
  });

  it('asks authenticators in order and propagates one that cannot decide', async () => {
    const calls: string[] = [];
    const never: Authenticator = { name: 'never', authenticate: async () => (calls.push('never'), undefined) };
    const broken: Authenticator = { name: 'broken', authenticate: async () => { calls.push('broken'); throw new Error('TokenReview unreachable'); } };
    const { csrPem } = await generateKeyAndCsr(REVIEWS);
    const ok = new CsrSigningService({ ca, authenticators: [never, new BootstrapTokenAuthenticator(store), broken] });
    assert.ok(await ok.signWithCredential({ type: BOOTSTRAP_TOKEN_TYPE, token }, csrPem));
    assert.deepEqual(calls, ['never'], 'stops at the first authenticator that proves an identity');
    const failing = new CsrSigningService({ ca, authenticators: [broken] });
    await assert.rejects(failing.signWithCredential({ type: BOOTSTRAP_TOKEN_TYPE, token }, csrPem), /TokenReview unreachable/);
  });
});
