// Bootstrap tokens: the local mesh's credential (`jibe up` hands one to each
// proxy it starts). A token is 32 random bytes; the store keeps only its
// SHA-256, so a copy of the state directory cannot be replayed as tokens, and
// looking a token up by its hash needs no constant-time comparison.
// A token may be used until it expires (a proxy renews its certificate with
// it), like a Kubernetes bootstrap token; revoke one with revokeBootstrapToken.
import { createHash, randomBytes } from 'node:crypto';
import { JibeError } from '../errors/errors.ts';
import type { StateStore } from '../state/state-store.ts';
import type { Authenticator, Credential, WorkloadIdentity } from './authenticator.ts';
import { parseWorkloadSpiffeId } from './spiffe-id.ts';

export const BOOTSTRAP_TOKEN_TYPE = 'bootstrap-token';
export const BOOTSTRAP_TOKEN_PREFIX = 'ca/bootstrap-tokens/';
const TOKEN_BYTES = 32;
/** base64url of 32 bytes, no padding. */
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{43}$/;

interface StoredBootstrapToken {
  identity: WorkloadIdentity;
  expiresAt: string;
  createdAt: string;
}

/** Creates a token granting `identity` for `ttlMs`; returns the token, which is stored nowhere. */
export async function createBootstrapToken(state: StateStore, identity: WorkloadIdentity, ttlMs: number, now: number = Date.now()): Promise<string> {
  const parsed = parseWorkloadSpiffeId(identity?.spiffeId);
  if (!parsed || parsed.namespace !== identity.namespace || parsed.serviceAccount !== identity.serviceAccount) {
    throw new JibeError('JIBE_ERR_BAD_REQUEST', `a bootstrap token needs an identity whose SPIFFE ID is spiffe://<trust domain>/ns/<namespace>/sa/<service account> and matches its namespace and service account; got ${JSON.stringify(identity)}`, {
      field: 'identity',
    });
  }
  if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0) throw new JibeError('JIBE_ERR_BAD_REQUEST', 'a bootstrap token lifetime must be a positive whole number of milliseconds', { field: 'ttlMs' });
  const token = randomBytes(TOKEN_BYTES).toString('base64url');
  const value: StoredBootstrapToken = {
    identity: { spiffeId: identity.spiffeId, namespace: identity.namespace, serviceAccount: identity.serviceAccount },
    expiresAt: new Date(now + ttlMs).toISOString(),
    createdAt: new Date(now).toISOString(),
  };
  await state.put(tokenKey(token), value, { ifVersion: null, secret: true });
  return token;
}

/** Makes `token` unusable at once. Returns false if it was not known. */
export function revokeBootstrapToken(state: StateStore, token: string): Promise<boolean> {
  return state.delete(tokenKey(token));
}

/** Deletes expired tokens; returns how many. Run now and then, so the store does not grow forever. */
export async function pruneBootstrapTokens(state: StateStore, now: number = Date.now()): Promise<number> {
  let pruned = 0;
  for (const entry of await state.list<StoredBootstrapToken>(BOOTSTRAP_TOKEN_PREFIX)) {
    if (!(Date.parse(entry.value?.expiresAt) > now)) {
      // Only if unchanged: never delete a token someone rewrote meanwhile.
      if (await state.delete(entry.key, { ifVersion: entry.version }).catch(() => false)) pruned++;
    }
  }
  return pruned;
}

export class BootstrapTokenAuthenticator implements Authenticator {
  readonly name = 'bootstrap-token';
  private readonly state: StateStore;
  private readonly now: () => number;

  constructor(state: StateStore, options: { now?: () => number } = {}) {
    this.state = state;
    this.now = options.now ?? Date.now;
  }

  async authenticate(credential: Credential): Promise<WorkloadIdentity | undefined> {
    if (credential?.type !== BOOTSTRAP_TOKEN_TYPE || typeof credential.token !== 'string' || !TOKEN_SHAPE.test(credential.token)) return undefined;
    const entry = await this.state.get<StoredBootstrapToken>(tokenKey(credential.token));
    if (!entry) return undefined;
    if (!(Date.parse(entry.value?.expiresAt) > this.now())) return undefined;
    const { spiffeId, namespace, serviceAccount } = entry.value.identity ?? {};
    if (typeof spiffeId !== 'string' || typeof namespace !== 'string' || typeof serviceAccount !== 'string') return undefined;
    return { spiffeId, namespace, serviceAccount };
  }
}

function tokenKey(token: string): string {
  return BOOTSTRAP_TOKEN_PREFIX + createHash('sha256').update(token).digest('hex');
}
