// A workload instance (pod, VM, Consul service instance): the endpoints of services.
import type { PlatformName } from './service.ts';

export interface Locality {
  region?: string;
  zone?: string;
  subzone?: string;
}

/** Membership of a workload in a service: which service ports it serves, on which of its own ports. */
export interface WorkloadServiceBinding {
  /** Canonical host name of the service. */
  hostname: string;
  /** Service port number → the port the workload's app listens on. */
  ports: Record<number, number>;
}

/** What a VM's node agent reports about its host (the WorkloadEntry's context; shown, never routed on). */
export interface HostFacts {
  hostname: string;
  /** e.g. `linux debian 12 (x64)`. */
  os?: string;
  interfaces?: Array<{ name: string; addresses: string[] }>;
  /** Every non-loopback address of the host. */
  addresses?: string[];
}

export interface Workload {
  /** Unique within the namespace and platform, e.g. `reviews-v1`. */
  name: string;
  namespace: string;
  platform: PlatformName;
  /** IP address (or host name for DNS endpoints) peers dial. */
  address: string;
  labels: Record<string, string>;
  serviceAccount: string;
  /** SPIFFE identity derived from namespace and service account. */
  identity: string;
  health: 'healthy' | 'unhealthy';
  locality?: Locality;
  services: WorkloadServiceBinding[];
  /**
   * Present when the workload runs a Jibe sidecar. Without traffic capture, the
   * sidecar accepts inbound traffic on its own port for each app port
   * (`inboundPorts[appPort] = listenPort`) and peers dial that port instead.
   */
  proxy?: {
    inboundPorts?: Record<number, number>;
  };
  /** Host facts of a VM, as its node agent registered them. */
  host?: HostFacts;
}

export const DEFAULT_TRUST_DOMAIN = 'cluster.local';

export function spiffeId(namespace: string, serviceAccount: string, trustDomain = DEFAULT_TRUST_DOMAIN): string {
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
}

export function workloadKey(w: Pick<Workload, 'platform' | 'namespace' | 'name'>): string {
  return `${w.platform}/${w.namespace}/${w.name}`;
}
