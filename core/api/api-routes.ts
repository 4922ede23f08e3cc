// Routes a platform adds to the control plane's API (the vm platform: join
// tokens, and registration by VMs over TLS), without core importing the
// platform: a registry plugin that has `apiRoutes(host)` contributes them.
// On the TLS port only routes marked `tls` are reachable; a route that acts on
// behalf of a workload must check `peerIdentity(req)` (below) itself.
import type http from 'node:http';
import type { TLSSocket } from 'node:tls';
import { parseWorkloadSpiffeId } from '../ca/spiffe-id.ts';
import type { WorkloadIdentity } from '../ca/spiffe-id.ts';
import { peerSpiffeId } from '../discovery/discovery-tls.ts';
import { JibeError } from '../errors/errors.ts';

export type ApiHandler = (req: http.IncomingMessage, params: string[], body: unknown, url: URL) => Promise<unknown>;

export interface ApiRoute {
  method: string;
  pattern: RegExp;
  handler: ApiHandler;
  /** Also served on the TLS port (reachable by VMs). Default: loopback HTTP only. */
  tls?: boolean;
}

/** What the control plane offers a platform's routes. */
export interface ApiExtensionHost {
  trustDomain: string;
  /** The control plane's own SPIFFE ID (VMs check it in the serving certificate). */
  controlPlaneSpiffeId: string;
  /** Throws JIBE_ERR_UNAUTHENTICATED unless the request carries the admin token. */
  requireAdmin(req: http.IncomingMessage): void;
  /** SHA-256 (hex) of the DER of the root a join token should pin (the newest). */
  rootSha256(): string;
  /** `host:port` addresses VMs reach the TLS API at; empty when it is off. */
  tlsAddresses(): string[];
  /** Ports of the discovery stream, for agents that start a sidecar. */
  discoveryPorts(): { plain: number; tls?: number };
}

export interface ApiExtension {
  apiRoutes(host: ApiExtensionHost): ApiRoute[];
}

export function isApiExtension(x: unknown): x is ApiExtension {
  return typeof (x as Partial<ApiExtension> | undefined)?.apiRoutes === 'function';
}

/**
 * The workload identity of the client certificate the TLS port verified
 * against the mesh roots; undefined on plain HTTP, without a certificate, or
 * with one that did not verify (expired, another CA).
 */
export function peerIdentity(req: http.IncomingMessage): WorkloadIdentity | undefined {
  const socket = req.socket as Partial<TLSSocket>;
  if (!socket.encrypted || !socket.authorized || typeof socket.getPeerCertificate !== 'function') return undefined;
  const spiffeId = peerSpiffeId(socket.getPeerCertificate());
  const parsed = spiffeId === undefined ? undefined : parseWorkloadSpiffeId(spiffeId);
  return parsed && spiffeId ? { spiffeId, namespace: parsed.namespace, serviceAccount: parsed.serviceAccount } : undefined;
}

/** peerIdentity, or JIBE_ERR_UNAUTHENTICATED saying a workload certificate is needed. */
export function requirePeerIdentity(req: http.IncomingMessage): WorkloadIdentity {
  const identity = peerIdentity(req);
  if (!identity) {
    throw new JibeError('JIBE_ERR_UNAUTHENTICATED', 'this endpoint needs a workload certificate of this mesh, presented over the TLS API port', {
      hint: 'the node agent obtains one with its join token; renew it if it expired (join again with a new token)',
    });
  }
  return identity;
}
