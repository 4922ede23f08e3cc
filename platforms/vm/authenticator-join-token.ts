// The `vm-join-token` Authenticator: a VM trades its join token (once, or as
// many times as the token allows) for its first certificate. Every later
// certificate is obtained with the workload's own certificate instead, so a
// single-use token is never needed again.
//
// Unlike "unknown credential → undefined", a token of this type that is
// expired, revoked or used up throws JIBE_ERR_JOIN_TOKEN with the reason:
// the operator at the VM must learn which, not a generic refusal.
import type { Authenticator, Credential } from '../../core/ca/authenticator.ts';
import type { StateStore } from '../../core/state/state-store.ts';
import { JOIN_TOKEN_TYPE } from './join-token.ts';
import { consumeJoinToken } from './join-token-store.ts';
import type { JoinIdentity } from './join-token-store.ts';

export class JoinTokenAuthenticator implements Authenticator {
  readonly name = 'vm-join-token';
  private readonly state: StateStore;
  private readonly now: () => number;

  constructor(state: StateStore, options: { now?: () => number } = {}) {
    this.state = state;
    this.now = options.now ?? Date.now;
  }

  /** The identity (with the token's labels) the token grants; consumes one use. */
  async authenticate(credential: Credential): Promise<JoinIdentity | undefined> {
    if (credential?.type !== JOIN_TOKEN_TYPE || typeof credential.token !== 'string') return undefined;
    return consumeJoinToken(this.state, credential.token, this.now());
  }
}
