import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { CertificateAuthority } from '../../../core/ca/certificate-authority.ts';
import { isJibeError } from '../../../core/errors/errors.ts';
import type { JibeError } from '../../../core/errors/errors.ts';
import { generateKeyAndCsr } from '../../../proxy/identity/workload-key.ts';
import { chainOf, issuedBy, makeCaCert, openssl, OPENSSL, openStore, REVIEWS, tempDir, TRUST_DOMAIN, writeCaFiles } from './ca-fixtures.ts';

async function refusal(promise: Promise<unknown>): Promise<JibeError> {
  let caught: unknown;
  await promise.catch((err: unknown) => (caught = err));
  assert.ok(isJibeError(caught), `expected a JibeError, got ${String(caught)}`);
  return caught;
}

describe('CertificateAuthority with a plug-in CA from files', async () => {
  const root = makeCaCert({ commonName: 'Example Root CA' });
  const intermediate = makeCaCert({ commonName: 'Example Mesh Intermediate', issuer: root });
  const { csrPem } = await generateKeyAndCsr(REVIEWS);

  it('signs with an operator intermediate: the leaf chains through it, and the bundle holds the root', async () => {
    const { store } = await openStore();
    const files = await writeCaFiles(await tempDir(), intermediate, [root]);
    const ca = await CertificateAuthority.open(store, { trustDomain: TRUST_DOMAIN, rootFiles: files });
    assert.equal(ca.mode, 'plug-in');
    assert.deepEqual(ca.trustBundle(), [new X509Certificate(root.certPem).toString()]);

    const { certChainPem } = await ca.sign(csrPem, { spiffeId: REVIEWS });
    const [leaf, sent, ...rest] = chainOf(certChainPem);
    assert.deepEqual(rest, [], 'the root is not sent: peers have it');
    assert.equal(sent.fingerprint256, new X509Certificate(intermediate.certPem).fingerprint256);
    assert.ok(issuedBy(leaf, intermediate.certPem));
    assert.equal(leaf.issuer, 'O=Example Corp\nCN=Example Mesh Intermediate');
    assert.equal(leaf.subjectAltName, `URI:${REVIEWS}`);
    assert.deepEqual(await store.list('ca/'), [], 'nothing of a plug-in CA is copied into the state store');

    if (OPENSSL) {
      const dir = await tempDir();
      await writeFile(join(dir, 'root.pem'), root.certPem);
      await writeFile(join(dir, 'chain.pem'), certChainPem);
      const verify = openssl(['verify', '-CAfile', join(dir, 'root.pem'), '-untrusted', join(dir, 'chain.pem'), join(dir, 'chain.pem')]);
      assert.equal(verify.status, 0, verify.stdout + verify.stderr);
    }
  });

  it('signs with an operator root directly, and accepts a cert file that carries its chain', async () => {
    const { store } = await openStore();
    const direct = await CertificateAuthority.open(store, { trustDomain: TRUST_DOMAIN, rootFiles: await writeCaFiles(await tempDir(), root, []) });
    const leafPem = (await direct.sign(csrPem, { spiffeId: REVIEWS })).certChainPem;
    assert.equal(chainOf(leafPem).length, 1);
    assert.ok(issuedBy(chainOf(leafPem)[0], root.certPem));

    const dir = await tempDir();
    const files = await writeCaFiles(dir, intermediate, []);
    await writeFile(files.cert, intermediate.certPem + root.certPem);
    const bundled = await CertificateAuthority.open(store, { trustDomain: TRUST_DOMAIN, rootFiles: files });
    assert.deepEqual(bundled.trustBundle(), [new X509Certificate(root.certPem).toString()]);
  });

  it('refuses a key file other users can read, naming the file and the chmod to run', async () => {
    const { store } = await openStore();
    for (const mode of [0o644, 0o640, 0o604]) {
      const files = await writeCaFiles(await tempDir(), intermediate, [root], mode);
      const err = await refusal(CertificateAuthority.open(store, { trustDomain: TRUST_DOMAIN, rootFiles: files }));
      assert.equal(err.code, 'JIBE_ERR_CA_INVALID');
      assert.equal(err.details.file, files.key);
      assert.ok(err.message.includes(files.key), err.message);
      assert.equal(err.details.hint, `run: chmod 600 ${files.key}`);
      await chmod(files.key, 0o600);
      assert.ok(await CertificateAuthority.open(store, { trustDomain: TRUST_DOMAIN, rootFiles: files }), 'accepted once owner-only');
    }
  });

  it('refuses a key that is not the certificate\'s, a certificate that is no CA, and a chain without a root', async () => {
    const { store } = await openStore();
    const other = makeCaCert({ commonName: 'Other' });
    const mismatched = await writeCaFiles(await tempDir(), { ...intermediate, keyPem: other.keyPem }, [root]);
    let err = await refusal(CertificateAuthority.open(store, { trustDomain: TRUST_DOMAIN, rootFiles: mismatched }));
    assert.equal(err.code, 'JIBE_ERR_CA_INVALID');
    assert.match(err.message, /private key does not belong/);

    const notCa = makeCaCert({ commonName: 'Just a server', issuer: root, ca: false });
    err = await refusal(CertificateAuthority.open(store, { trustDomain: TRUST_DOMAIN, rootFiles: await writeCaFiles(await tempDir(), notCa, [root]) }));
    assert.match(err.message, /not a CA certificate/);

    err = await refusal(CertificateAuthority.open(store, { trustDomain: TRUST_DOMAIN, rootFiles: await writeCaFiles(await tempDir(), intermediate, []) }));
    assert.equal(err.code, 'JIBE_ERR_CA_INVALID');
    assert.match(err.message, /chain must lead to a self-signed root/);
    assert.match(err.details.hint ?? '', /chain file/);

    err = await refusal(CertificateAuthority.open(store, { trustDomain: TRUST_DOMAIN, rootFiles: { cert: intermediate.certPem, key: '/nonexistent/ca-key.pem' } }));
    assert.equal(err.code, 'JIBE_ERR_FILE_READ');
  });

  it('never issues a leaf that outlives the CA certificate, and refuses to rotate a plug-in CA', async () => {
    const { store } = await openStore();
    const shortLived = makeCaCert({ commonName: 'Expiring Intermediate', issuer: root, validityMs: 3600_000 });
    const ca = await CertificateAuthority.open(store, { trustDomain: TRUST_DOMAIN, rootFiles: await writeCaFiles(await tempDir(), shortLived, [root]) });
    const { expiresAt, certChainPem } = await ca.sign(csrPem, { spiffeId: REVIEWS });
    const caExpiry = Date.parse(new X509Certificate(shortLived.certPem).validTo);
    assert.equal(+expiresAt, caExpiry);
    assert.equal(Date.parse(chainOf(certChainPem)[0].validTo), caExpiry);
    const err = await refusal(ca.rotateRoot({ overlapMs: 0 }));
    assert.equal(err.code, 'JIBE_ERR_BAD_REQUEST');
  });
});
