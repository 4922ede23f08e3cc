// The mesh's certificate authority: signs workload CSRs for proven SPIFFE IDs
// and publishes the trust bundle peers verify each other with.
//
// Two sources of the signing certificate:
// - generated (default): a self-signed root made on first start and kept in
//   the StateStore (`ca/root`, secret); roots replaced by rotateRoot stay
//   trusted until their overlap ends (`ca/roots`, certificates only — an old
//   key is never used again, so it is not kept).
// - plug-in: an operator's root or intermediate read from files.
import type { Logger } from 'pino';
import { X509Certificate } from 'node:crypto';
import forge from 'node-forge';
import { isJibeError, JibeError } from '../errors/errors.ts';
import type { StateStore } from '../state/state-store.ts';
import { buildLeafCertificate, buildRootCertificate, CLOCK_SKEW_MS } from './ca-certificates.ts';
import { checkCsr } from './ca-csr.ts';
import { generateRsaKeyPair, privateKeyFromPem } from './ca-keys.ts';
import { loadSignerFromFiles } from './ca-plugin-files.ts';
import type { CaRootFiles } from './ca-plugin-files.ts';
import { loadSigner } from './ca-signer.ts';
import type { Signer } from './ca-signer.ts';
import { spiffeIdProblem, trustDomainOf, trustDomainProblem } from './spiffe-id.ts';

export const CA_ROOT_KEY = 'ca/root';
export const CA_ROOTS_KEY = 'ca/roots';
export const DEFAULT_WORKLOAD_TTL_MS = 24 * 3600_000;
/** Shortest lifetime worth issuing: rotation at half-life must not turn into a busy loop. */
const MIN_WORKLOAD_TTL_MS = 60_000;

export interface CertificateAuthorityOptions {
  trustDomain: string;
  /** Plug-in CA: sign with an operator's root or intermediate instead of a generated root. */
  rootFiles?: CaRootFiles;
  /** Lifetime of workload certificates; 24 h by default. */
  workloadTtlMs?: number;
  logger?: Logger;
  /** Milliseconds since the epoch; replaced in tests to step through validity windows. */
  now?: () => number;
}

/** Extra names for a serving certificate of the control plane's own (never for workloads). */
export interface ServerNames {
  dnsNames?: string[];
  ipAddresses?: string[];
}

export interface SignedCertificate {
  /** The leaf, then any intermediates up to (not including) the root. */
  certChainPem: string;
  expiresAt: Date;
}

/** `ca/root`: the active generated root and its key. */
interface StoredRoot {
  certPem: string;
  keyPem: string;
  trustDomain: string;
  createdAt: string;
}

/** `ca/roots`: replaced roots that stay trusted until `trustedUntil`. */
interface StoredRoots {
  roots: { certPem: string; trustedUntil: string }[];
}

/** One certificate request's outcome, for the control plane's metrics. */
export interface CertificateEvent {
  /** `workload`: a CSR from a proven identity; `own`: a key and certificate the control plane made for itself. */
  kind: 'workload' | 'own';
  outcome: 'issued' | 'refused';
}

interface TrustedRoot {
  certPem: string;
  fingerprint: string;
  trustedUntil: number;
}

export class CertificateAuthority {
  readonly trustDomain: string;
  readonly workloadTtlMs: number;
  readonly mode: 'generated' | 'plug-in';
  private readonly state: StateStore;
  private readonly logger: Logger | undefined;
  private readonly now: () => number;
  private signer: Signer;
  /** Version of `ca/root` the signer came from: rotation compares-and-sets on it. */
  private rootVersion: string | undefined;
  private previousRoots: TrustedRoot[] = [];
  private readonly listeners = new Set<() => void>();
  private readonly certificateListeners = new Set<(event: CertificateEvent) => void>();

  private constructor(state: StateStore, options: CertificateAuthorityOptions, signer: Signer, mode: 'generated' | 'plug-in') {
    this.state = state;
    this.trustDomain = options.trustDomain;
    this.workloadTtlMs = options.workloadTtlMs ?? DEFAULT_WORKLOAD_TTL_MS;
    this.logger = options.logger;
    this.now = options.now ?? Date.now;
    this.signer = signer;
    this.mode = mode;
  }

