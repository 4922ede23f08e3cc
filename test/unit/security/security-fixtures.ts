// A request as the security code sees it, without a socket: enough of an
// Exchange for RequestAttributes, and JWT signing by hand with node:crypto.
import { generateKeyPairSync, sign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import type { Exchange } from '../../../proxy/http/exchange.ts';
import { RequestAttributes } from '../../../proxy/security/request-attributes.ts';

export interface FakeRequest {
  method?: string;
  path?: string;
  authority?: string;
  headers?: Record<string, string>;
  query?: Record<string, string>;
  remoteAddress?: string;
  /** Source principal, as mutual TLS would have verified it. */
  principal?: string;
}

/** The tag proxy/tls puts on a socket whose client certificate it verified. */
const PEER_IDENTITY = Symbol.for('jibe.tls.peerIdentity');

export function fakeExchange(r: FakeRequest): Exchange {
  const rawHeaders = Object.entries(r.headers ?? {}).flat();
  const ex = {
    down: { remoteAddress: r.remoteAddress ?? '10.0.0.9', rawHeaders, httpVersion: 1, socket: { [PEER_IDENTITY]: r.principal } },
    method: r.method ?? 'GET',
    path: r.path ?? '/',
    authority: r.authority ?? 'svc.default:8080',
    scheme: 'http',
    listener: { kind: 'inbound' },
    header(name: string) {
      let out: string | undefined;
      for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i].toLowerCase() === name) out = out === undefined ? rawHeaders[i + 1] : `${out}, ${rawHeaders[i + 1]}`;
      return out;
    },
    queryParam: (name: string) => r.query?.[name],
    pathAndQuery: () => r.path ?? '/',
  };
  return ex as unknown as Exchange;
}

export function attrs(r: FakeRequest, port = 8080): RequestAttributes {
  return new RequestAttributes(fakeExchange(r), port);
}

export interface SigningKey {
  alg: string;
  kid: string;
  privateKey: KeyObject;
  jwk: Record<string, unknown>;
}

export function signingKey(alg: 'RS256' | 'PS256' | 'ES256' | 'ES384' | 'EdDSA', kid: string): SigningKey {
  const pair =
    alg === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
    : alg === 'ES384' ? generateKeyPairSync('ec', { namedCurve: 'P-384' })
    : alg === 'EdDSA' ? generateKeyPairSync('ed25519')
    : generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { alg, kid, privateKey: pair.privateKey, jwk: { ...pair.publicKey.export({ format: 'jwk' }), kid, alg, use: 'sig' } };
}

export function jwks(...keys: SigningKey[]): string {
  return JSON.stringify({ keys: keys.map((k) => k.jwk) });
}

export function signJwt(key: SigningKey, payload: Record<string, unknown>, header: Record<string, unknown> = {}): string {
  const h = Buffer.from(JSON.stringify({ alg: key.alg, typ: 'JWT', kid: key.kid, ...header })).toString('base64url');
  const p = Buffer.from(JSON.stringify(payload)).toString('base64url');
  const input = Buffer.from(`${h}.${p}`);
  const hash = key.alg === 'EdDSA' ? null : key.alg.endsWith('384') ? 'sha384' : 'sha256';
  const opts =
    key.alg.startsWith('ES') ? { key: key.privateKey, dsaEncoding: 'ieee-p1363' as const }
    : key.alg.startsWith('PS') ? { key: key.privateKey, padding: 6, saltLength: -1 }
    : key.privateKey;
  return `${h}.${p}.${sign(hash, input, opts).toString('base64url')}`;
}
