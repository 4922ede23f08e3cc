// Shared pieces for the CA tests: temp state stores, CSRs the workload helper
// would never make (extra names, weak keys, broken signatures), and an
// operator's PKI built with node-forge's own signing (independent of the CA's
// native signing path), plus an openssl probe.
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import forge from 'node-forge';
import { FileStateStore } from '../../../core/state/state-store-file.ts';

export const TRUST_DOMAIN = 'cluster.local';
export const REVIEWS = 'spiffe://cluster.local/ns/default/sa/reviews';
export const RATINGS = 'spiffe://cluster.local/ns/default/sa/ratings';

const tempDirs: string[] = [];
const stores: FileStateStore[] = [];
after(async () => {
  for (const store of stores) await store.close();
  for (const dir of tempDirs) await rm(dir, { recursive: true, force: true });
});

export async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'jibe-ca-'));
  tempDirs.push(dir);
  return dir;
}

/** A file state store in a fresh data directory, closed after the test file. */
export async function openStore(dataDir?: string): Promise<{ store: FileStateStore; dataDir: string }> {
  const dir = dataDir ?? (await tempDir());
  const store = await FileStateStore.open(dir);
  stores.push(store);
  return { store, dataDir: dir };
}

interface CsrOptions {
  uris?: string[];
  dnsNames?: string[];
  bits?: number;
}

/** A CSR built and signed by node-forge, with whatever names the test wants. */
export function forgeCsr(options: CsrOptions = {}): { csrPem: string; keyPem: string } {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: options.bits ?? 2048 });
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const key = forge.pki.privateKeyFromPem(keyPem);
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = forge.pki.setRsaPublicKey(key.n, key.e);
  const altNames = [...(options.uris ?? []).map((value) => ({ type: 6, value })), ...(options.dnsNames ?? []).map((value) => ({ type: 2, value }))];
  if (altNames.length > 0) csr.setAttributes([{ name: 'extensionRequest', extensions: [{ name: 'subjectAltName', altNames }] }]);
  csr.sign(key, forge.md.sha256.create());
  return { csrPem: forge.pki.certificationRequestToPem(csr), keyPem };
}

/** The same CSR with one bit of its signature flipped. */
export function breakSignature(csrPem: string): string {
  const der = Buffer.from(forge.pem.decode(csrPem)[0].body, 'binary');
  der[der.length - 10] ^= 0x01;
  return forge.pem.encode({ type: 'CERTIFICATE REQUEST', body: der.toString('binary') });
}

export interface TestCa {
  certPem: string;
  keyPem: string;
  key: forge.pki.rsa.PrivateKey;
  cert: forge.pki.Certificate;
}

/** A CA certificate as an operator's PKI would make it (PrintableString names, forge's own signing). */
export function makeCaCert(options: { commonName: string; issuer?: TestCa; validityMs?: number; ca?: boolean }): TestCa {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const key = forge.pki.privateKeyFromPem(keyPem);
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.setRsaPublicKey(key.n, key.e);
  cert.serialNumber = '01' + forge.util.bytesToHex(forge.random.getBytesSync(8));
  cert.validity.notBefore = new Date(Date.now() - 3600_000);
  cert.validity.notAfter = new Date(Date.now() + (options.validityMs ?? 5 * 365 * 24 * 3600_000));
  cert.setSubject([{ name: 'organizationName', value: 'Example Corp' }, { name: 'commonName', value: options.commonName }]);
  cert.setIssuer(options.issuer ? options.issuer.cert.subject.attributes : cert.subject.attributes);
  const ca = options.ca ?? true;
  cert.setExtensions([
    { name: 'basicConstraints', cA: ca, critical: true },
    ca ? { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true } : { name: 'keyUsage', digitalSignature: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(options.issuer?.key ?? key, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem, key, cert };
}

/** Writes PEM files for a plug-in CA; the key file gets `keyMode`. */
export async function writeCaFiles(dir: string, signing: TestCa, chain: TestCa[], keyMode = 0o600): Promise<{ cert: string; key: string; chain?: string }> {
  const files = { cert: join(dir, 'ca-cert.pem'), key: join(dir, 'ca-key.pem'), chain: chain.length ? join(dir, 'cert-chain.pem') : undefined };
  await writeFile(files.cert, signing.certPem);
  await writeFile(files.key, signing.keyPem, { mode: keyMode });
  await chmod(files.key, keyMode); // the umask may have cut the mode at creation
  if (files.chain) await writeFile(files.chain, chain.map((c) => c.certPem).join(''));
  return files;
}

/** Every certificate of a PEM chain. */
export function chainOf(pem: string): X509Certificate[] {
  return (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((p) => new X509Certificate(p));
}

/** True when `leaf` was issued and signed by `issuer`. */
export function issuedBy(leaf: X509Certificate, issuerPem: string): boolean {
  const issuer = new X509Certificate(issuerPem);
  return leaf.checkIssued(issuer) && leaf.verify(issuer.publicKey);
}

export const OPENSSL = spawnSync('openssl', ['version'], { encoding: 'utf8' }).status === 0 ? 'openssl' : undefined;

export function openssl(args: string[], input?: string): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(OPENSSL ?? 'openssl', args, { input, encoding: 'utf8' });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}
