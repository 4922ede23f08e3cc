// The certificate and key the CA signs leaves with, checked once when loaded
// (generated root or an operator's root/intermediate) so signing itself has
// nothing left to check and nothing to parse.
import { createHash, X509Certificate } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import forge from 'node-forge';
import { JibeError } from '../errors/errors.ts';
import type { JibeErrorDetails } from '../errors/errors.ts';
import { subjectNameAsn1 } from './ca-keys.ts';

/** Deeper chains are not something an operator sets up on purpose. */
const MAX_CHAIN_DEPTH = 8;

export interface Signer {
  certPem: string;
  key: KeyObject;
  /** The signing certificate's subject, DER-exact: the leaves' issuer. */
  issuerName: forge.asn1.Asn1;
  /** Its subjectKeyIdentifier as a byte string, for the leaves' authorityKeyIdentifier. */
  issuerKeyId?: string;
  notAfter: Date;
  /** Sent after each leaf: the path up to the root, without the root (empty when signing with a root). */
  intermediatesPem: string[];
  /** The self-signed root at the top of the path: the trust anchor peers need. */
  rootPem: string;
  /** SHA-256 fingerprint of the root, to tell roots apart in logs and the bundle. */
  rootFingerprint: string;
}

export interface SignerSource {
  certPem: string;
  key: KeyObject;
  /** Further certificates (PEM) from which the path to a root is built. */
  chainPems?: string[];
  /** How errors name where the material came from (a file or a state key). */
  where: JibeErrorDetails;
  now: number;
}

/** Checks that `certPem` and `key` can sign workload certificates and builds the path to a root. */
export function loadSigner(source: SignerSource): Signer {
  const { where } = source;
  const cert = parseCertificate(source.certPem, where);
  if (!cert.ca) throw invalid('the certificate is not a CA certificate (basicConstraints CA:true is missing)', where);
  if (!cert.checkPrivateKey(source.key)) throw invalid('the private key does not belong to the certificate', where);
  if (cert.publicKey.asymmetricKeyType !== 'rsa') throw invalid(`the CA key is ${cert.publicKey.asymmetricKeyType}; the CA signs with RSA keys only`, where);
  const notAfter = new Date(cert.validTo);
  if (+new Date(cert.validFrom) > source.now || +notAfter <= source.now) {
    throw invalid(`the certificate is valid from ${cert.validFrom} to ${cert.validTo}, not now`, where);
  }
  let parsed: forge.pki.Certificate;
  try {
    parsed = forge.pki.certificateFromPem(source.certPem);
  } catch (err) {
    throw invalid(`the certificate cannot be read: ${(err as Error).message}`, where);
  }
  const keyUsage = parsed.getExtension('keyUsage') as { keyCertSign?: boolean } | null;
  if (keyUsage && !keyUsage.keyCertSign) throw invalid('the certificate\'s keyUsage does not allow signing certificates (keyCertSign)', where);
  const ski = parsed.getExtension('subjectKeyIdentifier') as { subjectKeyIdentifier?: string } | null;

  const chain = (source.chainPems ?? []).map((pem) => parseCertificate(pem, where));
  const path = [cert];
  let top = cert;
  while (!isSelfSigned(top)) {
    const issuer = chain.find((c) => c.ca && top.checkIssued(c) && top.verify(c.publicKey));
    if (!issuer) {
      throw invalid(`no certificate in the chain issued ${top.subject.replace(/\n/g, ', ')}; the chain must lead to a self-signed root`, {
        ...where,
        hint: 'append the issuing intermediates and the root certificate (PEM) to the chain file',
      });
    }
    if (path.length >= MAX_CHAIN_DEPTH || path.includes(issuer)) throw invalid(`the chain is longer than ${MAX_CHAIN_DEPTH} certificates or loops`, where);
    path.push(issuer);
    top = issuer;
  }
  return {
    certPem: cert.toString(),
    key: source.key,
    issuerName: subjectNameAsn1(source.certPem),
    issuerKeyId: ski?.subjectKeyIdentifier ? forge.util.hexToBytes(ski.subjectKeyIdentifier) : undefined,
    notAfter,
    intermediatesPem: path.slice(0, -1).map((c) => c.toString()),
    rootPem: top.toString(),
    rootFingerprint: top.fingerprint256,
  };
}

export function isSelfSigned(cert: X509Certificate): boolean {
  return cert.checkIssued(cert) && cert.verify(cert.publicKey);
}

/** SHA-256 of a PEM certificate's DER, lowercase hex: the fingerprint a VM pins the root by. */
export function certificateSha256(pem: string): string {
  return createHash('sha256').update(new X509Certificate(pem).raw).digest('hex');
}

/** Every PEM certificate block in `text`, in order. */
export function splitPemCertificates(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

function parseCertificate(pem: string, where: JibeErrorDetails): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (err) {
    throw invalid(`not a PEM certificate: ${(err as Error).message}`, where);
  }
}

function invalid(why: string, where: JibeErrorDetails): JibeError {
  return new JibeError('JIBE_ERR_CA_INVALID', `CA certificate cannot be used: ${why}`, {
    hint: 'give the CA a certificate with CA:true and keyCertSign, its unencrypted RSA private key, and a chain up to a self-signed root',
    ...where,
  });
}
