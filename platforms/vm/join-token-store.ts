// Join tokens in the StateStore: `vm/join-tokens/<sha256 of the secret>`,
// secret:true (0600 on disk). Only the hash is kept, so a copy of the state
// cannot be replayed as tokens. A use is consumed by compare-and-set on the
// entry's version, so two VMs racing for a single-use token cannot both win.
// Revoked and used-up tokens stay (marked) until they expire, so a VM that
// presents one is told exactly why it is refused.
import { JibeError } from '../../core/errors/errors.ts';
import { workloadSpiffeId } from '../../core/ca/spiffe-id.ts';
import type { WorkloadIdentity } from '../../core/ca/authenticator.ts';
import type { StateStore } from '../../core/state/state-store.ts';
import { decodeJoinToken, encodeJoinToken, joinSecretHash, joinTokenId, newJoinSecret } from './join-token.ts';

export const JOIN_TOKEN_STORE_PREFIX = 'vm/join-tokens/';
export const DEFAULT_JOIN_TOKEN_TTL_MS = 24 * 3600_000;
export const MAX_JOIN_TOKEN_TTL_MS = 30 * 24 * 3600_000;
/** Compare-and-set retries when many VMs join with one multi-use token at once. */
const CAS_ATTEMPTS = 16;

export interface StoredJoinToken {
  namespace: string;
  serviceAccount: string;
  spiffeId: string;
  labels: Record<string, string>;
  createdAt: string;
  expiresAt: string;
  /** Joins left; null = unlimited until expiry. */
  usesLeft: number | null;
  uses: number;
  revokedAt?: string;
}

export interface JoinTokenInfo extends StoredJoinToken {
  id: string;
}

export interface CreateJoinTokenInput {
  namespace: string;
  serviceAccount: string;
  labels?: Record<string, string>;
  ttlMs?: number;
  /** How many VMs may join with it; undefined/null = unlimited. Default 1 is the CLI's. */
  uses?: number | null;
}

export interface JoinTokenIssuer {
  trustDomain: string;
  /** SHA-256 (hex) of the root's DER the token pins. */
  rootSha256: string;
  controlPlane: string;
  addresses: string[];
}

export interface JoinIdentity extends WorkloadIdentity {
  labels: Record<string, string>;
  tokenId: string;
}

const LABEL_KEY = /^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

function badInput(field: string, message: string): JibeError {
  return new JibeError('JIBE_ERR_BAD_REQUEST', message, { field });
}

export async function createJoinToken(state: StateStore, issuer: JoinTokenIssuer, input: CreateJoinTokenInput, now = Date.now()): Promise<{ token: string; info: JoinTokenInfo }> {
  let spiffeId: string;
  try {
    spiffeId = workloadSpiffeId(issuer.trustDomain, input?.namespace, input?.serviceAccount);
  } catch (err) {
    throw badInput('namespace', `a join token needs a valid namespace and service account: ${(err as Error).message}`);
  }
  const ttlMs = input.ttlMs ?? DEFAULT_JOIN_TOKEN_TTL_MS;
  if (!Number.isSafeInteger(ttlMs) || ttlMs < 1000 || ttlMs > MAX_JOIN_TOKEN_TTL_MS) {
    throw badInput('ttl', `a join token lives from 1 s to ${MAX_JOIN_TOKEN_TTL_MS / 86_400_000} days`);
  }
  const uses = input.uses ?? null;
  if (uses !== null && (!Number.isSafeInteger(uses) || uses < 1)) throw badInput('uses', 'uses must be a whole number >= 1 (or absent for unlimited)');
  const labels = input.labels ?? {};
  for (const [k, v] of Object.entries(labels)) {
    if (!LABEL_KEY.test(k) || typeof v !== 'string' || !LABEL_VALUE.test(v)) throw badInput(`labels.${k}`, `label ${k}=${String(v)} is not a valid Kubernetes-style label`);
  }
  if (issuer.addresses.length === 0) throw badInput('addresses', 'the control plane has no TLS API address to put in the token');
  const secret = newJoinSecret();
  const hash = joinSecretHash(secret);
  const value: StoredJoinToken = {
    namespace: input.namespace,
    serviceAccount: input.serviceAccount,
    spiffeId,
    labels: { ...labels },
    createdAt: new Date(now).toISOString(),
    expiresAt: new Date(now + ttlMs).toISOString(),
    usesLeft: uses,
    uses: 0,
  };
  await state.put(JOIN_TOKEN_STORE_PREFIX + hash, value, { ifVersion: null, secret: true });
  const token = encodeJoinToken({ addresses: issuer.addresses, rootSha256: issuer.rootSha256, controlPlane: issuer.controlPlane, identity: spiffeId, secret });
  return { token, info: { id: joinTokenId(hash), ...value } };
}

