// How the proxy dials a cluster's endpoints: plaintext, mesh mTLS, or TLS
// with the operator's files, decided per endpoint from the cluster's
// UpstreamTls (Istio's DestinationRule trafficPolicy.tls) and whether the
// endpoint runs a Jibe proxy (auto mTLS):
//   AUTO (or no tls)   mesh mTLS to endpoints marked mtlsReady, plaintext to the rest
//   ISTIO_MUTUAL       mesh mTLS always
//   DISABLE            plaintext always
//   SIMPLE / MUTUAL    TLS with the rule's CA (and client certificate for MUTUAL)
// Mesh mTLS checks secure naming: the server's SPIFFE ID must be one of the
// cluster's subjectAltNames (the identities the service's workloads run as).
// Options are computed at each dial, so a rotated certificate or a pushed root
// applies to the next connection while open ones keep going.
import fs from 'node:fs';
import tls from 'node:tls';
import type { ConnectionOptions, PeerCertificate, SecureContext } from 'node:tls';
import type { ClusterResource, Endpoint, UpstreamTls } from '../../core/model/proxy-config.ts';
import { secureNamingProblem, subjectAltNameProblem } from '../identity/mesh-tls.ts';
import type { ProxyLogger } from '../proxy-logger.ts';
import type { ProxyStats } from '../stats/proxy-stats.ts';
import type { MeshIdentity } from './mesh-identity.ts';
import { MESH_ALPN_MARKER } from './tls-client-hello.ts';

/** Application protocols offered per cluster protocol (the mesh marker is added for mesh mTLS). */
export const ALPN_HTTP1: readonly string[] = ['http/1.1'];
export const ALPN_HTTP2: readonly string[] = ['h2'];
export const ALPN_TCP: readonly string[] = [];

/** An upstream connection's TLS; one object per (cluster config, kind), shared by its endpoints' pools. */
export interface UpstreamTlsDial {
  /** `mesh` or `tls`: part of the pool key, so TLS and plaintext connections to one address never mix. */
  readonly kind: 'mesh' | 'tls';
  /** Options for tls.connect (host and port aside) offering `alpn`. */
  options(alpn: readonly string[]): ConnectionOptions;
  /** Counts and logs a connection that failed before its handshake completed. */
  failed(err: Error, endpoint: string): void;
  /** Counts a completed handshake. */
  connected(): void;
}

/** A server refused by secure naming (its identity is not one the service may run as). */
export class SecureNamingError extends Error {
  readonly code = 'ERR_JIBE_SECURE_NAMING';
}

export interface UpstreamTlsOptions {
  /** The proxy's mesh identity; undefined = no certificate (auto mTLS then dials plaintext). */
  identity: () => MeshIdentity | undefined;
  stats: ProxyStats;
  logger: ProxyLogger;
}

export class UpstreamTlsFactory {
  private readonly options: UpstreamTlsOptions;
  private readonly meshDials = new WeakMap<ClusterResource, UpstreamTlsDial>();
  private readonly fileDials = new WeakMap<ClusterResource, UpstreamTlsDial>();
  /** Failures logged per endpoint and reason within the current second, so a refused peer does not flood the log. */
  private logged = new Set<string>();
  private loggedAt = 0;

  constructor(options: UpstreamTlsOptions) {
    this.options = options;
  }

  /** The TLS to dial `endpoint` of `cluster` with; undefined = plaintext. */
  dialFor(cluster: ClusterResource, endpoint: Endpoint): UpstreamTlsDial | undefined {
    const mode = cluster.tls?.mode ?? 'AUTO';
    switch (mode) {
      case 'DISABLE':
        return undefined;
      case 'AUTO':
        return endpoint.mtlsReady === true && this.options.identity() !== undefined ? this.mesh(cluster) : undefined;
      case 'ISTIO_MUTUAL':
        return this.mesh(cluster);
      case 'SIMPLE':
      case 'MUTUAL':
        return this.files(cluster);
      default:
        return undefined;
    }
  }

