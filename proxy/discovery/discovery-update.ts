// Turns a DiscoveryResponse into the ConfigUpdate the proxy applies. Anything
// malformed throws with a message that names the resource, so the NACK the
// control plane logs says what was wrong.
import type { ConfigUpdate, ProxyResource, ResourceType } from '../../core/model/proxy-config.ts';
import type { WireDiscoveryResponse } from '../../core/discovery/discovery-protocol.ts';

// Every ResourceType the proxy applies, checked complete by the compiler. A local
// table rather than core's discovery-protocol.ts, whose value imports load
// grpc-js and proto-loader into the sidecar.
const RESOURCE_TYPES: Readonly<Record<ResourceType, true>> = { listener: true, route: true, cluster: true, endpoints: true, mesh: true };

function isResourceType(value: string): value is ResourceType {
  return Object.hasOwn(RESOURCE_TYPES, value);
}

export function toConfigUpdate(response: WireDiscoveryResponse): ConfigUpdate {
  if (!response.versionInfo) throw new Error('push has no version_info');
  if (!response.nonce) throw new Error(`push ${response.versionInfo} has no nonce`);
  const upserts: ProxyResource[] = [];
  for (const wire of response.resources ?? []) {
    const where = `${wire.type || '?'}/${wire.name || '?'}`;
    if (!isResourceType(wire.type)) throw new Error(`resource ${where}: unknown type "${wire.type}"`);
    if (!wire.name) throw new Error(`resource ${where}: empty name`);
    let body: unknown;
    try {
      body = JSON.parse(wire.body ? wire.body.toString('utf8') : '');
    } catch (error) {
      throw new Error(`resource ${where}: body is not valid JSON (${error instanceof Error ? error.message : String(error)})`, { cause: error });
    }
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new Error(`resource ${where}: body is not a JSON object`);
    const resource = body as { type?: unknown; name?: unknown };
    if (resource.type !== wire.type || resource.name !== wire.name) {
      throw new Error(`resource ${where}: body says ${String(resource.type)}/${String(resource.name)}`);
    }
    upserts.push(body as ProxyResource);
  }
  const removes: Array<{ type: ResourceType; name: string }> = [];
  for (const ref of response.removed ?? []) {
    if (!isResourceType(ref.type)) throw new Error(`removed ${ref.type}/${ref.name}: unknown type "${ref.type}"`);
    removes.push({ type: ref.type, name: ref.name });
  }
  return { version: response.versionInfo, nonce: response.nonce, full: response.fullState === true, upserts, removes };
}
