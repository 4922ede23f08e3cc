// ServiceAlias resources → the renaming the registry applies while merging
// platforms: (platform, host the platform named) → canonical host. Pure, so
// the aggregator stays free of config types and tests can feed rules directly.
import type { PlatformName } from '../model/service.ts';
import { canonicalHost, resolveHost } from '../model/service.ts';
import type { ServiceAlias } from '../model/service-alias.ts';
import { DEFAULT_NAMESPACE, compareStrings, resourceKey } from '../model/resource.ts';

export interface AliasRule {
  platform: PlatformName;
  /** The host the platform's converter produced for the aliased service. */
  from: string;
  /** The canonical host it joins. */
  to: string;
  /** Namespace of the canonical host's service (used when only the alias provides it). */
  toNamespace: string;
  /** Consul: only instances whose locality region is this datacenter move. */
  datacenter?: string;
  /** `ServiceAlias/<ns>/<name>` that asked for it, for findings. */
  rule: string;
}

/** Two ServiceAliases claiming one platform service for different hosts: the oldest wins. */
export interface AliasConflict {
  platform: PlatformName;
  from: string;
  datacenter?: string;
  kept: AliasRule;
  dropped: AliasRule;
}

export function compileServiceAliases(resources: readonly ServiceAlias[], domain: string): { rules: AliasRule[]; conflicts: AliasConflict[] } {
  const ordered = [...resources].sort(byAge);
  const byKey = new Map<string, AliasRule>();
  const conflicts: AliasConflict[] = [];
  for (const r of ordered) {
    const namespace = r.metadata.namespace ?? DEFAULT_NAMESPACE;
    if (typeof r.spec?.host !== 'string' || !Array.isArray(r.spec.aliases)) continue;
    const to = resolveHost(r.spec.host, namespace, domain);
    const toNamespace = to.endsWith(`.svc.${domain}`) ? to.split('.')[1] : namespace;
    for (const a of r.spec.aliases) {
      if (!a || typeof a.name !== 'string') continue;
      const from = canonicalHost(a.name, a.namespace ?? namespace, domain);
      if (from === to) continue;
      const rule: AliasRule = { platform: a.platform, from, to, toNamespace, rule: resourceKey(r) };
      if (a.datacenter) rule.datacenter = a.datacenter;
      const key = `${rule.platform}|${from}|${rule.datacenter ?? ''}`;
      const kept = byKey.get(key);
      if (!kept) byKey.set(key, rule);
      else if (kept.to !== rule.to) conflicts.push({ platform: rule.platform, from, datacenter: rule.datacenter, kept, dropped: rule });
    }
  }
  const rules = [...byKey.values()].sort((a, b) => compareStrings(aliasKey(a), aliasKey(b)));
  return { rules, conflicts };
}

export function aliasKey(r: Pick<AliasRule, 'platform' | 'from'>): string {
  return `${r.platform}|${r.from}`;
}

function byAge(a: ServiceAlias, b: ServiceAlias): number {
  return compareStrings(a.metadata.creationTimestamp ?? '', b.metadata.creationTimestamp ?? '') || compareStrings(resourceKey(a), resourceKey(b));
}
