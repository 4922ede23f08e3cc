// Kubernetes service-account tokens as proof of identity: the proxy sends its
// projected token (audience `jibe`), and the API server itself says, through a
// TokenReview, whether it is valid and whose it is. Nothing about the token is
// trusted locally: expiry, revocation (a deleted pod or account) and audience
// are the API server's call.
import type { Authenticator, Credential, WorkloadIdentity } from '../../core/ca/authenticator.ts';
import { workloadSpiffeId } from '../../core/ca/spiffe-id.ts';
import type { KubeClient } from './kube-client.ts';

export const KUBERNETES_TOKEN_TYPE = 'kubernetes-service-account-token';
/** The audience injected sidecars' projected tokens are minted for. */
export const TOKEN_AUDIENCE = 'jibe';
const SERVICE_ACCOUNT_USER = /^system:serviceaccount:([a-z0-9]([-a-z0-9]*[a-z0-9])?):([a-z0-9]([-.a-z0-9]*[a-z0-9])?)$/;

interface TokenReview {
  status?: { authenticated?: boolean; error?: string; user?: { username?: string }; audiences?: string[] };
}

export class TokenReviewAuthenticator implements Authenticator {
  readonly name = 'kubernetes-token-review';
  private readonly client: KubeClient;
  private readonly trustDomain: string;
  private readonly audiences: string[];

  constructor(client: KubeClient, options: { trustDomain: string; audiences?: string[] }) {
    this.client = client;
    this.trustDomain = options.trustDomain;
    this.audiences = options.audiences ?? [TOKEN_AUDIENCE];
  }

  async authenticate(credential: Credential): Promise<WorkloadIdentity | undefined> {
    if (credential?.type !== KUBERNETES_TOKEN_TYPE || typeof credential.token !== 'string' || credential.token.length === 0 || credential.token.length > 16_384) return undefined;
    // A transport failure throws (the caller must not read an outage as "bad token").
    const review = await this.client.request<TokenReview>('POST', '/apis/authentication.k8s.io/v1/tokenreviews', {
      body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token: credential.token, audiences: this.audiences } },
    });
    if (review?.status?.authenticated !== true) return undefined;
    const m = SERVICE_ACCOUNT_USER.exec(review.status.user?.username ?? '');
    if (!m) return undefined; // a user or node token proves no workload identity
    const namespace = m[1];
    const serviceAccount = m[3];
    return { spiffeId: workloadSpiffeId(this.trustDomain, namespace, serviceAccount), namespace, serviceAccount };
  }
}
