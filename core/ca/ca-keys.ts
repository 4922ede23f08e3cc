// Key material for the CA. node-forge only lays out X.509 structures; keys are
// generated and every signature is made by node:crypto (OpenSSL): an RSA
// private-key operation in forge's pure JavaScript costs tens of milliseconds
// on the event loop, in OpenSSL well under one — that is the CA's signing rate.
import { createPrivateKey, generateKeyPair, randomBytes, sign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import forge from 'node-forge';

export const CA_KEY_BITS = 2048;
/** Smallest workload key the CA signs for (NIST SP 800-131A). */
export const MIN_LEAF_KEY_BITS = 2048;

const generateKeyPairAsync = promisify(generateKeyPair);

export interface KeyPairPem {
  /** PKCS#8 PEM. */
  privateKeyPem: string;
  /** SPKI PEM. */
  publicKeyPem: string;
}

/**
 * A fresh RSA key pair. Generated on libuv's thread pool: a 2048-bit prime
 * search takes 50–500 ms, too long to block a serving control plane.
 */
export async function generateRsaKeyPair(bits = CA_KEY_BITS): Promise<KeyPairPem> {
  const { privateKey, publicKey } = await generateKeyPairAsync('rsa', {
    modulusLength: bits,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return { privateKeyPem: privateKey, publicKeyPem: publicKey };
}

/**
 * A random 128-bit certificate serial as forge wants it (hex of the DER
 * INTEGER's content): positive (a leading 00 when the top bit is set, RFC 5280
 * allows 20 octets) and minimal (never a leading 00 byte of its own).
 */
export function randomSerialHex(): string {
  let bytes = randomBytes(16);
  while (bytes[0] === 0) bytes = randomBytes(16);
  const hex = bytes.toString('hex');
  return bytes[0] & 0x80 ? '00' + hex : hex;
}

/** forge functions that exist at runtime but are missing from @types/node-forge. */
const forgePki = forge.pki as unknown as {
  getTBSCertificate(cert: forge.pki.Certificate): forge.asn1.Asn1;
};

/** Index of `issuer` in a TBSCertificate that has the explicit v3 version tag. */
const TBS_ISSUER_INDEX = 3;
/** Index of `subject` in a parsed TBSCertificate (v3: version, serial, sigalg, issuer, validity, subject). */
const TBS_SUBJECT_INDEX = 5;

/**
 * Signs `cert` with an RSA key via OpenSSL (sha256WithRSAEncryption) and
 * returns it as PEM. `issuerName` (the issuer's subject exactly as DER-encoded
 * in the issuer's certificate) replaces the issuer forge would re-encode:
 * chain building matches names, and forge re-encodes some string types
 * differently from what an operator's CA wrote.
 */
export function signCertificate(cert: forge.pki.Certificate, key: KeyObject, issuerName?: forge.asn1.Asn1): string {
  cert.signatureOid = cert.siginfo.algorithmOid = forge.pki.oids.sha256WithRSAEncryption;
  const tbs = forgePki.getTBSCertificate(cert);
  if (issuerName) (tbs.value as forge.asn1.Asn1[])[TBS_ISSUER_INDEX] = issuerName;
  cert.tbsCertificate = tbs;
  const der = Buffer.from(forge.asn1.toDer(tbs).getBytes(), 'binary');
  cert.signature = sign('sha256', der, key).toString('binary');
  // forge writes CRLF; node:crypto and every PEM Jibe handles elsewhere use LF.
  return forge.pki.certificateToPem(cert).replace(/\r\n/g, '\n');
}

/** The subject Name of a PEM certificate as ASN.1, byte for byte (see signCertificate). */
export function subjectNameAsn1(certPem: string): forge.asn1.Asn1 {
  const der = forge.pem.decode(certPem)[0].body;
  const tbs = forge.asn1.fromDer(der).value[0] as forge.asn1.Asn1;
  return (tbs.value as forge.asn1.Asn1[])[TBS_SUBJECT_INDEX];
}

/** Loads a PEM private key; undefined if it cannot be read without a passphrase. */
export function privateKeyFromPem(pem: string): KeyObject | undefined {
  try {
    return createPrivateKey({ key: pem, format: 'pem' });
  } catch {
    return undefined;
  }
}
