// SPIFFE IDs as the CA issues them: `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`.
// Checked strictly (SPIFFE ID spec, section 2): a certificate carries whatever
// string the CA puts in it, and peers compare IDs as strings, so two spellings
// of one identity (case, `%2F`, `//`, `.`) must never both be issuable.

export interface WorkloadIdentity {
  spiffeId: string;
  namespace: string;
  serviceAccount: string;
}

const SCHEME = 'spiffe://';
/** The spec's limit for a whole ID (URI SANs are bounded the same way). */
const MAX_ID_LENGTH = 2048;
const MAX_TRUST_DOMAIN_LENGTH = 255;
const TRUST_DOMAIN = /^[a-z0-9._-]+$/;
const PATH_SEGMENT = /^[A-Za-z0-9._-]+$/;

/** Why `trustDomain` is not a valid SPIFFE trust domain, or undefined if it is. */
export function trustDomainProblem(trustDomain: string): string | undefined {
  if (typeof trustDomain !== 'string' || trustDomain === '') return 'the trust domain is empty';
  if (trustDomain.length > MAX_TRUST_DOMAIN_LENGTH) return `the trust domain is longer than ${MAX_TRUST_DOMAIN_LENGTH} characters`;
  if (!TRUST_DOMAIN.test(trustDomain)) return `trust domain ${JSON.stringify(trustDomain)} may only hold lower-case letters, digits, '.', '-' and '_'`;
  return undefined;
}

/** Why `id` is not a valid SPIFFE ID with a path, or undefined if it is. */
export function spiffeIdProblem(id: string): string | undefined {
  if (typeof id !== 'string' || !id.startsWith(SCHEME)) return `${JSON.stringify(id)} does not start with ${SCHEME}`;
  if (id.length > MAX_ID_LENGTH) return `the SPIFFE ID is longer than ${MAX_ID_LENGTH} characters`;
  const rest = id.slice(SCHEME.length);
  const slash = rest.indexOf('/');
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash);
  const problem = trustDomainProblem(trustDomain);
  if (problem) return `${JSON.stringify(id)}: ${problem}`;
  if (slash === -1) return `${JSON.stringify(id)} names only a trust domain, not a workload`;
  for (const segment of rest.slice(slash + 1).split('/')) {
    if (segment === '') return `${JSON.stringify(id)} has an empty path segment`;
    if (segment === '.' || segment === '..') return `${JSON.stringify(id)} has a '.' or '..' path segment`;
    if (!PATH_SEGMENT.test(segment)) return `${JSON.stringify(id)} has a path segment with characters other than letters, digits, '.', '-' and '_'`;
  }
  return undefined;
}

export function trustDomainOf(id: string): string {
  const rest = id.slice(SCHEME.length);
  const slash = rest.indexOf('/');
  return slash === -1 ? rest : rest.slice(0, slash);
}

/** The ID of a workload's identity; throws on names that cannot form a valid ID. */
export function workloadSpiffeId(trustDomain: string, namespace: string, serviceAccount: string): string {
  const id = `${SCHEME}${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
  const problem = spiffeIdProblem(id);
  if (problem) throw new TypeError(`cannot form a SPIFFE ID from trust domain ${JSON.stringify(trustDomain)}, namespace ${JSON.stringify(namespace)}, service account ${JSON.stringify(serviceAccount)}: ${problem}`);
  return id;
}

/** Splits a Jibe workload ID into its parts; undefined for any other shape. */
export function parseWorkloadSpiffeId(id: string): { trustDomain: string; namespace: string; serviceAccount: string } | undefined {
  if (spiffeIdProblem(id)) return undefined;
  const rest = id.slice(SCHEME.length);
  const parts = rest.split('/');
  if (parts.length !== 5 || parts[1] !== 'ns' || parts[3] !== 'sa') return undefined;
  return { trustDomain: parts[0], namespace: parts[2], serviceAccount: parts[4] };
}
