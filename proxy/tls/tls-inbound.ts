// Terminates TLS on connections a listener accepted: mesh mTLS on inbound
// ports (PeerAuthentication STRICT / PERMISSIVE) and operator TLS on gateway
// ports (Gateway servers[].tls). A connection is first read as plain bytes
// (the listener sniffs them), then handed to a tls.Server that never listens
// itself: the bytes already read go back into the socket, which TLSSocket
// consumes before reading on, so a PERMISSIVE port tells TLS from plaintext
// on the same port without losing a byte.
//
// Client certificates are requested but checked here rather than by OpenSSL's
// reject, so that a refusal can say why (no certificate, unknown CA, expired,
// wrong identity) in the log and in the counters; a refused connection is
// destroyed before any of its bytes reach a request. Rotation swaps the
// server's secure context; connections already up keep theirs.
import tls from 'node:tls';
import type { Socket } from 'node:net';
import type { PeerCertificate, SecureContextOptions, TLSSocket } from 'node:tls';
import { spiffeIdOf } from '../identity/mesh-tls.ts';
import type { ProxyLogger } from '../proxy-logger.ts';
import type { ProxyStats } from '../stats/proxy-stats.ts';
import type { MeshIdentity } from './mesh-identity.ts';
import { trustDomainOf } from './mesh-identity.ts';
import { MESH_ALPN_MARKER, clientHelloAlpn } from './tls-client-hello.ts';

/** Why a TLS client was refused. */
export type TlsRefusal = 'no_certificate' | 'unknown_ca' | 'expired' | 'wrong_identity' | 'handshake_error';

/** ALPN a mesh server accepts, in its order of preference (the client's application protocol wins over the marker). */
export const MESH_SERVER_ALPN = ['h2', 'http/1.1', MESH_ALPN_MARKER];

const kPeerIdentity = Symbol.for('jibe.tls.peerIdentity');
type TaggedSocket = Socket & { [kPeerIdentity]?: string };

/** The verified SPIFFE ID of the peer of a socket that mesh mTLS was terminated on; undefined otherwise. */
export function peerIdentityOf(socket: Socket | undefined | null): string | undefined {
  return socket === undefined || socket === null ? undefined : (socket as TaggedSocket)[kPeerIdentity];
}

export interface TlsAcceptorOptions {
  /** For logs: `mesh` or the gateway server's name. */
  name: string;
  context: SecureContextOptions;
  requestCert: boolean;
  alpn: string[];
  /** A problem with the verified (or not) peer, or undefined to accept it; `cert` is the peer's ({} when it sent none). */
  check?: (socket: TLSSocket, cert: PeerCertificate) => { reason: TlsRefusal; detail: string } | undefined;
  /** What an accepted peer is known as (tagged on the socket for authz and telemetry). */
  peerIdentity?: (cert: PeerCertificate) => string | undefined;
  stats: ProxyStats;
  logger: ProxyLogger;
}

type OnSecure = (socket: TLSSocket) => void;

interface Pending {
  listener: string;
  onSecure: OnSecure;
}

export class TlsAcceptor {
  private readonly options: TlsAcceptorOptions;
  private readonly server: tls.Server;
  /** Connections in their handshake, by the TCP 4-tuple (unique while they live). */
  private readonly pending = new Map<string, Pending>();

  constructor(options: TlsAcceptorOptions) {
    this.options = options;
    this.server = tls.createServer({
      ...options.context,
      requestCert: options.requestCert,
      // Checked in onSecure, so a refusal is logged with its reason.
      rejectUnauthorized: false,
      ALPNProtocols: options.alpn,
    });
    this.server.on('secureConnection', (socket: TLSSocket) => this.onSecure(socket));
    this.server.on('tlsClientError', (err: Error & { code?: string }, socket: TLSSocket) => this.onClientError(err, socket));
  }

  /** New key, certificate or roots for connections accepted from now on. */
  setContext(context: SecureContextOptions): void {
    this.server.setSecureContext({ ...context });
  }

  /**
   * Runs the TLS handshake on `raw`; `head` are bytes already read from it.
   * `onSecure` gets the decrypted socket once the peer is accepted; a refused
   * peer is logged, counted and cut.
   */
  accept(raw: Socket, head: Buffer | undefined, listener: string, onSecure: OnSecure): void {
    const key = tupleKey(raw);
    this.pending.set(key, { listener, onSecure });
    raw.once('close', () => this.pending.delete(key));
    raw.pause();
    if (head !== undefined && head.length > 0) raw.unshift(head);
    this.server.emit('connection', raw);
  }

  private onSecure(socket: TLSSocket): void {
    const key = tupleKey(socket);
    const pending = this.pending.get(key);
    this.pending.delete(key);
    if (pending === undefined) {
      socket.destroy();
      return;
    }
    const { check, peerIdentity } = this.options;
    if (check !== undefined || peerIdentity !== undefined) {
      // Read once: each call builds a new object from the DER (public key, raw bytes and all).
      const cert = socket.getPeerCertificate();
      const problem = check?.(socket, cert);
      if (problem !== undefined) {
        this.refuse(pending.listener, socket, problem.reason, problem.detail);
        socket.destroy();
        return;
      }
      const id = peerIdentity?.(cert);
      if (id !== undefined) (socket as TaggedSocket)[kPeerIdentity] = id;
    }
    this.options.stats.ssl_handshake++;
    pending.onSecure(socket);
  }

