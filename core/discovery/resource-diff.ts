// Resources on the wire carry a content hash as their version, so the server
// can tell what changed for a proxy by comparing hashes with the set that proxy
// last ACKed, without keeping old bodies around.
import { createHash } from 'node:crypto';
import type { ProxyResource, ResourceType } from '../model/proxy-config.ts';
import type { WireResource, WireResourceRef } from './discovery-protocol.ts';

/** `type/name`: resources are keyed by both, names alone repeat across types. */
export type ResourceKey = string;

/** The resource versions a proxy holds (or will hold once it ACKs), by key. */
export type ResourceVersions = ReadonlyMap<ResourceKey, string>;

export interface EncodedResource {
  key: ResourceKey;
  wire: WireResource;
}

export function resourceKey(type: string, name: string): ResourceKey {
  return type + '/' + name;
}

/**
 * JSON with object keys sorted at every level, so equal content always hashes
 * equal whatever order a builder set the fields in. Undefined members are left
 * out, as JSON.stringify does.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    const text = JSON.stringify(value);
    return text === undefined ? 'null' : text;
  }
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ',';
      out += canonicalJson(value[i]);
    }
    return out + ']';
  }
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record).sort();
  let out = '{';
  let first = true;
  for (const key of keys) {
    const member = record[key];
    if (member === undefined || typeof member === 'function') continue;
    if (!first) out += ',';
    first = false;
    out += JSON.stringify(key) + ':' + canonicalJson(member);
  }
  return out + '}';
}

// Config builders hand the same (immutable) resource objects to many proxies:
// encoding each object once instead of once per proxy keeps a push round cheap.
const encodedByObject = new WeakMap<ProxyResource, EncodedResource>();

export function encodeResource(resource: ProxyResource): EncodedResource {
  const cached = encodedByObject.get(resource);
  if (cached) return cached;
  const json = canonicalJson(resource);
  const version = createHash('sha1').update(json).digest('hex');
  const encoded: EncodedResource = {
    key: resourceKey(resource.type, resource.name),
    wire: { type: resource.type, name: resource.name, version, body: Buffer.from(json) },
  };
  encodedByObject.set(resource, encoded);
  return encoded;
}

/** Encodes a node's full resource set; a (type, name) given twice is a builder bug and throws. */
export function encodeResources(resources: readonly ProxyResource[]): Map<ResourceKey, EncodedResource> {
  const out = new Map<ResourceKey, EncodedResource>();
  for (const resource of resources) {
    const encoded = encodeResource(resource);
    if (out.has(encoded.key)) throw new Error(`config for the proxy holds ${encoded.key} twice`);
    out.set(encoded.key, encoded);
  }
  return out;
}

export function versionsOf(resources: ReadonlyMap<ResourceKey, EncodedResource>): Map<ResourceKey, string> {
  const out = new Map<ResourceKey, string>();
  for (const [key, encoded] of resources) out.set(key, encoded.wire.version);
  return out;
}

export interface ResourceDiff {
  /** Resources the proxy lacks or holds in another version. */
  changed: WireResource[];
  removed: WireResourceRef[];
}

/** What to send a proxy that holds `base` so that it ends up holding `next`. */
export function diffResources(base: ResourceVersions, next: ReadonlyMap<ResourceKey, EncodedResource>): ResourceDiff {
  const changed: WireResource[] = [];
  const removed: WireResourceRef[] = [];
  for (const [key, encoded] of next) {
    if (base.get(key) !== encoded.wire.version) changed.push(encoded.wire);
  }
  for (const key of base.keys()) {
    if (next.has(key)) continue;
    const slash = key.indexOf('/');
    removed.push({ type: key.slice(0, slash) as ResourceType, name: key.slice(slash + 1) });
  }
  return { changed, removed };
}
