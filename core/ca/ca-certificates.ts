// The two certificate shapes the CA issues: its self-signed root and workload
// leaves (X.509-SVIDs, SPIFFE X.509-SVID spec section 4).
import forge from 'node-forge';
import type { KeyObject } from 'node:crypto';
import { randomSerialHex, signCertificate } from './ca-keys.ts';

/** Leaves start this far in the past, so a peer whose clock lags still accepts a fresh one. */
export const CLOCK_SKEW_MS = 60_000;
export const ROOT_VALIDITY_MS = 10 * 365 * 24 * 3600_000;

export interface RootCertificateOptions {
  trustDomain: string;
  publicKeyPem: string;
  privateKey: KeyObject;
  now: number;
  validityMs?: number;
}

/** A self-signed CA certificate: CA:true, keyCertSign + cRLSign, O=Jibe, CN=jibe root <trust domain>. */
export function buildRootCertificate(options: RootCertificateOptions): string {
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(options.publicKeyPem);
  cert.serialNumber = randomSerialHex();
  cert.validity.notBefore = new Date(options.now - CLOCK_SKEW_MS);
  cert.validity.notAfter = new Date(options.now + (options.validityMs ?? ROOT_VALIDITY_MS));
  // UTF8String: trust domains may hold '_', which PrintableString (forge's default) cannot.
  const name = [
    { name: 'organizationName', value: 'Jibe', valueTagClass: forge.asn1.Type.UTF8 as number as forge.asn1.Class },
    { name: 'commonName', value: `jibe root ${options.trustDomain}`, valueTagClass: forge.asn1.Type.UTF8 as number as forge.asn1.Class },
  ];
  cert.setSubject(name);
  cert.setIssuer(name);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
    // Rotated roots share one subject name; the key identifiers are what lets
    // a verifier pick the right one of two trusted roots during the overlap.
    { name: 'authorityKeyIdentifier', keyIdentifier: true },
  ]);
  return signCertificate(cert, options.privateKey);
}

export interface LeafCertificateOptions {
  spiffeId: string;
  publicKey: forge.pki.rsa.PublicKey;
  /** Host-name SANs, only for the control plane's own serving certificates (webhooks). */
  dnsNames?: string[];
  ipAddresses?: string[];
  /** The signing CA's subject, DER-exact (subjectNameAsn1). */
  issuerName: forge.asn1.Asn1;
  /** The signing CA's subjectKeyIdentifier as bytes, when it has one. */
  issuerKeyId?: string;
  issuerKey: KeyObject;
  notBefore: Date;
  notAfter: Date;
}

/**
 * A workload certificate. Nothing is copied from the CSR but its public key:
 * the SPIFFE ID is the proven one, and the subject, extensions and lifetime are
 * the CA's choice, so a CSR cannot ask for CA:true or an extra name.
 */
export function buildLeafCertificate(options: LeafCertificateOptions): string {
  const cert = forge.pki.createCertificate();
  cert.publicKey = options.publicKey;
  cert.serialNumber = randomSerialHex();
  cert.validity.notBefore = options.notBefore;
  cert.validity.notAfter = options.notAfter;
  // An empty subject, as SPIFFE recommends: the identity is the URI SAN alone,
  // and a CN would invite host-name checks against it. An empty subject makes
  // the SAN extension critical (RFC 5280 4.2.1.6).
  cert.setSubject([]);
  const extensions: object[] = [
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
    {
      name: 'subjectAltName',
      altNames: [{ type: 6, value: options.spiffeId }, ...(options.dnsNames ?? []).map((value) => ({ type: 2, value })), ...(options.ipAddresses ?? []).map((ip) => ({ type: 7, ip }))],
      critical: true,
    },
    { name: 'subjectKeyIdentifier' },
  ];
  if (options.issuerKeyId) extensions.push({ name: 'authorityKeyIdentifier', keyIdentifier: options.issuerKeyId });
  cert.setExtensions(extensions);
  return signCertificate(cert, options.issuerKey, options.issuerName);
}
