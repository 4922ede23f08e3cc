// The discovery stream over TLS (port 15012): the control plane serves with a
// certificate from its own CA, as `spiffe://<td>/ns/<root ns>/sa/jibe-control-plane`,
// and requires each proxy to present its workload certificate. The serving
// certificate is renewed at half-life and whenever the CA's roots change; grpc-js
// takes both through a certificate provider, so renewal needs no restart and
// open streams keep going.
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { PeerCertificate } from 'node:tls';
import type { CertificateAuthority } from '../ca/certificate-authority.ts';
import { parseWorkloadSpiffeId, workloadSpiffeId } from '../ca/spiffe-id.ts';
import type { ProxyNode } from '../model/proxy-config.ts';

type CaListener = (update: { caCertificate: Buffer } | null) => void;
type IdentityListener = (update: { certificate: Buffer; privateKey: Buffer } | null) => void;

export const CONTROL_PLANE_SERVICE_ACCOUNT = 'jibe-control-plane';

export function controlPlaneSpiffeId(trustDomain: string, rootNamespace: string): string {
  return workloadSpiffeId(trustDomain, rootNamespace, CONTROL_PLANE_SERVICE_ACCOUNT);
}

/** The control plane's serving identity as a grpc-js certificate provider. */
export class ControlPlaneIdentity {
  readonly spiffeId: string;
  private readonly ca: CertificateAuthority;
  private readonly logger: Logger | undefined;
  private readonly caListeners = new Set<CaListener>();
  private readonly identityListeners = new Set<IdentityListener>();
  private ca$: { caCertificate: Buffer } | undefined;
  private identity$: { certificate: Buffer; privateKey: Buffer } | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private unsubscribe: (() => void) | undefined;

  private constructor(ca: CertificateAuthority, spiffeId: string, logger?: Logger) {
    this.ca = ca;
    this.spiffeId = spiffeId;
    this.logger = logger;
  }

  static async start(ca: CertificateAuthority, spiffeId: string, logger?: Logger): Promise<ControlPlaneIdentity> {
    const identity = new ControlPlaneIdentity(ca, spiffeId, logger);
    await identity.renew();
    identity.unsubscribe = ca.onChange(() => void identity.renew());
    return identity;
  }

  stop(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.unsubscribe?.();
  }

  private async renew(): Promise<void> {
    try {
      const own = await this.ca.issueOwn(this.spiffeId);
      this.identity$ = { certificate: Buffer.from(own.certChainPem), privateKey: Buffer.from(own.keyPem) };
      this.ca$ = { caCertificate: Buffer.from(this.ca.trustBundle().join('')) };
      for (const l of this.caListeners) l(this.ca$);
      for (const l of this.identityListeners) l(this.identity$);
      const halfLife = (own.expiresAt.getTime() - Date.now()) / 2;
      this.schedule(halfLife);
    } catch (err) {
      this.logger?.error({ err }, 'renewing the discovery serving certificate failed; retrying in 30 s');
      this.schedule(30_000);
    }
  }

  private schedule(ms: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.renew(), Math.max(1000, Math.min(ms, 2 ** 31 - 1)));
    this.timer.unref();
  }

  // grpc-js subscribes before it registers the watcher that applies updates,
  // so the current certificate is delivered on the next tick, not synchronously.
  addCaCertificateListener(listener: CaListener): void {
    this.caListeners.add(listener);
    queueMicrotask(() => this.ca$ && this.caListeners.has(listener) && listener(this.ca$));
  }
  removeCaCertificateListener(listener: CaListener): void {
    this.caListeners.delete(listener);
  }
  addIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.add(listener);
    queueMicrotask(() => this.identity$ && this.identityListeners.has(listener) && listener(this.identity$));
  }
  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.delete(listener);
  }

  /** gRPC server credentials: this identity, the mesh roots, client certificates required. */
  credentials(): grpc.ServerCredentials {
    return grpc.experimental.createCertificateProviderServerCredentials(this, this, true);
  }
}

/** The SPIFFE ID in a verified peer certificate's URI SAN. */
export function peerSpiffeId(cert: PeerCertificate | undefined): string | undefined {
  const san = cert?.subjectaltname;
  if (typeof san !== 'string') return undefined;
  return san.split(', ').find((p) => p.startsWith('URI:spiffe://'))?.slice(4);
}

/**
 * Why a proxy presenting `spiffeId` may not subscribe as `node`, or undefined
 * when it may: a proxy gets config only for its own namespace, and a sidecar
 * only for a workload whose service account its certificate names.
 */
export function nodeIdentityProblem(node: ProxyNode, spiffeId: string | undefined, workloadServiceAccount: (namespace: string, name: string) => string | undefined): string | undefined {
  if (spiffeId === undefined) return 'the discovery TLS port needs a workload certificate';
  const id = parseWorkloadSpiffeId(spiffeId);
  if (!id) return `${spiffeId} is not a workload identity`;
  if (id.namespace !== node.namespace) return `${spiffeId} may not subscribe for namespace ${node.namespace}`;
  if (node.type === 'sidecar' && node.workload !== undefined) {
    const sa = workloadServiceAccount(node.namespace, node.workload);
    if (sa !== undefined && sa !== id.serviceAccount) return `${spiffeId} may not subscribe for workload ${node.namespace}/${node.workload}, which runs as service account ${sa}`;
  }
  return undefined;
}
