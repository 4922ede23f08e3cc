// Jibe's explicit cross-platform service mapping (`jibe.dev/v1alpha1`
// ServiceAlias). By default a host name is the join key: a Kubernetes Service,
// a Consul service and a VM registration that all come out as
// `reviews.default.svc.cluster.local` are one service. When the same service
// goes by another name on one platform (a Consul service `reviews-legacy`),
// a ServiceAlias says so, and that platform's service joins the canonical
// host: its ports merge into the host's, its instances become endpoints of
// the host. Example:
//
//   apiVersion: jibe.dev/v1alpha1
//   kind: ServiceAlias
//   metadata: { name: reviews, namespace: default }
//   spec:
//     host: reviews                       # canonical host (short names resolve in this namespace)
//     aliases:
//     - platform: consul
//       name: reviews-legacy              # the service's name on that platform
//       namespace: default                # its mesh namespace there (default: this resource's)
//       datacenter: dc2                   # consul only: just the instances of this datacenter
//
// Without `datacenter` the aliased name stops being a service of its own (its
// short names now reach the canonical host's endpoints only if a rule says so);
// with it, only that datacenter's instances move and the rest stay under the
// platform's name.
import type { Resource } from './resource.ts';

export type AliasPlatform = 'kubernetes' | 'consul' | 'vm';

export const ALIAS_PLATFORMS: readonly AliasPlatform[] = ['kubernetes', 'consul', 'vm'];

export interface ServiceAliasEntry {
  platform: AliasPlatform;
  /** The service's name on that platform (a DNS label). */
  name: string;
  /** Mesh namespace the platform puts the service in; absent = the ServiceAlias's namespace. */
  namespace?: string;
  /** Consul only: the datacenter (the instances' locality region) whose instances join. */
  datacenter?: string;
}

export interface ServiceAliasSpec {
  host: string;
  aliases: ServiceAliasEntry[];
}

export type ServiceAlias = Resource<'ServiceAlias', ServiceAliasSpec>;
