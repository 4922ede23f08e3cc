import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import forge from 'node-forge';
import { CertificateAuthority } from '../../../core/ca/certificate-authority.ts';
import { objectId, tlv } from '../../../proxy/identity/der-writer.ts';
import { certificateExpiry, certificateMatches, generateKeyAndCsr, rotationDueAt, shouldRotate } from '../../../proxy/identity/workload-key.ts';
import { openssl, OPENSSL, openStore, RATINGS, REVIEWS, TRUST_DOMAIN } from './ca-fixtures.ts';

describe('workload keys and CSRs (proxy side)', () => {
  it('makes a CSR that forge verifies, asking for the SPIFFE ID as its only name, for the key it returns', async () => {
    const { keyPem, csrPem } = await generateKeyAndCsr(REVIEWS);
    const csr = forge.pki.certificationRequestFromPem(csrPem, true);
    assert.equal(csr.verify(), true);
    const ext = (csr.getAttribute({ name: 'extensionRequest' }) as unknown as { extensions: { name: string; critical: boolean; altNames: { type: number; value: string }[] }[] }).extensions;
    assert.deepEqual(ext.map((e) => [e.name, e.critical, e.altNames]), [['subjectAltName', true, [{ type: 6, value: REVIEWS }]]]);
    const csrKey = createPublicKey(forge.pki.publicKeyToPem(csr.publicKey as forge.pki.rsa.PublicKey)).export({ type: 'spki', format: 'der' });
    assert.ok(csrKey.equals(createPublicKey(createPrivateKey(keyPem)).export({ type: 'spki', format: 'der' })));
    assert.match(keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
    if (OPENSSL) {
      const text = openssl(['req', '-noout', '-verify', '-text'], csrPem);
      assert.equal(text.status, 0, text.stderr);
      assert.match(text.stdout, /URI:spiffe:\/\/cluster\.local\/ns\/default\/sa\/reviews/);
    }
  });

  it('makes a new key every time, and refuses something that is not a SPIFFE ID', async () => {
    const [a, b] = await Promise.all([generateKeyAndCsr(REVIEWS), generateKeyAndCsr(REVIEWS)]);
    assert.notEqual(a.keyPem, b.keyPem);
    await assert.rejects(generateKeyAndCsr('https://example.com'), TypeError);
    await assert.rejects(generateKeyAndCsr('spiffe://cluster.local/ns/a b'), TypeError);
  });

  it('knows when a certificate expires and is due for renewal (half-life), and whether it fits its key and name', async () => {
    const { store } = await openStore();
    const ca = await CertificateAuthority.open(store, { trustDomain: TRUST_DOMAIN });
    const { keyPem, csrPem } = await generateKeyAndCsr(REVIEWS);
    const { certChainPem, expiresAt } = await ca.sign(csrPem, { spiffeId: REVIEWS });
    assert.equal(+certificateExpiry(certChainPem), +expiresAt);
    const cert = new X509Certificate(certChainPem);
    const from = Date.parse(cert.validFrom);
    const half = from + (Date.parse(cert.validTo) - from) / 2;
    assert.equal(+rotationDueAt(certChainPem), half);
    assert.equal(shouldRotate(certChainPem, half - 1), false);
    assert.equal(shouldRotate(certChainPem, half), true);
    assert.equal(shouldRotate(certChainPem, new Date(from + 1000)), false);
    assert.equal(shouldRotate(certChainPem, +expiresAt + 1), true);

    assert.equal(certificateMatches(certChainPem, keyPem, REVIEWS), true);
    assert.equal(certificateMatches(certChainPem, keyPem, RATINGS), false);
    assert.equal(certificateMatches(certChainPem, (await generateKeyAndCsr(REVIEWS)).keyPem, REVIEWS), false);
  });

  it('encodes DER the way forge reads it', () => {
    for (const oid of ['1.2.840.113549.1.9.14', '2.5.29.17', '1.2.840.113549.1.1.11', '1.3.6.1.4.1.311.60.2.1.3']) {
      assert.equal(objectId(oid).subarray(2).toString('binary'), forge.asn1.oidToDer(oid).getBytes(), oid);
    }
    for (const length of [0, 127, 128, 255, 256, 70_000]) {
      const parsed = forge.asn1.fromDer(tlv(0x04, Buffer.alloc(length, 1)).toString('binary'));
      assert.equal((parsed.value as string).length, length);
    }
  });

  it('keeps the proxy free of core services and node-forge (a sidecar loads only what it needs)', () => {
    for (const file of ['workload-key.ts', 'der-writer.ts']) {
      const source = readFileSync(new URL(`../../../proxy/identity/${file}`, import.meta.url), 'utf8');
      const imports = [...source.matchAll(/from '([^']+)'/g)].map((m) => m[1]);
      assert.deepEqual(imports.filter((i) => !i.startsWith('node:') && !i.startsWith('./')), [], `${file} imports`);
    }
  });
});
