// MeshConfig `extensionProviders` compiled for the proxies: durations to ms,
// the ext authz service to a URL, and each proxy sent only the providers its
// own CUSTOM policies name, so a provider change reaches (and re-pushes) only
// the proxies that use it.
import type { MeshSnapshot } from './mesh-snapshot.ts';
import { meshResource } from './build-sidecar-listeners.ts';
import { tryParseDuration } from '../config/duration.ts';
import type { ExtensionProvider, PolicyProviderConfig } from '../model/policy-adapter.ts';
import type { MeshResource, ProxyResource } from '../model/proxy-config.ts';

/** Istio's default ext authz timeout (600s) and status on a network error (403). */
export const DEFAULT_EXT_AUTHZ_TIMEOUT_MS = 600_000;
export const DEFAULT_EXT_AUTHZ_STATUS_ON_ERROR = 403;

const cache = new WeakMap<MeshSnapshot, Map<string, PolicyProviderConfig>>();

/** The snapshot's providers by name; entries that cannot compile (refused at apply) are left out. */
export function extensionProvidersOf(snapshot: MeshSnapshot): Map<string, PolicyProviderConfig> {
  let providers = cache.get(snapshot);
  if (providers === undefined) {
    providers = new Map();
    for (const p of snapshot.meshConfig?.spec.extensionProviders ?? []) {
      const compiled = compileExtensionProvider(p);
      if (compiled !== undefined && !providers.has(compiled.name)) providers.set(compiled.name, compiled);
    }
    cache.set(snapshot, providers);
  }
  return providers;
}

export function compileExtensionProvider(p: ExtensionProvider): PolicyProviderConfig | undefined {
  if (typeof p?.name !== 'string' || p.name === '') return undefined;
  const name = p.name;
  if (p.envoyExtAuthzHttp !== undefined) {
    const e = p.envoyExtAuthzHttp;
    const timeoutMs = e.timeout === undefined ? DEFAULT_EXT_AUTHZ_TIMEOUT_MS : tryParseDuration(e.timeout);
    if (timeoutMs === undefined) return undefined;
    const out: PolicyProviderConfig = {
      name,
      kind: 'ext-authz-http',
      url: extAuthzUrl(e.service, e.port, e.pathPrefix),
      timeoutMs,
      failOpen: e.failOpen === true,
      statusOnError: e.statusOnError === undefined ? DEFAULT_EXT_AUTHZ_STATUS_ON_ERROR : Number(e.statusOnError),
      includeRequestHeaders: e.includeRequestHeadersInCheck ?? [],
      headersToUpstream: e.headersToUpstreamOnAllow ?? [],
    };
    if (e.headersToDownstreamOnDeny !== undefined) out.headersToDownstream = e.headersToDownstreamOnDeny;
    return out;
  }
  if (p.denyExpression !== undefined) return { name, kind: 'deny-expression', expression: p.denyExpression.expression };
  if (p.list !== undefined) return { name, kind: 'list', attribute: p.list.attribute, values: p.list.values, mode: p.list.mode };
  if (p.quota !== undefined) {
    const fillIntervalMs = tryParseDuration(p.quota.fillInterval);
    if (fillIntervalMs === undefined) return undefined;
    const q: PolicyProviderConfig = { name, kind: 'quota', maxTokens: p.quota.maxTokens, tokensPerFill: p.quota.tokensPerFill, fillIntervalMs };
    if (p.quota.key !== undefined) q.key = p.quota.key;
    return q;
  }
  return undefined;
}

/** `[<namespace>/]<host>` and a port as the URL the proxy calls (IPv6 literals bracketed). */
export function extAuthzUrl(service: string, port: number, pathPrefix: string | undefined): string {
  const host = service.includes('/') ? service.slice(service.indexOf('/') + 1) : service;
  const authority = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  const prefix = pathPrefix === undefined || pathPrefix === '' ? '' : pathPrefix.startsWith('/') ? pathPrefix : `/${pathPrefix}`;
  return `http://${authority}:${port}${prefix.replace(/\/$/, '')}`;
}

/**
 * Puts the providers the listeners' CUSTOM policies name on the mesh
 * resource (adding one for a gateway that had none). A name the MeshConfig
 * lacks is left for the proxy to refuse: apply-time checks keep that from
 * happening unless the MeshConfig was deleted outside the API.
 */
export function attachExtensionProviders(resources: ProxyResource[], snapshot: MeshSnapshot): void {
  const used = new Set<string>();
  for (const r of resources) {
    if (r.type !== 'listener' || r.authz === undefined) continue;
    for (const p of r.authz.custom) if (p.provider !== undefined) used.add(p.provider);
  }
  if (used.size === 0) return;
  const providers = extensionProvidersOf(snapshot);
  const list = [...used]
    .sort()
    .map((n) => providers.get(n))
    .filter((p) => p !== undefined);
  if (list.length === 0) return;
  let mesh = resources.find((r): r is MeshResource => r.type === 'mesh');
  if (mesh === undefined) {
    mesh = meshResource(snapshot);
    resources.push(mesh);
  }
  mesh.extensionProviders = list;
}