  private onClientError(err: Error & { code?: string }, socket: TLSSocket): void {
    const key = tupleKey(socket);
    const pending = this.pending.get(key);
    this.pending.delete(key);
    // A client that went away mid-handshake is not a TLS problem worth a warning.
    if (err.code === 'ECONNRESET' || err.code === 'EPIPE') {
      this.options.stats.ssl_connection_error++;
      return;
    }
    this.refuse(pending?.listener ?? this.options.name, socket, 'handshake_error', err.message);
  }

  private refuse(listener: string, socket: TLSSocket, reason: TlsRefusal, detail: string): void {
    const stats = this.options.stats;
    if (reason === 'no_certificate') stats.ssl_fail_verify_no_cert++;
    else if (reason === 'unknown_ca') stats.ssl_fail_verify_error++;
    else if (reason === 'expired') stats.ssl_fail_verify_expired++;
    else if (reason === 'wrong_identity') stats.ssl_fail_verify_san++;
    else stats.ssl_connection_error++;
    this.options.logger.warn({ listener, tls: this.options.name, peer: `${socket.remoteAddress}:${socket.remotePort}`, reason, detail }, 'TLS client refused');
  }
}

function tupleKey(s: Socket): string {
  return `${s.remoteAddress}|${s.remotePort}|${s.localAddress}|${s.localPort}`;
}

/** Why a peer's certificate is refused, from what OpenSSL found; undefined when it verified. */
export function certificateProblem(socket: TLSSocket, cert: PeerCertificate): { reason: TlsRefusal; detail: string } | undefined {
  if (cert === null || cert === undefined || Object.keys(cert).length === 0) return { reason: 'no_certificate', detail: 'the client presented no certificate' };
  if (socket.authorized) return undefined;
  const code = String(socket.authorizationError ?? 'UNKNOWN');
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') return { reason: 'expired', detail: `${code}: valid ${cert.valid_from} to ${cert.valid_to}` };
  return { reason: 'unknown_ca', detail: `${code}: issued by ${issuerName(cert)}, not a root this proxy trusts` };
}

function issuerName(cert: PeerCertificate): string {
  const issuer = cert.issuer as unknown as Record<string, string> | undefined;
  return issuer?.CN ?? issuer?.O ?? 'an unknown issuer';
}

/** The mesh mTLS acceptor of a proxy: its workload certificate, mesh roots only, a SPIFFE ID of its trust domain required. */
export function meshTlsAcceptor(identity: MeshIdentity, stats: ProxyStats, logger: ProxyLogger): TlsAcceptor {
  const context = (): SecureContextOptions => ({ key: identity.certificate.keyPem, cert: identity.certificate.certChainPem, ca: identity.roots(), minVersion: 'TLSv1.2' });
  const acceptor = new TlsAcceptor({
    name: 'mesh',
    context: context(),
    requestCert: true,
    alpn: MESH_SERVER_ALPN,
    check: (socket, cert) => {
      const problem = certificateProblem(socket, cert);
      if (problem !== undefined) return problem;
      const id = spiffeIdOf(cert);
      if (id === undefined) return { reason: 'wrong_identity', detail: 'the client certificate carries no SPIFFE ID' };
      const domain = trustDomainOf(id);
      if (domain !== identity.trustDomain) return { reason: 'wrong_identity', detail: `${id} is not of trust domain ${identity.trustDomain}` };
      return undefined;
    },
    peerIdentity: spiffeIdOf,
    stats,
    logger,
  });
  identity.onChange(() => acceptor.setContext(context()));
  return acceptor;
}

/** What to do with a connection on an inbound port given its first bytes. */
export type InboundVerdict = 'tls' | 'plain' | 'refuse' | 'passthrough';

/**
 * PeerAuthentication on one connection. STRICT: TLS only (terminated as mesh
 * mTLS), anything else refused. PERMISSIVE: TLS terminated, plaintext served
 * as is. DISABLE: bytes served as they come. Without a certificate the proxy
 * cannot terminate, so TLS is then served as plain bytes (PERMISSIVE, DISABLE)
 * or refused (STRICT). `appTlsPassthrough` (tcp and auto ports): under
 * PERMISSIVE a ClientHello without the mesh marker is the app's own TLS and
 * is relayed. Returns undefined while more bytes are needed to tell.
 */
export function inboundVerdict(mode: 'STRICT' | 'PERMISSIVE' | 'DISABLE' | undefined, head: Buffer, hasIdentity: boolean, appTlsPassthrough: boolean): InboundVerdict | undefined {
  if (mode === 'DISABLE') return 'plain';
  if (head.length === 0) return undefined;
  const isTls = head[0] === 0x16 && (head.length < 2 || head[1] === 0x03) && (head.length < 3 || head[2] <= 0x04);
  if (isTls && head.length < 3) return undefined;
  if (!isTls) return mode === 'STRICT' ? 'refuse' : 'plain';
  if (!hasIdentity) return mode === 'STRICT' ? 'refuse' : 'plain';
  if (mode === 'STRICT' || !appTlsPassthrough) return 'tls';
  const alpn = clientHelloAlpn(head);
  if (alpn === undefined) return undefined;
  return alpn !== null && alpn.includes(MESH_ALPN_MARKER) ? 'tls' : 'passthrough';
}
