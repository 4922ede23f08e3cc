// Reading and checking a workload's certificate signing request. The CA never
// sees a workload's private key; the CSR proves the caller holds it (its
// signature) and says which name it wants, which must be the proven identity.
import forge from 'node-forge';
import { JibeError } from '../errors/errors.ts';
import { MIN_LEAF_KEY_BITS } from './ca-keys.ts';

/** A PKCS#10 request for one URI SAN is under 2 KB; anything far larger is not one of ours. */
const MAX_CSR_LENGTH = 16 * 1024;
const URI_NAME = 6;

/**
 * The CSR's public key, after checking its signature, its key size, and that
 * its only subject alternative name is exactly `spiffeId`. Throws
 * JIBE_ERR_CSR_REJECTED saying which check failed.
 */
export function checkCsr(csrPem: string, spiffeId: string): forge.pki.rsa.PublicKey {
  if (typeof csrPem !== 'string' || csrPem.length > MAX_CSR_LENGTH) throw rejected(spiffeId, `the CSR is not a PEM string of at most ${MAX_CSR_LENGTH} characters`);
  let csr: forge.pki.CertificateSigningRequest;
  try {
    csr = forge.pki.certificationRequestFromPem(csrPem, true);
  } catch (err) {
    const why = (err as Error).message;
    throw rejected(spiffeId, /not RSA/.test(why) ? 'the CSR key is not an RSA key (the CA signs RSA keys only)' : `the CSR cannot be parsed: ${why}`);
  }
  let valid = false;
  try {
    valid = csr.verify();
  } catch {
    // forge throws, rather than answering false, when the signature does not decrypt to a padded digest.
    valid = false;
  }
  if (!valid) throw rejected(spiffeId, 'the CSR signature does not match its public key (the request was altered, or is not signed by the key it carries)');
  const publicKey = csr.publicKey as forge.pki.rsa.PublicKey;
  const bits = publicKey.n.bitLength();
  if (bits < MIN_LEAF_KEY_BITS) throw rejected(spiffeId, `the CSR key has ${bits} bits; at least ${MIN_LEAF_KEY_BITS} are required`);

  const names = requestedNames(csr);
  if (names.length === 0) throw rejected(spiffeId, 'the CSR asks for no subject alternative name; it must ask for exactly the workload SPIFFE ID');
  const foreign = names.filter((n) => n.type !== URI_NAME || n.value !== spiffeId);
  if (foreign.length > 0 || names.length !== 1) {
    const asked = names.map(describeName).join(', ');
    throw rejected(spiffeId, `the CSR asks for ${asked}, but the caller proved only ${spiffeId}`);
  }
  return publicKey;
}

interface AltName {
  type: number;
  value: string;
}

/** Every subject alternative name in every extensionRequest attribute of the CSR. */
function requestedNames(csr: forge.pki.CertificateSigningRequest): AltName[] {
  const names: AltName[] = [];
  const attributes = (csr as unknown as { attributes: { name?: string; extensions?: { name?: string; altNames?: AltName[] }[] }[] }).attributes;
  for (const attribute of attributes) {
    if (attribute.name !== 'extensionRequest') continue;
    for (const extension of attribute.extensions ?? []) {
      if (extension.name === 'subjectAltName') names.push(...(extension.altNames ?? []));
    }
  }
  return names;
}

function describeName(name: AltName): string {
  const kind = name.type === URI_NAME ? 'URI' : name.type === 2 ? 'DNS' : name.type === 7 ? 'IP' : name.type === 1 ? 'email' : `name type ${name.type}`;
  // Values come from the caller: quoted and cut so a log line cannot be forged or flooded.
  const value = name.type === 7 ? ((forge.util as unknown as { bytesToIP(b: string): string | null }).bytesToIP(name.value) ?? '?') : name.value;
  return `${kind} ${JSON.stringify(value.length > 200 ? value.slice(0, 200) + '…' : value)}`;
}

function rejected(spiffeId: string, why: string): JibeError {
  return new JibeError('JIBE_ERR_CSR_REJECTED', `certificate request for ${spiffeId} refused: ${why}`, {
    hint: 'generate the key and CSR on the workload with its own SPIFFE ID as the only URI SAN (proxy/identity/workload-key.ts does)',
  });
}