  private mesh(cluster: ClusterResource): UpstreamTlsDial {
    let dial = this.meshDials.get(cluster);
    if (dial !== undefined) return dial;
    const allowed = cluster.tls?.subjectAltNames ?? [];
    const sni = cluster.tls?.sni;
    const checkServerIdentity = (_host: string, peer: PeerCertificate): Error | undefined => {
      const problem = secureNamingProblem(peer, allowed);
      return problem === undefined ? undefined : new SecureNamingError(`secure naming refused ${cluster.service || cluster.name}: ${problem}`);
    };
    let warnedNoIdentity = false;
    dial = {
      kind: 'mesh',
      options: (alpn) => {
        const identity = this.options.identity();
        if (identity === undefined && !warnedNoIdentity) {
          warnedNoIdentity = true;
          this.options.logger.warn({ cluster: cluster.name }, 'ISTIO_MUTUAL needs the proxy certificate, which this proxy does not have: connections to this cluster fail');
        }
        return {
          // Without a certificate no root is trusted either, so the handshake fails visibly.
          secureContext: identity?.secureContext() ?? emptyContext(),
          rejectUnauthorized: true,
          ALPNProtocols: [...alpn, MESH_ALPN_MARKER],
          checkServerIdentity,
          ...(sni !== undefined ? { servername: sni } : {}),
        };
      },
      failed: (err, endpoint) => this.failed(err, endpoint, cluster.name),
      connected: () => this.options.stats.ssl_upstream_handshake++,
    };
    this.meshDials.set(cluster, dial);
    return dial;
  }

  private files(cluster: ClusterResource): UpstreamTlsDial {
    let dial = this.fileDials.get(cluster);
    if (dial !== undefined) return dial;
    const t = cluster.tls as UpstreamTls;
    let context: SecureContext | undefined;
    let loadError: string | undefined;
    try {
      context = tls.createSecureContext({
        ...(t.caCertificates !== undefined ? { ca: fs.readFileSync(t.caCertificates, 'utf8') } : {}),
        ...(t.mode === 'MUTUAL' && t.clientCertificate !== undefined ? { cert: fs.readFileSync(t.clientCertificate, 'utf8') } : {}),
        ...(t.mode === 'MUTUAL' && t.privateKey !== undefined ? { key: fs.readFileSync(t.privateKey, 'utf8') } : {}),
        minVersion: 'TLSv1.2',
      });
    } catch (err) {
      loadError = (err as Error).message;
      this.options.logger.error({ cluster: cluster.name, err: loadError }, `DestinationRule tls ${t.mode}: the certificate files cannot be used; connections to this cluster fail`);
    }
    const sans = t.subjectAltNames ?? [];
    dial = {
      kind: 'tls',
      options: (alpn) => ({
        secureContext: context ?? emptyContext(),
        rejectUnauthorized: t.insecureSkipVerify !== true,
        ...(alpn.length > 0 ? { ALPNProtocols: [...alpn] } : {}),
        ...(t.sni !== undefined ? { servername: t.sni } : {}),
        checkServerIdentity: (host: string, peer: PeerCertificate) => {
          if (sans.length === 0) return tls.checkServerIdentity(t.sni ?? host, peer);
          const problem = subjectAltNameProblem(peer, sans, 'server');
          return problem === undefined ? undefined : new SecureNamingError(problem);
        },
      }),
      failed: (err, endpoint) => this.failed(err, endpoint, cluster.name),
      connected: () => this.options.stats.ssl_upstream_handshake++,
    };
    this.fileDials.set(cluster, dial);
    return dial;
  }

  private failed(err: Error & { code?: string }, endpoint: string, cluster: string): void {
    // Not reaching the endpoint at all is a connect failure, not a TLS one.
    if (err.code !== undefined && NETWORK_ERRORS.has(err.code)) return;
    const stats = this.options.stats;
    const naming = err instanceof SecureNamingError;
    if (naming) stats.ssl_upstream_fail_verify_san++;
    else stats.ssl_upstream_connection_error++;
    const now = Date.now();
    if (now - this.loggedAt > 1000) {
      this.logged = new Set();
      this.loggedAt = now;
    }
    const key = `${endpoint}|${err.message}`;
    if (this.logged.has(key)) return;
    this.logged.add(key);
    this.options.logger.warn({ cluster, upstream: endpoint, reason: naming ? 'wrong_identity' : upstreamReason(err), err: err.message }, 'upstream TLS handshake failed');
  }
}

const NETWORK_ERRORS = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'EADDRNOTAVAIL', 'ENOTFOUND', 'EAI_AGAIN', 'UPSTREAM_CONNECT_TIMEOUT']);

let empty: SecureContext | undefined;
function emptyContext(): SecureContext {
  return (empty ??= tls.createSecureContext({ ca: [] as string[] }));
}

function upstreamReason(err: Error & { code?: string }): string {
  const code = err.code ?? '';
  if (code === 'CERT_HAS_EXPIRED') return 'expired';
  if (code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' || code === 'SELF_SIGNED_CERT_IN_CHAIN' || code === 'DEPTH_ZERO_SELF_SIGNED_CERT' || code === 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY') return 'unknown_ca';
  if (/certificate required|peer did not return a certificate/i.test(err.message)) return 'no_certificate';
  return code || 'handshake_error';
}
