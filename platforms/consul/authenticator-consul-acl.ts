// Consul ACL tokens as workload credentials: a workload registered in Consul
// proves which service it is with the token Consul gave it, as Consul Connect
// itself does. The token is checked by Consul (`/v1/acl/token/self` with the
// token as its own credential, so the control plane needs no ACL read right),
// and only a token with exactly one service identity proves anything:
// identity `spiffe://<trust domain>/ns/<namespace>/sa/<service name>`, the same
// service account the registry gives that service's instances.
import type { Authenticator, Credential, WorkloadIdentity } from '../../core/ca/authenticator.ts';
import { spiffeId } from '../../core/model/workload.ts';
import type { ConsulClient } from './consul-client.ts';
import type { ConsulAclToken } from './consul-types.ts';
import { isDns1123Label } from '../../core/config/names.ts';

export const CONSUL_ACL_TOKEN_TYPE = 'consul-acl-token';

/** Consul secret IDs are UUIDs; anything else is refused before a round trip. */
const SECRET_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface ConsulAclAuthenticatorOptions {
  trustDomain: string;
  /** Namespace of the identity when the token names none (Consul OSS). */
  namespace: string;
  /** The datacenter this control plane serves: a service identity scoped to other datacenters proves nothing here. */
  datacenter?: string;
  now?: () => number;
}

export class ConsulAclAuthenticator implements Authenticator {
  readonly name = 'consul-acl';
  private readonly client: ConsulClient;
  private readonly options: ConsulAclAuthenticatorOptions;

  constructor(client: ConsulClient, options: ConsulAclAuthenticatorOptions) {
    this.client = client;
    this.options = options;
  }

  async authenticate(credential: Credential): Promise<WorkloadIdentity | undefined> {
    if (credential?.type !== CONSUL_ACL_TOKEN_TYPE || typeof credential.token !== 'string' || !SECRET_ID.test(credential.token)) return undefined;
    // 403 = unknown or revoked token; 401 = ACLs disabled (then no token proves anything).
    const response = await this.client.get<ConsulAclToken>('/v1/acl/token/self', { token: credential.token, accept: [401, 403, 404] });
    if (response.status !== 200 || !response.body) return undefined;
    return identityOf(response.body, this.options);
  }
}

/** The identity a token proves, or undefined (pure: tested without Consul). */
export function identityOf(token: ConsulAclToken, options: ConsulAclAuthenticatorOptions): WorkloadIdentity | undefined {
  if (token.ExpirationTime && !(Date.parse(token.ExpirationTime) > (options.now ?? Date.now)())) return undefined;
  const identities = (token.ServiceIdentities ?? []).filter(
    (si) => !si.Datacenters?.length || options.datacenter === undefined || si.Datacenters.includes(options.datacenter),
  );
  // A token for several services would let one workload be any of them: refuse rather than guess.
  if (identities.length !== 1) return undefined;
  const serviceAccount = identities[0].ServiceName?.toLowerCase();
  const namespace = token.Namespace && token.Namespace !== 'default' ? token.Namespace : options.namespace;
  if (!serviceAccount || !isDns1123Label(serviceAccount) || !isDns1123Label(namespace)) return undefined;
  return { spiffeId: spiffeId(namespace, serviceAccount, options.trustDomain), namespace, serviceAccount };
}
