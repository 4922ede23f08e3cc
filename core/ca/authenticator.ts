// Authenticator: turns a platform credential (a bootstrap or join token, a
// Kubernetes service-account token via TokenReview, a Consul ACL token) into a
// workload identity. The CA signs only for identities an Authenticator
// returned, so this is where "who may be whom" is decided. Implementations are
// plugins, one per credential type (see DESIGN.md, plugin interfaces).
import type { WorkloadIdentity } from './spiffe-id.ts';

export type { WorkloadIdentity } from './spiffe-id.ts';

export interface Credential {
  /** Which kind of credential `token` is, e.g. `bootstrap-token`; each Authenticator handles its own types. */
  type: string;
  token: string;
}

export interface Authenticator {
  readonly name: string;
  /**
   * The identity the credential proves, or undefined when it proves none
   * (unknown, expired, revoked, or a type this authenticator does not handle).
   * Throws only when it cannot decide (its backend is unreachable), so an
   * outage is never mistaken for a bad credential.
   */
  authenticate(credential: Credential): Promise<WorkloadIdentity | undefined>;
}