export async function listJoinTokens(state: StateStore): Promise<JoinTokenInfo[]> {
  const entries = await state.list<StoredJoinToken>(JOIN_TOKEN_STORE_PREFIX);
  return entries.map((e) => ({ id: joinTokenId(e.key.slice(JOIN_TOKEN_STORE_PREFIX.length)), ...e.value }));
}

/**
 * Revokes by the token string or by its short id (from `list`). Returns the
 * revoked token's info, undefined when nothing matched; an ambiguous id prefix
 * is refused rather than guessed.
 */
export async function revokeJoinToken(state: StateStore, tokenOrId: string, now = Date.now()): Promise<JoinTokenInfo | undefined> {
  let key: string | undefined;
  if (tokenOrId.startsWith('jibe1.')) {
    key = JOIN_TOKEN_STORE_PREFIX + joinSecretHash(decodeJoinToken(tokenOrId).secret);
  } else {
    if (!/^[0-9a-f]{6,64}$/.test(tokenOrId)) throw badInput('id', `"${tokenOrId}" is neither a join token nor a token id (hex, from \`jibe vm token list\`)`);
    const matches = (await state.list(JOIN_TOKEN_STORE_PREFIX)).filter((e) => e.key.slice(JOIN_TOKEN_STORE_PREFIX.length).startsWith(tokenOrId));
    if (matches.length > 1) throw badInput('id', `token id ${tokenOrId} matches ${matches.length} tokens; give more of it`);
    key = matches[0]?.key;
  }
  if (!key) return undefined;
  for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
    const entry = await state.get<StoredJoinToken>(key);
    if (!entry) return undefined;
    const value = { ...entry.value, revokedAt: entry.value.revokedAt ?? new Date(now).toISOString() };
    try {
      await state.put(key, value, { ifVersion: entry.version, secret: true });
      return { id: joinTokenId(key.slice(JOIN_TOKEN_STORE_PREFIX.length)), ...value };
    } catch (err) {
      if ((err as JibeError).code !== 'JIBE_ERR_CONFLICT') throw err;
    }
  }
  throw new JibeError('JIBE_ERR_CONFLICT', 'the join token kept changing while it was being revoked; try again');
}

/**
 * Checks the token and consumes one use atomically. Returns the identity it
 * grants; throws JIBE_ERR_JOIN_TOKEN naming why a known-shaped token is
 * refused (unknown, revoked, expired, used up), so the VM's operator is told.
 */
export async function consumeJoinToken(state: StateStore, tokenText: string, now = Date.now()): Promise<JoinIdentity> {
  const token = decodeJoinToken(tokenText);
  const hash = joinSecretHash(token.secret);
  const id = joinTokenId(hash);
  const key = JOIN_TOKEN_STORE_PREFIX + hash;
  const refuse = (why: string) => new JibeError('JIBE_ERR_JOIN_TOKEN', `join token ${id} is refused: ${why}`, { hint: 'create a new one with `jibe vm token create`' });
  for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
    const entry = await state.get<StoredJoinToken>(key);
    if (!entry) throw refuse('this control plane does not know it (it was never issued here, or it expired and was pruned)');
    const t = entry.value;
    if (t.revokedAt) throw refuse(`it was revoked at ${t.revokedAt}`);
    if (!(Date.parse(t.expiresAt) > now)) throw refuse(`it expired at ${t.expiresAt}`);
    if (t.usesLeft !== null && t.usesLeft <= 0) throw refuse(`it has been used ${t.uses} time(s) and allows no more`);
    const next: StoredJoinToken = { ...t, uses: t.uses + 1, usesLeft: t.usesLeft === null ? null : t.usesLeft - 1 };
    try {
      await state.put(key, next, { ifVersion: entry.version, secret: true });
    } catch (err) {
      if ((err as JibeError).code === 'JIBE_ERR_CONFLICT') continue;
      throw err;
    }
    return { spiffeId: t.spiffeId, namespace: t.namespace, serviceAccount: t.serviceAccount, labels: { ...t.labels }, tokenId: id };
  }
  throw new JibeError('JIBE_ERR_CONFLICT', `join token ${id} is being used by many VMs at once; try again`);
}

/** Deletes tokens that expired more than `graceMs` ago (revoked and used-up ones included). */
export async function pruneJoinTokens(state: StateStore, now = Date.now(), graceMs = 24 * 3600_000): Promise<number> {
  let pruned = 0;
  for (const entry of await state.list<StoredJoinToken>(JOIN_TOKEN_STORE_PREFIX)) {
    if (!(Date.parse(entry.value?.expiresAt) + graceMs > now)) {
      if (await state.delete(entry.key, { ifVersion: entry.version }).catch(() => false)) pruned++;
    }
  }
  return pruned;
}
