// The proxy's mesh identity as the data plane uses it: the workload
// certificate in force and the roots to trust, turned into TLS contexts that
// are built once per change (not per connection). Trust is the union of the
// roots that came with the certificate and the bundle the control plane pushes
// on the discovery stream, so a root rotation reaches the proxy without a new
// certificate or a restart, and during the overlap both roots verify.
//
// Rotation swaps the contexts: connections accepted or dialled after it use the
// new certificate, open ones keep the one they were made with.
import tls from 'node:tls';
import type { SecureContext } from 'node:tls';
import type { WorkloadCertificate } from '../identity/identity-manager.ts';

export class MeshIdentity {
  private cert: WorkloadCertificate;
  private pushedRoots: readonly string[] = [];
  private context: SecureContext | undefined = undefined;
  private readonly listeners = new Set<() => void>();
  /** Bumped at every change: pools and listeners compare it to know their options are stale. */
  generation = 0;

  constructor(cert: WorkloadCertificate) {
    this.cert = cert;
  }

  get certificate(): WorkloadCertificate {
    return this.cert;
  }

  get spiffeId(): string {
    return this.cert.spiffeId;
  }

  /** `cluster.local` of `spiffe://cluster.local/ns/x/sa/y`. */
  get trustDomain(): string {
    return trustDomainOf(this.cert.spiffeId) ?? '';
  }

  /** A rotated certificate (IdentityManager.onRotate, a rewritten cert dir). */
  update(cert: WorkloadCertificate): void {
    this.cert = cert;
    this.changed();
  }

  /** The trust bundle the control plane pushed (the mesh resource); an unchanged bundle costs nothing. */
  setPushedRoots(roots: readonly string[]): void {
    if (sameList(roots, this.pushedRoots)) return;
    this.pushedRoots = [...roots];
    this.changed();
  }

  /** Every root trusted now: the certificate's bundle and the pushed one, without duplicates. */
  roots(): string[] {
    return uniquePems([...this.cert.trustBundle, ...this.pushedRoots]);
  }

  /** Key, chain and roots in one context, for both roles (accepting and dialling mesh mTLS). */
  secureContext(): SecureContext {
    return (this.context ??= tls.createSecureContext({
      key: this.cert.keyPem,
      cert: this.cert.certChainPem,
      ca: this.roots(),
      minVersion: 'TLSv1.2',
    }));
  }

  /** Called after each change of certificate or roots. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private changed(): void {
    this.context = undefined;
    this.generation++;
    for (const l of this.listeners) l();
  }
}

/** The trust domain of a SPIFFE ID, or undefined when it is not one. */
export function trustDomainOf(spiffeId: string): string | undefined {
  if (!spiffeId.startsWith('spiffe://')) return undefined;
  const end = spiffeId.indexOf('/', 9);
  return end < 0 ? spiffeId.slice(9) : spiffeId.slice(9, end);
}

/** PEM blocks without repeats (the same certificate from two sources differs at most in surrounding whitespace). */
export function uniquePems(pems: readonly string[]): string[] {
  const seen = new Set<string>();
  return pems.filter((p) => {
    const key = p.trim();
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