  /**
   * Loads the CA, generating and storing a root on first start. Control planes
   * racing on one store all end up with the root the first writer stored.
   */
  static async open(state: StateStore, options: CertificateAuthorityOptions): Promise<CertificateAuthority> {
    const problem = trustDomainProblem(options.trustDomain);
    if (problem) throw new JibeError('JIBE_ERR_BAD_REQUEST', `invalid CA trust domain: ${problem}`, { field: 'trustDomain' });
    const ttl = options.workloadTtlMs ?? DEFAULT_WORKLOAD_TTL_MS;
    if (!Number.isSafeInteger(ttl) || ttl < MIN_WORKLOAD_TTL_MS) {
      throw new JibeError('JIBE_ERR_BAD_REQUEST', `workload certificate lifetime must be a whole number of milliseconds, at least ${MIN_WORKLOAD_TTL_MS}`, { field: 'workloadTtlMs' });
    }
    const now = options.now ?? Date.now;
    if (options.rootFiles) {
      const signer = await loadSignerFromFiles(options.rootFiles, now());
      const ca = new CertificateAuthority(state, options, signer, 'plug-in');
      await ca.loadPreviousRoots();
      options.logger?.info({ root: signer.rootFingerprint, cert: options.rootFiles.cert, notAfter: signer.notAfter.toISOString() }, 'CA signs with the plug-in certificate');
      return ca;
    }
    let entry = await state.get<StoredRoot>(CA_ROOT_KEY);
    if (!entry) {
      try {
        entry = await state.put(CA_ROOT_KEY, await newRoot(options.trustDomain, now()), { ifVersion: null, secret: true });
        options.logger?.info({ key: CA_ROOT_KEY }, 'CA generated a new root');
      } catch (err) {
        if (!isJibeError(err) || err.code !== 'JIBE_ERR_CONFLICT') throw err;
        // Another control plane stored its root first: that one is the mesh's root.
        entry = await state.get<StoredRoot>(CA_ROOT_KEY);
        if (!entry) throw err;
      }
    }
    if (rootExpired(entry.value, now())) {
      // Nothing it signed is valid any more, and nothing can be until a new root exists.
      options.logger?.warn({ key: CA_ROOT_KEY }, 'the stored CA root has expired; generating a new one (every workload must get a new certificate)');
      try {
        entry = await state.put(CA_ROOT_KEY, await newRoot(options.trustDomain, now()), { ifVersion: entry.version, secret: true });
      } catch (err) {
        if (!isJibeError(err) || err.code !== 'JIBE_ERR_CONFLICT') throw err;
        entry = await state.get<StoredRoot>(CA_ROOT_KEY);
        if (!entry) throw err;
      }
    }
    const ca = new CertificateAuthority(state, options, signerFromStored(entry.value, now()), 'generated');
    ca.rootVersion = entry.version;
    if (entry.value.trustDomain !== options.trustDomain) {
      options.logger?.warn({ stored: entry.value.trustDomain, configured: options.trustDomain }, 'the CA root was made for another trust domain; it keeps signing, for the configured trust domain');
    }
    await ca.loadPreviousRoots();
    options.logger?.info({ root: ca.signer.rootFingerprint, notAfter: ca.signer.notAfter.toISOString() }, 'CA loaded its root');
    return ca;
  }

  /**
   * Issues a workload certificate for `identity`, which the caller has already
   * proven (an Authenticator). The CSR must ask for exactly that identity.
   */
  async sign(csrPem: string, identity: { spiffeId: string }): Promise<SignedCertificate> {
    let signed: SignedCertificate;
    try {
      signed = this.signChecked(csrPem, identity);
    } catch (err) {
      this.emitCertificate('workload', 'refused');
      throw err;
    }
    this.emitCertificate('workload', 'issued');
    return signed;
  }

  /** Tells `listener` about every certificate issued or refused; returns unsubscribe. */
  onCertificate(listener: (event: CertificateEvent) => void): () => void {
    this.certificateListeners.add(listener);
    return () => this.certificateListeners.delete(listener);
  }

  private emitCertificate(kind: CertificateEvent['kind'], outcome: CertificateEvent['outcome']): void {
    if (this.certificateListeners.size === 0) return;
    const event: CertificateEvent = { kind, outcome };
    for (const listener of this.certificateListeners) listener(event);
  }

  private signChecked(csrPem: string, identity: { spiffeId: string }): SignedCertificate {
    const spiffeId = identity?.spiffeId;
    const problem = spiffeIdProblem(spiffeId);
    if (problem) throw new JibeError('JIBE_ERR_CSR_REJECTED', `certificate request refused: the proven identity is not a valid SPIFFE ID: ${problem}`);
    if (trustDomainOf(spiffeId) !== this.trustDomain) {
      throw new JibeError('JIBE_ERR_CSR_REJECTED', `certificate request for ${spiffeId} refused: this CA signs for trust domain ${this.trustDomain} only`);
    }
    const publicKey = checkCsr(csrPem, spiffeId);
    return this.issue(spiffeId, publicKey);
  }

