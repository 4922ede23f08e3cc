// The VM join token as a string: everything a VM needs for first contact in
// one paste, so no CA file or address has to be copied by hand. Pure (no I/O):
// the control plane encodes it, the node agent decodes it.
//
// Layout (then base64url, prefixed `jibe1.` so a pasted token is recognisable):
//   byte 0       version (1)
//   bytes 1-32   SHA-256 of the trust root's DER: the agent pins it on first contact
//   bytes 33-64  the secret (32 random bytes); the store keeps only its SHA-256
//   bytes 65-    UTF-8 JSON {"addresses": ["host:port", …], "controlPlane": "spiffe://…", "identity": "spiffe://…"}
// The identity is not secret: the VM needs it to ask for its certificate (the CSR names it).
// The JSON tail leaves room for fields a later version adds.
import { createHash, randomBytes } from 'node:crypto';
import { JibeError } from '../../core/errors/errors.ts';

export const JOIN_TOKEN_TYPE = 'vm-join-token';
export const JOIN_TOKEN_PREFIX = 'jibe1.';
const VERSION = 1;
const HASH_BYTES = 32;
const SECRET_BYTES = 32;
const HEADER = 1 + HASH_BYTES + SECRET_BYTES;
/** A token is pasted on command lines; bound it so garbage is refused before parsing. */
const MAX_TOKEN_LENGTH = 4096;

export interface JoinToken {
  /** TLS API addresses of the control plane, `host:port`, tried in order. */
  addresses: string[];
  /** SHA-256 of the trust root's DER, hex. */
  rootSha256: string;
  /** The control plane's SPIFFE ID, checked in its serving certificate. */
  controlPlane: string;
  /** The workload identity the token grants. */
  identity: string;
  /** The secret, 32 bytes. */
  secret: Buffer;
}

export function encodeJoinToken(token: JoinToken): string {
  const pin = Buffer.from(token.rootSha256, 'hex');
  if (pin.length !== HASH_BYTES) throw new TypeError('rootSha256 must be 64 hex digits');
  if (token.secret.length !== SECRET_BYTES) throw new TypeError(`the secret must be ${SECRET_BYTES} bytes`);
  const tail = Buffer.from(JSON.stringify({ addresses: token.addresses, controlPlane: token.controlPlane, identity: token.identity }), 'utf8');
  return JOIN_TOKEN_PREFIX + Buffer.concat([Buffer.from([VERSION]), pin, token.secret, tail]).toString('base64url');
}

/** Parses a token string; JIBE_ERR_JOIN_TOKEN saying what is wrong with it. */
export function decodeJoinToken(text: string): JoinToken {
  const bad = (why: string) =>
    new JibeError('JIBE_ERR_JOIN_TOKEN', `the join token is not valid: ${why}`, { hint: 'copy the whole string `jibe vm token create` printed (it starts with jibe1.)' });
  if (typeof text !== 'string') throw bad('it is not a string');
  const trimmed = text.trim();
  if (trimmed.length > MAX_TOKEN_LENGTH) throw bad(`it is longer than ${MAX_TOKEN_LENGTH} characters`);
  if (!trimmed.startsWith(JOIN_TOKEN_PREFIX)) throw bad(`it does not start with ${JOIN_TOKEN_PREFIX}`);
  const body = trimmed.slice(JOIN_TOKEN_PREFIX.length);
  if (!/^[A-Za-z0-9_-]+$/.test(body)) throw bad('it holds characters other than base64url');
  const raw = Buffer.from(body, 'base64url');
  if (raw.length <= HEADER) throw bad('it is truncated');
  if (raw[0] !== VERSION) throw bad(`version ${raw[0]} is not known to this agent (it knows ${VERSION})`);
  let tail: { addresses?: unknown; controlPlane?: unknown; identity?: unknown };
  try {
    tail = JSON.parse(raw.subarray(HEADER).toString('utf8'));
  } catch {
    throw bad('it is truncated or altered');
  }
  const addresses = tail?.addresses;
  if (!Array.isArray(addresses) || addresses.length === 0 || !addresses.every((a) => typeof a === 'string' && parseHostPort(a) !== undefined)) {
    throw bad('it names no control plane address');
  }
  if (typeof tail.controlPlane !== 'string' || !tail.controlPlane.startsWith('spiffe://')) throw bad('it names no control plane identity');
  if (typeof tail.identity !== 'string' || !tail.identity.startsWith('spiffe://')) throw bad('it names no workload identity');
  return {
    addresses: addresses as string[],
    rootSha256: raw.subarray(1, 1 + HASH_BYTES).toString('hex'),
    secret: Buffer.from(raw.subarray(1 + HASH_BYTES, HEADER)),
    controlPlane: tail.controlPlane,
    identity: tail.identity,
  };
}

export function newJoinSecret(): Buffer {
  return randomBytes(SECRET_BYTES);
}

/** What the store is keyed by: SHA-256 of the secret, hex. */
export function joinSecretHash(secret: Buffer): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** The short id `list` shows and `revoke` accepts: enough to be unique, useless to join with. */
export function joinTokenId(secretHash: string): string {
  return secretHash.slice(0, 12);
}

/** `host:port` or `[v6]:port` → parts; undefined when it is neither. */
export function parseHostPort(address: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(address);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  return { host: m[1] ?? m[2], port };
}
