// The workload side of identity: the proxy (or node agent) makes its own key
// and asks the control plane to certify it with a CSR, so the private key
// never leaves the process that uses it. Also the timing of renewal: a
// certificate is renewed at half its lifetime, leaving the other half to
// retry through a control-plane outage before anything expires.
import { createPrivateKey, createPublicKey, generateKeyPair, sign, X509Certificate } from 'node:crypto';
import { promisify } from 'node:util';
import { bitString, booleanTrue, contextTag, integer, nullValue, objectId, octetString, sequence, set, toPem } from './der-writer.ts';

export const WORKLOAD_KEY_BITS = 2048;

const OID_EXTENSION_REQUEST = '1.2.840.113549.1.9.14';
const OID_SUBJECT_ALT_NAME = '2.5.29.17';
const OID_SHA256_WITH_RSA = '1.2.840.113549.1.1.11';
const URI_NAME_TAG = 6;

const generateKeyPairAsync = promisify(generateKeyPair);

export interface KeyAndCsr {
  /** PKCS#8 PEM; stays in this process. */
  keyPem: string;
  /** PKCS#10 PEM asking for `spiffeId` as the only (URI) subject alternative name. */
  csrPem: string;
}

/**
 * A new RSA key and a CSR for `spiffeId`. Key generation runs on libuv's
 * thread pool, so a proxy renewing its certificate keeps serving meanwhile.
 */
export async function generateKeyAndCsr(spiffeId: string): Promise<KeyAndCsr> {
  if (typeof spiffeId !== 'string' || !spiffeId.startsWith('spiffe://') || !/^[\x21-\x7e]+$/.test(spiffeId)) {
    throw new TypeError(`not a SPIFFE ID: ${JSON.stringify(spiffeId)}`);
  }
  const { privateKey } = await generateKeyPairAsync('rsa', { modulusLength: WORKLOAD_KEY_BITS });
  const spki = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
  const sanExtension = sequence(
    objectId(OID_SUBJECT_ALT_NAME),
    // Critical: the subject is empty, so the SAN is the whole identity (RFC 5280 4.2.1.6).
    booleanTrue(),
    octetString(sequence(contextTag(URI_NAME_TAG, false, Buffer.from(spiffeId, 'ascii')))),
  );
  const requestInfo = sequence(
    integer(0),
    sequence(), // empty subject: SPIFFE identities live in the SAN only
    spki,
    contextTag(0, true, sequence(objectId(OID_EXTENSION_REQUEST), set(sequence(sanExtension)))),
  );
  const signature = sign('sha256', requestInfo, privateKey);
  const csr = sequence(requestInfo, sequence(objectId(OID_SHA256_WITH_RSA), nullValue()), bitString(signature));
  return {
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    csrPem: toPem('CERTIFICATE REQUEST', csr),
  };
}

/** When the certificate (the first in a PEM chain) expires. */
export function certificateExpiry(certPem: string): Date {
  return new Date(new X509Certificate(certPem).validTo);
}

/** Half-way through the certificate's validity: when renewal should start. */
export function rotationDueAt(certPem: string): Date {
  const cert = new X509Certificate(certPem);
  const from = Date.parse(cert.validFrom);
  const to = Date.parse(cert.validTo);
  return new Date(from + Math.floor((to - from) / 2));
}

/** True once the certificate is past its half-life (or expired). */
export function shouldRotate(certPem: string, now: Date | number = Date.now()): boolean {
  return +now >= +rotationDueAt(certPem);
}

/**
 * True when the issued chain's leaf certifies our key for `spiffeId` — checked
 * before use, so a mixed-up or tampered answer is never served.
 */
export function certificateMatches(certChainPem: string, keyPem: string, spiffeId: string): boolean {
  const leaf = new X509Certificate(certChainPem);
  return leaf.checkPrivateKey(createPrivateKey(keyPem)) && leaf.subjectAltName === `URI:${spiffeId}`;
}
