// The mesh at one moment: every service and workload from every platform, and
// every rule, under one version. Immutable once built; the discovery server
// computes each proxy's config from it.
import type { TlsCredential } from '../model/credential.ts';
import type { MeshConfig } from '../model/mesh-config.ts';
import type { DestinationRule, Gateway, VirtualService } from '../model/networking.ts';
import type { RateLimit } from '../model/rate-limit.ts';
import { ROOT_NAMESPACE } from '../model/resource.ts';
import type { AuthorizationPolicy, PeerAuthentication, RequestAuthentication } from '../model/security.ts';
import type { Service } from '../model/service.ts';
import type { Workload } from '../model/workload.ts';

export interface MeshSettings {
  /** DNS suffix of service host names (`cluster.local`). */
  domain: string;
  trustDomain: string;
  /** Namespace whose policies apply mesh-wide. */
  rootNamespace: string;
  /** What a sidecar does with traffic to a host no service matches. */
  outboundTrafficPolicy: 'ALLOW_ANY' | 'REGISTRY_ONLY';
}

export interface MeshSnapshot {
  /** Increases with every change. */
  version: number;
  settings: MeshSettings;
  /** By canonical host name. Includes ServiceEntry hosts. */
  services: ReadonlyMap<string, Service>;
  /** Every workload of every platform (ServiceEntry endpoints and WorkloadEntries included). */
  workloads: readonly Workload[];
  /** Workloads serving each service host (derived from `workloads[].services`). */
  workloadsByService: ReadonlyMap<string, readonly Workload[]>;
  virtualServices: readonly VirtualService[];
  destinationRules: readonly DestinationRule[];
  gateways: readonly Gateway[];
  /** Security policies (absent in snapshots built before they existed = none). */
  peerAuthentications?: readonly PeerAuthentication[];
  authorizationPolicies?: readonly AuthorizationPolicy[];
  requestAuthentications?: readonly RequestAuthentication[];
  /** Local rate limits (absent = none). */
  rateLimits?: readonly RateLimit[];
  /** The MeshConfig of the root namespace, when one was applied; it overrides `settings`. */
  meshConfig?: MeshConfig;
  /** PEM roots of the mesh CA (the `mesh` resource carries them to proxies); absent = none pushed. */
  trustBundle?: readonly string[];
  /** Operators' TLS credentials by `<namespace>/<name>` (Gateway `credentialName`); absent = none. */
  credentials?: ReadonlyMap<string, TlsCredential>;
}

export const DEFAULT_MESH_SETTINGS: MeshSettings = {
  domain: 'cluster.local',
  trustDomain: 'cluster.local',
  // Apply-time validation (MeshConfig placement, CUSTOM providers) checks against the same constant.
  rootNamespace: ROOT_NAMESPACE,
  outboundTrafficPolicy: 'ALLOW_ANY',
};

/** Builds the service → workloads index. */
export function indexWorkloads(workloads: readonly Workload[]): Map<string, Workload[]> {
  const index = new Map<string, Workload[]>();
  for (const w of workloads) {
    for (const binding of w.services) {
      let list = index.get(binding.hostname);
      if (!list) index.set(binding.hostname, (list = []));
      list.push(w);
    }
  }
  return index;
}
