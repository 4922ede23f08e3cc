import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import forge from 'node-forge';
import { CA_ROOT_KEY, CertificateAuthority } from '../../../core/ca/certificate-authority.ts';
import { isJibeError } from '../../../core/errors/errors.ts';
import { fileNameForKey } from '../../../core/state/state-store-file.ts';
import { generateKeyAndCsr } from '../../../proxy/identity/workload-key.ts';
import { breakSignature, forgeCsr, issuedBy, openssl, OPENSSL, openStore, RATINGS, REVIEWS, tempDir, TRUST_DOMAIN } from './ca-fixtures.ts';

const DAY = 24 * 3600_000;

async function rejectsWith(promise: Promise<unknown>, code: string, message?: RegExp): Promise<Error> {
  let caught: unknown;
  await promise.catch((err: unknown) => (caught = err));
  assert.ok(isJibeError(caught), `expected a JibeError ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code);
  if (message) assert.match(caught.message, message);
  return caught;
}

describe('CertificateAuthority: the generated root', () => {
  it('generates a root on first start, stores it as an owner-only secret, and loads the same root on the next start', async () => {
    const { store, dataDir } = await openStore();
    const ca = await CertificateAuthority.open(store, { trustDomain: TRUST_DOMAIN });
    assert.equal(ca.mode, 'generated');
    const [rootPem, ...rest] = ca.trustBundle();
    assert.deepEqual(rest, []);
    const root = new X509Certificate(rootPem);
    assert.equal(root.ca, true);
    assert.equal(root.subject, 'O=Jibe\nCN=jibe root cluster.local');
    assert.equal(root.issuer, root.subject);
    assert.ok(issuedBy(root, rootPem), 'self-signed');
    const years = (Date.parse(root.validTo) - Date.parse(root.validFrom)) / (365 * DAY);
    assert.ok(years >= 10 && years < 10.01, `root valid for ${years} years`);
    const keyUsage = forge.pki.certificateFromPem(rootPem).getExtension('keyUsage') as { keyCertSign?: boolean; critical?: boolean };
    assert.equal(keyUsage.keyCertSign, true);
    assert.equal(keyUsage.critical, true);
    assert.equal(root.publicKey.asymmetricKeyDetails?.modulusLength, 2048);

    const stored = await store.get<{ certPem: string; keyPem: string }>(CA_ROOT_KEY);
    assert.equal(stored?.value.certPem, rootPem);
    assert.ok(root.checkPrivateKey(createPrivateKey(stored.value.keyPem)));
    const file = join(dataDir, 'state', fileNameForKey(CA_ROOT_KEY));
    assert.equal((await stat(file)).mode & 0o777, 0o600, 'the root key file is owner-only');

    await store.close();
    const { store: again } = await openStore(dataDir);
    const reopened = await CertificateAuthority.open(again, { trustDomain: TRUST_DOMAIN });
    assert.deepEqual(reopened.trustBundle(), [rootPem]);
  });

  it('two control planes racing on one store end with one root', async () => {
    const { store } = await openStore();
    const [a, b, c] = await Promise.all([1, 2, 3].map(() => CertificateAuthority.open(store, { trustDomain: TRUST_DOMAIN })));
    assert.deepEqual(b.trustBundle(), a.trustBundle());
    assert.deepEqual(c.trustBundle(), a.trustBundle());
    assert.equal((await store.list('ca/')).length, 1);
    // And each signs with that root, not a key of its own that lost the race.
    const { csrPem } = await generateKeyAndCsr(REVIEWS);
    for (const ca of [a, b, c]) {
      const leaf = new X509Certificate((await ca.sign(csrPem, { spiffeId: REVIEWS })).certChainPem);
      assert.ok(issuedBy(leaf, a.trustBundle()[0]));
    }
  });

  it('refuses a trust domain that cannot form SPIFFE IDs, and a stored root that is not one', async () => {
    const { store } = await openStore();
    await rejectsWith(CertificateAuthority.open(store, { trustDomain: 'Cluster.Local' }), 'JIBE_ERR_BAD_REQUEST', /lower-case/);
    await store.put(CA_ROOT_KEY, { certPem: 'nope', keyPem: 'nope', trustDomain: TRUST_DOMAIN, createdAt: '' });
    await rejectsWith(CertificateAuthority.open(store, { trustDomain: TRUST_DOMAIN }), 'JIBE_ERR_STORE_CORRUPT', /ca\/root/);
  });

  it('replaces a stored root that has expired', async () => {
    const { store } = await openStore();
    let now = Date.now();
    const first = await CertificateAuthority.open(store, { trustDomain: TRUST_DOMAIN, now: () => now });
    now += 11 * 365 * DAY;
    const second = await CertificateAuthority.open(store, { trustDomain: TRUST_DOMAIN, now: () => now });
    assert.notDeepEqual(second.trustBundle(), first.trustBundle());
    assert.ok(+second.signerExpiresAt > now);
  });
});

describe('CertificateAuthority.sign', async () => {
  const { store } = await openStore();
  const ca = await CertificateAuthority.open(store, { trustDomain: TRUST_DOMAIN });
  const [rootPem] = ca.trustBundle();
  const reviews = await generateKeyAndCsr(REVIEWS);

  it('issues a leaf for the CSR key that verifies against the bundle, names only the SPIFFE ID, lives 24 h, and is no CA', async () => {
    const before = Date.now();
    const { certChainPem, expiresAt } = await ca.sign(reviews.csrPem, { spiffeId: REVIEWS });
    const leaf = new X509Certificate(certChainPem);
    assert.equal(certChainPem.match(/BEGIN CERTIFICATE/g)?.length, 1, 'a root-signed leaf comes alone');
    assert.ok(issuedBy(leaf, rootPem));
    assert.equal(leaf.subjectAltName, `URI:${REVIEWS}`);
    assert.equal(leaf.ca, false);
    assert.ok(leaf.checkPrivateKey(createPrivateKey(reviews.keyPem)), 'certifies the CSR key');
    assert.deepEqual(leaf.keyUsage?.sort(), ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'], 'serverAuth and clientAuth');
    const from = Date.parse(leaf.validFrom);
    const to = Date.parse(leaf.validTo);
    assert.equal(to - from, DAY + 60_000, '24 h from now, started a minute early for clock skew');
    assert.ok(from <= before - 59_000 && from >= before - 62_000);
    assert.equal(+expiresAt, to);

    const parsed = forge.pki.certificateFromPem(certChainPem);
    const keyUsage = parsed.getExtension('keyUsage') as Record<string, boolean>;
    assert.equal(keyUsage.digitalSignature, true);
    assert.equal(keyUsage.keyEncipherment, true);
    assert.equal(keyUsage.keyCertSign, false);
    assert.equal((parsed.getExtension('basicConstraints') as { cA: boolean }).cA, false);
    assert.deepEqual(parsed.subject.attributes, []);
  });

  it('gives every leaf a random 128-bit serial', async () => {
    const serials = new Set<string>();
    for (let i = 0; i < 5; i++) serials.add(new X509Certificate((await ca.sign(reviews.csrPem, { spiffeId: REVIEWS })).certChainPem).serialNumber);
    assert.equal(serials.size, 5);
    for (const serial of serials) assert.ok(serial.replace(/^00/, '').length >= 30 && serial.replace(/^00/, '').length <= 32, serial);
  });

  it('refuses a CSR for an identity other than the proven one', async () => {
    const ratings = await generateKeyAndCsr(RATINGS);
    const err = await rejectsWith(ca.sign(ratings.csrPem, { spiffeId: REVIEWS }), 'JIBE_ERR_CSR_REJECTED');
    assert.match(err.message, /ratings/);
    assert.match(err.message, /proved only spiffe:\/\/cluster\.local\/ns\/default\/sa\/reviews/);
  });

  it('refuses a CSR that asks for any name besides the proven one', async () => {
    await rejectsWith(ca.sign(forgeCsr({ uris: [REVIEWS], dnsNames: ['reviews.default.svc'] }).csrPem, { spiffeId: REVIEWS }), 'JIBE_ERR_CSR_REJECTED', /DNS "reviews\.default\.svc"/);
    await rejectsWith(ca.sign(forgeCsr({ uris: [REVIEWS, REVIEWS] }).csrPem, { spiffeId: REVIEWS }), 'JIBE_ERR_CSR_REJECTED');
    await rejectsWith(ca.sign(forgeCsr({ dnsNames: [REVIEWS] }).csrPem, { spiffeId: REVIEWS }), 'JIBE_ERR_CSR_REJECTED', /DNS/);
    await rejectsWith(ca.sign(forgeCsr({}).csrPem, { spiffeId: REVIEWS }), 'JIBE_ERR_CSR_REJECTED', /no subject alternative name/);
    // The same SPIFFE ID spelled with another case is another identity.
    await rejectsWith(ca.sign(forgeCsr({ uris: [REVIEWS.replace('reviews', 'Reviews')] }).csrPem, { spiffeId: REVIEWS }), 'JIBE_ERR_CSR_REJECTED');
    // A well-formed forge CSR for the right name passes: the refusals above are about the names.
    assert.ok(await ca.sign(forgeCsr({ uris: [REVIEWS] }).csrPem, { spiffeId: REVIEWS }));
  });

  it('refuses a CSR whose signature does not verify, one that is not a CSR, and a weak key', async () => {
    await rejectsWith(ca.sign(breakSignature(reviews.csrPem), { spiffeId: REVIEWS }), 'JIBE_ERR_CSR_REJECTED', /signature does not match/);
    await rejectsWith(ca.sign('-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n', { spiffeId: REVIEWS }), 'JIBE_ERR_CSR_REJECTED', /cannot be parsed/);
    await rejectsWith(ca.sign(rootPem, { spiffeId: REVIEWS }), 'JIBE_ERR_CSR_REJECTED');
    await rejectsWith(ca.sign('x'.repeat(100_000), { spiffeId: REVIEWS }), 'JIBE_ERR_CSR_REJECTED');
    await rejectsWith(ca.sign(forgeCsr({ uris: [REVIEWS], bits: 1024 }).csrPem, { spiffeId: REVIEWS }), 'JIBE_ERR_CSR_REJECTED', /1024 bits/);
  });

  it('refuses an identity outside its trust domain or not a SPIFFE ID', async () => {
    const foreign = 'spiffe://example.org/ns/default/sa/reviews';
    await rejectsWith(ca.sign((await generateKeyAndCsr(foreign)).csrPem, { spiffeId: foreign }), 'JIBE_ERR_CSR_REJECTED', /trust domain cluster\.local/);
    for (const bad of ['https://cluster.local/ns/default/sa/reviews', 'spiffe://cluster.local/ns/default/sa/../x', 'spiffe://cluster.local/ns//sa/x', 'spiffe://cluster.local']) {
      await rejectsWith(ca.sign(reviews.csrPem, { spiffeId: bad }), 'JIBE_ERR_CSR_REJECTED');
    }
  });

  it('uses the configured workload lifetime', async () => {
    const { store: other } = await openStore();
    const short = await CertificateAuthority.open(other, { trustDomain: TRUST_DOMAIN, workloadTtlMs: 3600_000 });
    const leaf = new X509Certificate((await short.sign(reviews.csrPem, { spiffeId: REVIEWS })).certChainPem);
    assert.equal(Date.parse(leaf.validTo) - Date.parse(leaf.validFrom), 3600_000 + 60_000);
    await rejectsWith(CertificateAuthority.open(other, { trustDomain: TRUST_DOMAIN, workloadTtlMs: 5 }), 'JIBE_ERR_BAD_REQUEST');
  });

  it('openssl reads the leaf independently: one URI SAN, CA:FALSE, and a chain to the root', { skip: !OPENSSL && 'openssl is not on PATH' }, async () => {
    const { certChainPem } = await ca.sign(reviews.csrPem, { spiffeId: REVIEWS });
    const text = openssl(['x509', '-noout', '-text'], certChainPem);
    assert.equal(text.status, 0, text.stderr);
    assert.match(text.stdout, /X509v3 Subject Alternative Name: critical\s+URI:spiffe:\/\/cluster\.local\/ns\/default\/sa\/reviews\s*\n/);
    assert.doesNotMatch(text.stdout, /DNS:|IP Address:|email:/);
    assert.match(text.stdout, /CA:FALSE/);
    assert.match(text.stdout, /TLS Web Server Authentication, TLS Web Client Authentication/);
    const dir = await tempDir();
    await writeFile(join(dir, 'root.pem'), rootPem);
    const verify = openssl(['verify', '-CAfile', join(dir, 'root.pem'), '-purpose', 'sslclient'], certChainPem);
    assert.equal(verify.status, 0, verify.stderr + verify.stdout);
    const csr = openssl(['req', '-noout', '-verify'], reviews.csrPem);
    assert.equal(csr.status, 0, csr.stderr);
  });
});
