// The CA's front door: a caller presents a credential and a CSR; an
// Authenticator turns the credential into an identity, and the CA signs the
// CSR for exactly that identity (it refuses a CSR asking for any other).
import type { Logger } from 'pino';
import { isJibeError, JibeError } from '../errors/errors.ts';
import type { Authenticator, Credential, WorkloadIdentity } from './authenticator.ts';
import type { CertificateAuthority, SignedCertificate } from './certificate-authority.ts';

export interface SignedWorkloadCertificate extends SignedCertificate {
  identity: WorkloadIdentity;
  /** PEM roots the workload should trust for its peers. */
  trustBundle: string[];
}

export class CsrSigningService {
  private readonly ca: CertificateAuthority;
  private readonly authenticators: readonly Authenticator[];
  private readonly logger: Logger | undefined;

  constructor(options: { ca: CertificateAuthority; authenticators: readonly Authenticator[]; logger?: Logger }) {
    this.ca = options.ca;
    this.authenticators = options.authenticators;
    this.logger = options.logger;
  }

  /**
   * Authenticates `credential` with the first authenticator that recognises
   * it, then signs `csrPem` for that identity. JIBE_ERR_UNAUTHENTICATED when
   * none does; JIBE_ERR_CSR_REJECTED when the CSR asks for another identity.
   */
  async signWithCredential(credential: Credential, csrPem: string): Promise<SignedWorkloadCertificate> {
    const identity = await authenticate(this.authenticators, credential);
    if (!identity) {
      // The credential itself is never logged: it may be a live secret with a typo.
      this.logger?.warn({ credentialType: credential?.type }, 'certificate request refused: the credential proves no identity');
      throw new JibeError('JIBE_ERR_UNAUTHENTICATED', `the ${describeType(credential)} credential proves no identity (unknown, expired or revoked)`, {
        hint: 'present a current credential for this workload',
      });
    }
    try {
      const signed = await this.ca.sign(csrPem, identity);
      this.logger?.info({ spiffeId: identity.spiffeId, expiresAt: signed.expiresAt.toISOString() }, 'issued workload certificate');
      return { ...signed, identity, trustBundle: this.ca.trustBundle() };
    } catch (err) {
      if (isJibeError(err) && err.code === 'JIBE_ERR_CSR_REJECTED') this.logger?.warn({ spiffeId: identity.spiffeId, reason: err.message }, 'certificate request refused');
      throw err;
    }
  }
}

/** The identity the first authenticator that recognises `credential` proves; undefined if none does. */
export async function authenticate(authenticators: readonly Authenticator[], credential: Credential): Promise<WorkloadIdentity | undefined> {
  if (typeof credential?.type !== 'string' || typeof credential.token !== 'string' || credential.token === '') return undefined;
  for (const authenticator of authenticators) {
    const identity = await authenticator.authenticate(credential);
    if (identity) return identity;
  }
  return undefined;
}

function describeType(credential: Credential | undefined): string {
  const type = credential?.type;
  return typeof type === 'string' && /^[a-z0-9-]{1,40}$/.test(type) ? type : 'presented';
}
