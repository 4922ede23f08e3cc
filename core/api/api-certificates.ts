// The certificate endpoints of the control plane's API: a workload trades a
// credential and a CSR for its certificate (the key never leaves it); an
// administrator mints bootstrap tokens; anyone may read the trust bundle
// (roots are public). Minting needs the admin token the control plane writes
// to its data directory (0600), so only the operator who can read that
// directory can hand out identities.
import { timingSafeEqual } from 'node:crypto';
import type http from 'node:http';
import { JibeError } from '../errors/errors.ts';
import { createBootstrapToken } from '../ca/authenticator-bootstrap-token.ts';
import type { CertificateAuthority } from '../ca/certificate-authority.ts';
import type { CsrSigningService } from '../ca/csr-signing-service.ts';
import { workloadSpiffeId } from '../ca/spiffe-id.ts';
import { requirePeerIdentity } from './api-routes.ts';
import type { StateStore } from '../state/state-store.ts';

/** Bootstrap tokens live one day unless asked otherwise; a week at most. */
const DEFAULT_TOKEN_TTL_MS = 24 * 3600_000;
const MAX_TOKEN_TTL_MS = 7 * 24 * 3600_000;

export interface CertificateApiDeps {
  ca: CertificateAuthority;
  signer: CsrSigningService;
  state: StateStore;
  trustDomain: string;
  /** The operator's token (from `<data-dir>/admin-token`). */
  adminToken: string;
}

export interface CertificateRequestBody {
  credential: { type: string; token: string };
  csr: string;
}

/** `POST /api/v1/certificates`: credential + CSR → certificate chain, expiry and trust bundle. */
export async function issueCertificate(deps: CertificateApiDeps, body: unknown, req?: http.IncomingMessage): Promise<unknown> {
  const b = body as Partial<CertificateRequestBody> | undefined;
  if (b?.credential?.type === WORKLOAD_CERTIFICATE_CREDENTIAL && typeof b.csr === 'string' && req) return renewWithPeerCertificate(deps, b.csr, req);
  if (typeof b?.csr !== 'string' || typeof b.credential?.type !== 'string' || typeof b.credential.token !== 'string') {
    throw new JibeError('JIBE_ERR_BAD_REQUEST', 'body must be {"credential": {"type", "token"}, "csr": "<PEM>"}');
  }
  const signed = await deps.signer.signWithCredential(b.credential, b.csr);
  // A join token may grant labels with the identity; the VM registers with them.
  const labels = (signed.identity as { labels?: Record<string, string> }).labels;
  return {
    certChain: signed.certChainPem,
    expiresAt: signed.expiresAt.toISOString(),
    spiffeId: signed.identity.spiffeId,
    trustBundle: signed.trustBundle,
    ...(labels ? { labels } : {}),
  };
}

/**
 * Credential type `workload-certificate`: the identity is the client
 * certificate the TLS port verified, so a VM renews with the certificate it
 * has instead of its (possibly single-use) join token. Only while that
 * certificate is valid: an expired one does not verify, and the VM must join again.
 */
export const WORKLOAD_CERTIFICATE_CREDENTIAL = 'workload-certificate';

async function renewWithPeerCertificate(deps: CertificateApiDeps, csrPem: string, req: http.IncomingMessage): Promise<unknown> {
  const identity = requirePeerIdentity(req);
  const signed = await deps.ca.sign(csrPem, identity);
  return { certChain: signed.certChainPem, expiresAt: signed.expiresAt.toISOString(), spiffeId: identity.spiffeId, trustBundle: deps.ca.trustBundle() };
}

/** `GET /api/v1/trust-bundle`: the roots workloads trust now (two during a root rotation). */
export function trustBundle(deps: CertificateApiDeps): unknown {
  return { trustDomain: deps.trustDomain, roots: deps.ca.trustBundle() };
}

/** `POST /api/v1/bootstrap-tokens` (admin): {namespace, serviceAccount, ttlSeconds?} → a token for that identity. */
export async function mintBootstrapToken(deps: CertificateApiDeps, req: http.IncomingMessage, body: unknown): Promise<unknown> {
  requireAdmin(deps, req);
  const b = body as { namespace?: unknown; serviceAccount?: unknown; ttlSeconds?: unknown } | undefined;
  if (typeof b?.namespace !== 'string' || typeof b.serviceAccount !== 'string') {
    throw new JibeError('JIBE_ERR_BAD_REQUEST', 'body must be {"namespace", "serviceAccount", "ttlSeconds"?}');
  }
  const ttlMs = b.ttlSeconds === undefined ? DEFAULT_TOKEN_TTL_MS : Number(b.ttlSeconds) * 1000;
  if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0 || ttlMs > MAX_TOKEN_TTL_MS) {
    throw new JibeError('JIBE_ERR_BAD_REQUEST', `ttlSeconds must be a whole number from 1 to ${MAX_TOKEN_TTL_MS / 1000}`, { field: 'ttlSeconds' });
  }
  const spiffeId = workloadSpiffeId(deps.trustDomain, b.namespace, b.serviceAccount);
  const token = await createBootstrapToken(deps.state, { spiffeId, namespace: b.namespace, serviceAccount: b.serviceAccount }, ttlMs);
  return { token, spiffeId, expiresAt: new Date(Date.now() + ttlMs).toISOString() };
}

export function requireAdmin(deps: Pick<CertificateApiDeps, 'adminToken'>, req: http.IncomingMessage): void {
  const header = req.headers.authorization ?? '';
  const presented = Buffer.from(header.startsWith('Bearer ') ? header.slice(7) : '');
  const expected = Buffer.from(deps.adminToken);
  if (presented.length !== expected.length || !timingSafeEqual(presented, expected)) {
    throw new JibeError('JIBE_ERR_UNAUTHENTICATED', 'this endpoint needs the control plane admin token', {
      hint: 'send "Authorization: Bearer <token>" with the token from <data-dir>/admin-token',
    });
  }
}
