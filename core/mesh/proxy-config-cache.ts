// Each connected proxy's last built config, kept between changes. At 1,000
// services a proxy's config holds tens of thousands of resources; rebuilding
// (and content-hashing) all of them because one endpoint's health flipped made
// a health change take seconds to reach the proxies. When the snapshots since
// a proxy's last build differ only in the health of workloads of some hosts,
// its new config is the old one with the endpoints of those hosts' clusters
// rebuilt — the same output a full build gives, at the cost of what changed.
// Anything else (rules, services, addresses, labels, certificates) takes the
// full build.
import { buildClusterPair } from './build-clusters.ts';
import { createBuildContext } from './build-context.ts';
import type { MeshSnapshot } from './mesh-snapshot.ts';
import { buildProxyConfig } from './proxy-config-builder.ts';
import type { ClusterResource, ProxyNode, ProxyResource } from '../model/proxy-config.ts';

interface Entry {
  /** The node as it asked (a reconnect may announce other labels or namespace). */
  nodeKey: string;
  version: number;
  resources: ProxyResource[];
  /** Outbound clusters by service host: positions of each cluster and of its endpoints in `resources`. */
  byHost: Map<string, Array<{ cluster: number; endpoints: number }>>;
}

/** Hosts whose workloads changed only in health since snapshot `since`; undefined when anything else may have changed. */
export type ChangedHosts = (since: number) => ReadonlySet<string> | undefined;

export class ProxyConfigCache {
  readonly #entries = new Map<string, Entry>();

  /** The config of `node` at `snapshot`, equal to `buildProxyConfig(snapshot, node)`. */
  build(snapshot: MeshSnapshot, node: ProxyNode, changedHosts: ChangedHosts): ProxyResource[] {
    const nodeKey = JSON.stringify(node);
    const entry = this.#entries.get(node.id);
    if (entry !== undefined && entry.nodeKey === nodeKey) {
      if (entry.version === snapshot.version) return entry.resources.slice();
      const hosts = entry.version < snapshot.version ? changedHosts(entry.version) : undefined;
      if (hosts !== undefined) return this.#patch(entry, snapshot, node, hosts).slice();
    }
    const resources = buildProxyConfig(snapshot, node);
    this.#entries.set(node.id, { nodeKey, version: snapshot.version, resources, byHost: indexClusters(resources) });
    return resources.slice();
  }

  /** Drops a proxy's entry (its stream ended). */
  forget(nodeId: string): void {
    this.#entries.delete(nodeId);
  }

  #patch(entry: Entry, snapshot: MeshSnapshot, node: ProxyNode, hosts: ReadonlySet<string>): ProxyResource[] {
    // The old array stays as it was: earlier callers may still hold it.
    let resources: ProxyResource[] | undefined;
    let ctx: ReturnType<typeof createBuildContext> | undefined;
    for (const host of hosts) {
      const positions = entry.byHost.get(host);
      if (positions === undefined) continue;
      resources ??= entry.resources.slice();
      ctx ??= createBuildContext(snapshot, node);
      for (const { cluster, endpoints } of positions) {
        const c = resources[cluster] as ClusterResource;
        // A health change leaves the cluster itself as it was (nothing it is built from changed): only its endpoints are new.
        resources[endpoints] = buildClusterPair(ctx, { name: c.name, host: c.service, port: c.port, subset: c.subset ?? '' }).endpoints;
      }
    }
    entry.version = snapshot.version;
    if (resources !== undefined) entry.resources = resources;
    return entry.resources;
  }
}

function indexClusters(resources: readonly ProxyResource[]): Map<string, Array<{ cluster: number; endpoints: number }>> {
  const endpointsAt = new Map<string, number>();
  resources.forEach((r, i) => {
    if (r.type === 'endpoints') endpointsAt.set(r.name, i);
  });
  const byHost = new Map<string, Array<{ cluster: number; endpoints: number }>>();
  resources.forEach((r, i) => {
    // Inbound clusters (no service) point at the local app, whatever the registry says.
    if (r.type !== 'cluster' || r.service === '') return;
    const endpoints = endpointsAt.get(r.name);
    if (endpoints === undefined) return;
    let list = byHost.get(r.service);
    if (!list) byHost.set(r.service, (list = []));
    list.push({ cluster: i, endpoints });
  });
  return byHost;
}
