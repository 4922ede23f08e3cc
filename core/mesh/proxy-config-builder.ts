// The control plane's translation: mesh snapshot + one proxy → exactly the
// resources that proxy runs on. Pure and deterministic — the same snapshot
// content gives the same resources in the same order, whatever order the
// registries and the config store produced it in — so per-resource content
// hashes change only when content does, and pushes carry only real changes.
import { attachExtensionProviders } from './build-extension-providers.ts';
import { buildGatewayConfig } from './build-gateway-config.ts';
import { buildSidecarConfig } from './build-sidecar-config.ts';
import { meshResource } from './build-sidecar-listeners.ts';
import { compareStrings } from './mesh-match.ts';
import type { MeshSnapshot } from './mesh-snapshot.ts';
import { JibeError } from '../errors/errors.ts';
import type { ProxyNode, ProxyResource, ResourceType } from '../model/proxy-config.ts';

const TYPE_ORDER: Record<ResourceType, number> = { mesh: 0, listener: 1, route: 2, cluster: 3, endpoints: 4 };

/**
 * Computes the config of one proxy. Throws JIBE_ERR_WORKLOAD_INVALID when a
 * sidecar names a workload the snapshot does not have; a rule that names a
 * missing host or subset never throws — it routes to an empty cluster (503).
 */
export function buildProxyConfig(snapshot: MeshSnapshot, node: ProxyNode): ProxyResource[] {
  let resources: ProxyResource[];
  switch (node.type) {
    case 'sidecar':
      resources = buildSidecarConfig(snapshot, node);
      break;
    case 'gateway': {
      resources = buildGatewayConfig(snapshot, node);
      // A gateway captures nothing: it needs the mesh resource only for MeshConfig's telemetry settings.
      const mesh = meshResource(snapshot);
      if (mesh.accessLog !== undefined || mesh.tracing !== undefined) resources.push(mesh);
      break;
    }
    default:
      throw new JibeError('JIBE_ERR_BAD_REQUEST', `proxy ${node.id} has unknown type ${JSON.stringify(node.type)}`, {
        field: 'node.type',
        hint: 'a proxy is either a sidecar or a gateway',
      });
  }
  attachExtensionProviders(resources, snapshot);
  return resources.sort(compareResources);
}

function compareResources(a: ProxyResource, b: ProxyResource): number {
  return TYPE_ORDER[a.type] - TYPE_ORDER[b.type] || compareStrings(a.name, b.name);
}
