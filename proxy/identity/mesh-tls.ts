// Identity checks on mesh TLS peers. Chain validation (the mesh roots,
// expiry) is OpenSSL's; on top of it a client checks secure naming — the
// server's SPIFFE ID must be one the destination service may run as —
// instead of a DNS host name, which mesh certificates do not carry. The TLS
// contexts themselves are built by proxy/tls (MeshIdentity, TlsAcceptor,
// UpstreamTlsFactory).
import type { PeerCertificate } from 'node:tls';

/** The SPIFFE ID in a certificate's URI SAN, or undefined. */
export function spiffeIdOf(cert: PeerCertificate | undefined): string | undefined {
  const san = cert?.subjectaltname;
  if (typeof san !== 'string') return undefined;
  for (const part of san.split(', ')) {
    if (part.startsWith('URI:spiffe://')) return part.slice(4);
  }
  return undefined;
}

/**
 * Why a server's identity is refused, or undefined when it is one of
 * `allowed` (an empty list allows any identity of the mesh's roots).
 */
export function secureNamingProblem(peer: PeerCertificate | undefined, allowed: readonly string[]): string | undefined {
  const id = spiffeIdOf(peer);
  if (id === undefined) return 'the server certificate carries no SPIFFE ID';
  if (allowed.length > 0 && !allowed.includes(id)) return `the server is ${id}, not one of ${allowed.join(', ')}`;
  return undefined;
}

/**
 * Why a certificate names none of `sans` (matched against its SAN values of
 * any type: DNS, URI, IP), or undefined when it names one of them.
 */
export function subjectAltNameProblem(cert: PeerCertificate, sans: readonly string[], role: 'client' | 'server'): string | undefined {
  const names = (cert.subjectaltname ?? '').split(', ').map((s) => s.slice(s.indexOf(':') + 1));
  return sans.some((n) => names.includes(n)) ? undefined : `the ${role} certificate names ${names.join(', ') || 'nothing'}, none of ${sans.join(', ')}`;
}
