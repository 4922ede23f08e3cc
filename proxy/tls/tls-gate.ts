// The decision every accepted connection of an inbound or gateway listener
// passes before it is served: terminate TLS (mesh mTLS per PeerAuthentication,
// or the gateway's operator certificate), serve the bytes as they are, or
// refuse. Listeners call it with the connection's first bytes; the listener
// resource is read per connection, so a changed mode applies to the next
// connection without rebinding the port.
import fs from 'node:fs';
import type { Socket } from 'node:net';
import type { PeerCertificate, SecureContextOptions, TLSSocket } from 'node:tls';
import type { ListenerResource, ListenerTls } from '../../core/model/proxy-config.ts';
import { spiffeIdOf, subjectAltNameProblem } from '../identity/mesh-tls.ts';
import type { ProxyLogger } from '../proxy-logger.ts';
import type { ProxyStats } from '../stats/proxy-stats.ts';
import { TlsAcceptor, certificateProblem, inboundVerdict } from './tls-inbound.ts';
import type { InboundVerdict } from './tls-inbound.ts';

export interface TlsGateDeps {
  /** Mesh mTLS acceptor; undefined when the proxy has no workload certificate. */
  mesh: TlsAcceptor | undefined;
  stats: ProxyStats;
  logger: ProxyLogger;
}

export interface GateDecision {
  verdict: InboundVerdict;
  /** For `tls`: who terminates it. */
  acceptor?: TlsAcceptor;
}

const GATEWAY_ALPN = ['h2', 'http/1.1'];

export class TlsGate {
  private readonly deps: TlsGateDeps;
  private readonly gateways = new WeakMap<ListenerTls, TlsAcceptor | Error>();
  private plaintextLogged = 0;

  constructor(deps: TlsGateDeps) {
    this.deps = deps;
  }

  /** Whether a connection of `resource` must pass the gate (false: serve it as before, no bytes inspected). */
  applies(resource: ListenerResource): boolean {
    if (resource.direction === 'gateway') return resource.tls !== undefined;
    if (resource.direction !== 'inbound' || resource.mtls === 'DISABLE') return false;
    return this.deps.mesh !== undefined || resource.mtls === 'STRICT';
  }

  /**
   * What to do given the first bytes; undefined while they do not tell yet.
   * `final`: no more bytes will come in time (the wait ran out or the client
   * half-closed), so a decision is forced.
   */
  decide(resource: ListenerResource, head: Buffer, final: boolean): GateDecision | undefined {
    if (resource.direction === 'gateway') {
      if (resource.tls === undefined) return { verdict: 'plain' };
      if (head.length === 0) return final ? { verdict: 'refuse' } : undefined;
      // An operator-TLS port speaks TLS only; Envoy's gateway resets anything else.
      const verdict = inboundVerdict('STRICT', head, true, false);
      if (verdict === undefined) return final ? { verdict: 'refuse' } : undefined;
      if (verdict !== 'tls') return { verdict };
      const acceptor = this.gatewayAcceptor(resource);
      return acceptor === undefined ? { verdict: 'refuse' } : { verdict: 'tls', acceptor };
    }
    const mesh = this.deps.mesh;
    const appTls = resource.protocol !== 'http';
    const verdict = inboundVerdict(resource.mtls, head, mesh !== undefined, appTls);
    if (verdict === undefined) {
      if (!final) return undefined;
      // A server-first protocol said nothing: plaintext, which STRICT refuses.
      return { verdict: resource.mtls === 'STRICT' ? 'refuse' : head.length > 0 && appTls ? 'passthrough' : 'plain' };
    }
    return verdict === 'tls' ? { verdict, acceptor: mesh } : { verdict };
  }

  /** Counts and logs (at most once a second) a connection refused for not speaking TLS. */
  refused(listener: string, socket: Socket, resource: ListenerResource): void {
    this.deps.stats.ssl_plaintext_refused++;
    const now = Date.now();
    if (now - this.plaintextLogged < 1000) return;
    this.plaintextLogged = now;
    const why =
      resource.direction === 'gateway'
        ? 'this gateway port terminates TLS and the client did not start a TLS handshake'
        : this.deps.mesh === undefined
          ? 'PeerAuthentication STRICT needs mesh mTLS, and this proxy has no workload certificate to terminate it with'
          : 'PeerAuthentication STRICT: the client sent plaintext, only mesh mTLS is accepted';
    this.deps.logger.warn({ listener, peer: `${socket.remoteAddress}:${socket.remotePort}`, reason: 'plaintext' }, why);
  }

  private gatewayAcceptor(resource: ListenerResource): TlsAcceptor | undefined {
    const t = resource.tls!;
    let acceptor = this.gateways.get(t);
    if (acceptor === undefined) {
      try {
        acceptor = new TlsAcceptor({
          name: `gateway ${resource.name}`,
          context: gatewayContext(t),
          requestCert: t.mode === 'MUTUAL',
          alpn: GATEWAY_ALPN,
          check: t.mode === 'MUTUAL' ? (socket, cert) => clientProblem(socket, cert, t.subjectAltNames ?? []) : undefined,
          peerIdentity: t.mode === 'MUTUAL' ? spiffeIdOf : undefined,
          stats: this.deps.stats,
          logger: this.deps.logger,
        });
      } catch (err) {
        acceptor = err as Error;
        this.deps.logger.error({ listener: resource.name, err: acceptor.message }, 'gateway TLS credentials cannot be used: TLS connections on this port are refused');
      }
      this.gateways.set(t, acceptor);
    }
    return acceptor instanceof TlsAcceptor ? acceptor : undefined;
  }
}

function gatewayContext(t: ListenerTls): SecureContextOptions {
  const read = (pem: string | undefined, file: string | undefined, what: string): string | undefined => {
    if (pem !== undefined) return pem;
    if (file === undefined) return undefined;
    try {
      return fs.readFileSync(file, 'utf8');
    } catch (err) {
      throw new Error(`${what} ${file}: ${(err as Error).message}`, { cause: err });
    }
  };
  const cert = read(t.certificatePem, t.serverCertificate, 'serverCertificate');
  const key = read(t.privateKeyPem, t.privateKey, 'privateKey');
  if (cert === undefined || key === undefined) throw new Error('a TLS gateway server needs a certificate and a private key (credentialName, or serverCertificate and privateKey)');
  const ca = read(t.caCertificatesPem, t.caCertificates, 'caCertificates');
  if (t.mode === 'MUTUAL' && ca === undefined) throw new Error('MUTUAL needs the CA that client certificates chain to (caCertificates, or ca.crt in the credential)');
  return { cert, key, ...(ca !== undefined ? { ca } : {}), minVersion: t.minProtocolVersion ?? 'TLSv1.2' };
}

function clientProblem(socket: TLSSocket, cert: PeerCertificate, sans: readonly string[]): ReturnType<typeof certificateProblem> {
  const problem = certificateProblem(socket, cert);
  if (problem !== undefined || sans.length === 0) return problem;
  const detail = subjectAltNameProblem(cert, sans, 'client');
  return detail === undefined ? undefined : { reason: 'wrong_identity', detail };
}
