// JSON Web Token verification with node:crypto only: RS256/384/512,
// PS256/384/512, ES256/384/512 and EdDSA signatures over a JSON Web Key Set,
// then iss, aud, exp and nbf with 60 s of clock skew (Envoy's jwt_authn
// default). Failures carry Envoy's wording, which clients and tests know.
import { createPublicKey, constants, verify } from 'node:crypto';
import type { KeyObject } from 'node:crypto';

export const CLOCK_SKEW_SECONDS = 60;

export interface Jwk {
  kid: string | undefined;
  alg: string | undefined;
  kty: string;
  key: KeyObject;
}

export interface DecodedJwt {
  header: Record<string, unknown>;
  payload: Record<string, unknown>;
  signingInput: Buffer;
  signature: Buffer;
  /** The payload segment as sent (base64url), for outputPayloadToHeader. */
  payloadSegment: string;
}

export class JwtError extends Error {}

const ALGS: Record<string, { hash: string | null; kty: string; pss?: boolean; ec?: boolean }> = {
  RS256: { hash: 'sha256', kty: 'RSA' },
  RS384: { hash: 'sha384', kty: 'RSA' },
  RS512: { hash: 'sha512', kty: 'RSA' },
  PS256: { hash: 'sha256', kty: 'RSA', pss: true },
  PS384: { hash: 'sha384', kty: 'RSA', pss: true },
  PS512: { hash: 'sha512', kty: 'RSA', pss: true },
  ES256: { hash: 'sha256', kty: 'EC', ec: true },
  ES384: { hash: 'sha384', kty: 'EC', ec: true },
  ES512: { hash: 'sha512', kty: 'EC', ec: true },
  EdDSA: { hash: null, kty: 'OKP' },
};

/** Parses a JWKS document; keys that are not usable public keys are skipped (as Envoy), none at all is an error. */
export function parseJwks(text: string): Jwk[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new JwtError('Jwks is not valid JSON');
  }
  const keys = (doc as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys)) throw new JwtError('Jwks has no keys list');
  const out: Jwk[] = [];
  for (const k of keys) {
    if (k === null || typeof k !== 'object') continue;
    const jwk = k as Record<string, unknown>;
    if (jwk.use !== undefined && jwk.use !== 'sig') continue;
    try {
      const key = createPublicKey({ key: jwk as never, format: 'jwk' });
      out.push({ kid: typeof jwk.kid === 'string' ? jwk.kid : undefined, alg: typeof jwk.alg === 'string' ? jwk.alg : undefined, kty: String(jwk.kty), key });
    } catch {
      // An unusable key must not make the others unusable.
    }
  }
  if (out.length === 0) throw new JwtError('Jwks has no usable public keys');
  return out;
}

export function decodeJwt(token: string): DecodedJwt {
  const first = token.indexOf('.');
  const second = token.indexOf('.', first + 1);
  if (first < 0 || second < 0 || token.indexOf('.', second + 1) >= 0) throw new JwtError('Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections');
  const header = parseSegment(token.slice(0, first), 'header');
  const payloadSegment = token.slice(first + 1, second);
  const payload = parseSegment(payloadSegment, 'payload');
  return { header, payload, signingInput: Buffer.from(token.slice(0, second), 'latin1'), signature: Buffer.from(token.slice(second + 1), 'base64url'), payloadSegment };
}

function parseSegment(segment: string, what: string): Record<string, unknown> {
  if (!/^[A-Za-z0-9_-]*$/.test(segment)) throw new JwtError(`Jwt ${what} is not base64url encoded`);
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
  } catch {
    throw new JwtError(`Jwt ${what} is an invalid JSON`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new JwtError(`Jwt ${what} is an invalid JSON`);
  return v as Record<string, unknown>;
}

/** The signature check alone. @throws JwtError */
export function verifySignature(jwt: DecodedJwt, keys: readonly Jwk[]): void {
  const alg = jwt.header.alg;
  const spec = typeof alg === 'string' ? ALGS[alg] : undefined;
  if (spec === undefined) throw new JwtError(`Jwt algorithm ${String(alg)} is not supported`);
  const kid = typeof jwt.header.kid === 'string' ? jwt.header.kid : undefined;
  const candidates = keys.filter((k) => k.kty === spec.kty && (k.alg === undefined || k.alg === alg) && (kid === undefined || k.kid === kid));
  if (candidates.length === 0) throw new JwtError(kid !== undefined ? 'Jwks doesn\'t have key to match kid or alg from Jwt' : 'Jwks doesn\'t have key to match alg from Jwt');
  for (const k of candidates) {
    const key = spec.pss
      ? { key: k.key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST }
      : spec.ec
        ? { key: k.key, dsaEncoding: 'ieee-p1363' as const }
        : k.key;
    try {
      if (verify(spec.hash, jwt.signingInput, key, jwt.signature)) return;
    } catch {
      // A key of the right type but the wrong curve or size: try the next.
    }
  }
  throw new JwtError('Jwt verification fails');
}

/** iss, aud, exp, nbf. @throws JwtError */
export function verifyClaims(payload: Record<string, unknown>, issuer: string, audiences: readonly string[], nowSeconds: number): void {
  if (payload.iss !== issuer) throw new JwtError('Jwt issuer is not configured');
  if (payload.exp !== undefined) {
    if (typeof payload.exp !== 'number') throw new JwtError('Jwt exp is not a number');
    if (nowSeconds > payload.exp + CLOCK_SKEW_SECONDS) throw new JwtError('Jwt is expired');
  }
  if (payload.nbf !== undefined) {
    if (typeof payload.nbf !== 'number') throw new JwtError('Jwt nbf is not a number');
    if (nowSeconds < payload.nbf - CLOCK_SKEW_SECONDS) throw new JwtError('Jwt not yet valid');
  }
  if (audiences.length > 0) {
    const aud = payload.aud;
    const list = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : [];
    if (!list.some((a) => typeof a === 'string' && audiences.includes(a))) throw new JwtError('Audiences in Jwt are not allowed');
  }
}