  /**
   * A certificate and key for the control plane's own identity (its discovery
   * port): the key is made here, where it is used, like a workload's.
   * `serverNames` adds DNS and IP SANs for clients that check host names
   * instead of SPIFFE IDs (the Kubernetes API server calling a webhook).
   */
  async issueOwn(spiffeId: string, serverNames: ServerNames = {}): Promise<SignedCertificate & { keyPem: string }> {
    const problem = spiffeIdProblem(spiffeId);
    if (problem || trustDomainOf(spiffeId) !== this.trustDomain) throw new JibeError('JIBE_ERR_CSR_REJECTED', `the control plane cannot be ${spiffeId}: ${problem ?? `not in trust domain ${this.trustDomain}`}`);
    const pair = await generateRsaKeyPair();
    const signed = this.issue(spiffeId, forge.pki.publicKeyFromPem(pair.publicKeyPem) as forge.pki.rsa.PublicKey, serverNames);
    this.emitCertificate('own', 'issued');
    return { ...signed, keyPem: pair.privateKeyPem };
  }

  private issue(spiffeId: string, publicKey: forge.pki.rsa.PublicKey, serverNames: ServerNames = {}): SignedCertificate {
    // Whole seconds: certificates hold no more, and expiresAt must be the certificate's own expiry.
    const now = Math.floor(this.now() / 1000) * 1000;
    const signer = this.signer;
    let notAfter = now + this.workloadTtlMs;
    if (notAfter > +signer.notAfter) {
      notAfter = +signer.notAfter;
      this.logger?.warn({ spiffeId, caNotAfter: signer.notAfter.toISOString() }, 'workload certificate cut short: the CA certificate expires first; rotate the CA');
    }
    const leafPem = buildLeafCertificate({
      spiffeId,
      publicKey,
      dnsNames: serverNames.dnsNames,
      ipAddresses: serverNames.ipAddresses,
      issuerName: signer.issuerName,
      issuerKeyId: signer.issuerKeyId,
      issuerKey: signer.key,
      notBefore: new Date(now - CLOCK_SKEW_MS),
      notAfter: new Date(notAfter),
    });
    this.logger?.debug({ spiffeId, notAfter: new Date(notAfter).toISOString() }, 'CA signed a workload certificate');
    return { certChainPem: [leafPem, ...signer.intermediatesPem].map(withNewline).join(''), expiresAt: new Date(notAfter) };
  }

  /** PEM roots peers trust: the current root, plus replaced roots still inside their overlap. */
  trustBundle(): string[] {
    const now = this.now();
    const bundle = [this.signer.rootPem];
    for (const root of this.previousRoots) {
      if (root.trustedUntil > now && root.fingerprint !== this.signer.rootFingerprint) bundle.push(root.certPem);
    }
    return bundle;
  }

  /** When the bundle next shrinks by itself (an overlap ends): the time to push it again. */
  nextTrustChangeAt(): Date | undefined {
    const now = this.now();
    let next = Infinity;
    for (const root of this.previousRoots) if (root.trustedUntil > now && root.trustedUntil < next) next = root.trustedUntil;
    return next === Infinity ? undefined : new Date(next);
  }

  /** When the signing certificate expires; rotate well before. */
  get signerExpiresAt(): Date {
    return this.signer.notAfter;
  }

  /** Called after the root or the bundle changes (rotation, or refresh finding another control plane's rotation). */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Replaces the generated root. New leaves are signed by the new root at once;
   * the old root stays in the bundle for `overlapMs`, which should cover the
   * workload certificate lifetime so every leaf it signed is replaced first.
   * An overlap of 0 drops it at once (a compromised key).
   */
  async rotateRoot(options: { overlapMs: number }): Promise<void> {
    if (this.mode === 'plug-in') {
      throw new JibeError('JIBE_ERR_BAD_REQUEST', 'a plug-in CA is rotated by replacing its certificate and key files, not by rotateRoot', {
        hint: 'add the new root to the chain file for the overlap, then switch the cert and key files',
      });
    }
    const overlapMs = options?.overlapMs;
    if (!Number.isSafeInteger(overlapMs) || overlapMs < 0) throw new JibeError('JIBE_ERR_BAD_REQUEST', 'root rotation overlap must be a non-negative whole number of milliseconds', { field: 'overlapMs' });
    if (overlapMs < this.workloadTtlMs) {
      this.logger?.warn({ overlapMs, workloadTtlMs: this.workloadTtlMs }, 'root rotation overlap is shorter than the workload certificate lifetime: peers will reject certificates from the old root before they are rotated');
    }
    const now = this.now();
    const stored = await newRoot(this.trustDomain, now);
    const next = signerFromStored(stored, now);

    // The old root joins the trusted list before the new root takes over: a
    // crash in between leaves it trusted twice, never not at all.
    const old = this.signer;
    const rootsEntry = await this.state.get<StoredRoots>(CA_ROOTS_KEY);
    const kept = (rootsEntry?.value.roots ?? []).filter((r) => Date.parse(r.trustedUntil) > now && fingerprintOf(r.certPem) !== old.rootFingerprint);
    kept.push({ certPem: old.rootPem, trustedUntil: new Date(Math.min(now + overlapMs, +old.notAfter)).toISOString() });
    const rootsWritten = await this.state.put<StoredRoots>(CA_ROOTS_KEY, { roots: kept }, { ifVersion: rootsEntry?.version ?? null });

    let rootWritten;
    try {
      rootWritten = await this.state.put(CA_ROOT_KEY, stored, { ifVersion: this.rootVersion ?? null, secret: true });
    } catch (err) {
      if (isJibeError(err) && err.code === 'JIBE_ERR_CONFLICT') {
        await this.refresh();
        throw new JibeError('JIBE_ERR_CONFLICT', 'another control plane rotated the CA root at the same time; its root is in use now', { resource: CA_ROOT_KEY });
      }
      throw err;
    }
    this.signer = next;
    this.rootVersion = rootWritten.version;
    this.previousRoots = toTrusted(rootsWritten.value);
    this.logger?.info({ root: next.rootFingerprint, previous: old.rootFingerprint, trustedUntil: kept[kept.length - 1].trustedUntil }, 'CA rotated its root');
    this.emit();
  }

