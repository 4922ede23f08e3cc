// Mutual TLS between proxies: the TLS options a proxy serves and dials with,
// built from its workload certificate, and the SPIFFE checks on the peer.
// Chain validation (the mesh roots, expiry) is OpenSSL's; on top of it a
// client checks secure naming — the server's SPIFFE ID must be one the
// destination service may run as — instead of a DNS host name, which mesh
// certificates do not carry. Contexts are rebuilt on rotation and swapped in
// (server.setSecureContext, and the next dial): open connections keep the
// certificate they were made with, so rotation drops nothing.
import tls from 'node:tls';
import type { PeerCertificate, SecureContext, TLSSocket } from 'node:tls';
import type { WorkloadCertificate } from './identity-manager.ts';

/** ALPN offered on mesh TLS: HTTP/2 first, so two proxies multiplex. */
export const MESH_ALPN = ['h2', 'http/1.1'];

/** The SPIFFE ID in a certificate's URI SAN, or undefined. */
export function spiffeIdOf(cert: PeerCertificate | undefined): string | undefined {
  const san = cert?.subjectaltname;
  if (typeof san !== 'string') return undefined;
  for (const part of san.split(', ')) {
    if (part.startsWith('URI:spiffe://')) return part.slice(4);
  }
  return undefined;
}

/** The verified peer identity of an mTLS socket (undefined for plaintext or an unverified peer). */
export function peerSpiffeId(socket: TLSSocket): string | undefined {
  if (!socket.authorized) return undefined;
  return spiffeIdOf(socket.getPeerCertificate());
}

/** Secure context for both roles: our key and chain, the mesh roots as the only trust. */
export function meshSecureContext(cert: WorkloadCertificate): SecureContext {
  return tls.createSecureContext({
    key: cert.keyPem,
    cert: cert.certChainPem,
    ca: cert.trustBundle,
    minVersion: 'TLSv1.2',
  });
}

/**
 * Options for a mesh TLS server (inbound side): a client certificate from the
 * mesh is required. On rotation, hand the next certificate's options to
 * `server.setSecureContext`.
 */
export function meshServerOptions(cert: WorkloadCertificate): tls.TlsOptions {
  return {
    key: cert.keyPem,
    cert: cert.certChainPem,
    ca: cert.trustBundle,
    minVersion: 'TLSv1.2',
    requestCert: true,
    rejectUnauthorized: true,
    ALPNProtocols: MESH_ALPN,
  };
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

/** Options to dial a mesh TLS server that must run as one of `allowedIds` (secure naming). */
export function meshClientOptions(context: SecureContext, allowedIds: readonly string[], alpn: readonly string[] = MESH_ALPN): tls.ConnectionOptions {
  return {
    secureContext: context,
    rejectUnauthorized: true,
    ALPNProtocols: [...alpn],
    // Mesh certificates name a workload, not a host: check the SPIFFE ID instead of the host name.
    checkServerIdentity: (_host, peer) => {
      const problem = secureNamingProblem(peer, allowedIds);
      return problem === undefined ? undefined : new Error(problem);
    },
  };
}

/** True when the first bytes of a connection are a TLS handshake record (ClientHello). */
export function looksLikeTls(head: Buffer): boolean {
  return head.length >= 3 && head[0] === 0x16 && head[1] === 0x03 && head[2] <= 0x04;
}