  /** Re-reads the roots from the store: another control plane sharing it may have rotated. */
  async refresh(): Promise<void> {
    let changed = false;
    if (this.mode === 'generated') {
      const entry = await this.state.get<StoredRoot>(CA_ROOT_KEY);
      if (!entry) throw new JibeError('JIBE_ERR_STORE_CORRUPT', `the CA root ${CA_ROOT_KEY} disappeared from the state store`, { resource: CA_ROOT_KEY, hint: 'restore the state store from a backup' });
      if (entry.version !== this.rootVersion) {
        this.signer = signerFromStored(entry.value, this.now());
        this.rootVersion = entry.version;
        changed = true;
      }
    }
    const before = this.previousRoots.map((r) => r.fingerprint + r.trustedUntil).join();
    await this.loadPreviousRoots();
    if (changed || before !== this.previousRoots.map((r) => r.fingerprint + r.trustedUntil).join()) this.emit();
  }

  private async loadPreviousRoots(): Promise<void> {
    const entry = await this.state.get<StoredRoots>(CA_ROOTS_KEY);
    this.previousRoots = entry ? toTrusted(entry.value) : [];
  }

  private emit(): void {
    for (const listener of this.listeners) {
      try {
        listener();
      } catch (err) {
        this.logger?.error({ err }, 'CA change listener failed');
      }
    }
  }
}

async function newRoot(trustDomain: string, now: number): Promise<StoredRoot> {
  const keys = await generateRsaKeyPair();
  const privateKey = privateKeyFromPem(keys.privateKeyPem);
  if (!privateKey) throw new Error('node:crypto produced a private key it cannot read back');
  const certPem = buildRootCertificate({ trustDomain, publicKeyPem: keys.publicKeyPem, privateKey, now });
  return { certPem, keyPem: keys.privateKeyPem, trustDomain, createdAt: new Date(now).toISOString() };
}

function signerFromStored(stored: StoredRoot, now: number): Signer {
  const where = { resource: CA_ROOT_KEY };
  const key = typeof stored?.keyPem === 'string' ? privateKeyFromPem(stored.keyPem) : undefined;
  if (!key || typeof stored.certPem !== 'string') {
    throw new JibeError('JIBE_ERR_STORE_CORRUPT', `the CA root in ${CA_ROOT_KEY} has no readable certificate and key`, { ...where, hint: 'restore the state store from a backup' });
  }
  return loadSigner({ certPem: stored.certPem, key, where, now });
}

function rootExpired(stored: StoredRoot, now: number): boolean {
  try {
    return Date.parse(new X509Certificate(stored.certPem).validTo) <= now;
  } catch {
    return false; // unreadable: signerFromStored reports it
  }
}

function toTrusted(value: StoredRoots): TrustedRoot[] {
  if (!Array.isArray(value?.roots)) {
    throw new JibeError('JIBE_ERR_STORE_CORRUPT', `${CA_ROOTS_KEY} in the state store is not a list of roots`, { resource: CA_ROOTS_KEY, hint: 'restore the state store from a backup' });
  }
  return value.roots.map((r) => ({ certPem: r.certPem, fingerprint: fingerprintOf(r.certPem), trustedUntil: Date.parse(r.trustedUntil) }));
}

function fingerprintOf(certPem: string): string {
  try {
    return new X509Certificate(certPem).fingerprint256;
  } catch {
    throw new JibeError('JIBE_ERR_STORE_CORRUPT', `${CA_ROOTS_KEY} in the state store holds something that is not a certificate`, { resource: CA_ROOTS_KEY, hint: 'restore the state store from a backup' });
  }
}

function withNewline(pem: string): string {
  return pem.endsWith('\n') ? pem : pem + '\n';
}
