// DestinationRule `localityLbSetting`, compiled for one caller: which
// endpoints a proxy prefers (priority levels) or how it spreads over localities
// (locality weights), as Istio's ApplyLocalityLoadBalancer computes them for
// Envoy. The caller is the workload the sidecar fronts: its locality, labels
// and platform. Without a known caller locality nothing changes, as in Istio.
//
// - distribute: the first entry whose `from` matches the caller gives each
//   endpoint locality a weight: a `to` pattern's percentage is shared by the
//   localities it matches; unmatched localities get none.
// - failover (only with outlier detection, which is what moves traffic on):
//   priority 0 same region/zone/subzone, 1 same zone, 2 same region, 3 the
//   region `failover` names for the caller's region, 4 the rest.
// - failoverPriority: the number of leading labels that differ between caller
//   and endpoint (0 when all match); with `failover` also set, the locality
//   order breaks ties. Priorities are then renumbered without gaps.
import type { LocalityLoadBalancerSetting } from '../model/networking.ts';
import type { ClusterResource, Endpoint } from '../model/proxy-config.ts';
import type { PlatformName } from '../model/service.ts';

/** Istio's and Envoy's default overprovisioning factor, percent. */
export const OVERPROVISIONING_FACTOR = 140;

/** Keys failoverPriority reads from the locality or platform rather than from labels. */
export const REGION_KEY = 'topology.kubernetes.io/region';
export const ZONE_KEY = 'topology.kubernetes.io/zone';
export const SUBZONE_KEY = 'topology.istio.io/subzone';
export const PLATFORM_KEY = 'topology.jibe.dev/platform';

export interface Caller {
  /** `region/zone/subzone` as endpoints carry it ('' when unknown). */
  locality: string;
  labels: Readonly<Record<string, string>>;
  platform: PlatformName | string;
}

/**
 * Sets `cluster.localityLb` and each endpoint's `priority` (in place) when the
 * setting applies to this caller; leaves both untouched otherwise.
 */
export function applyLocalityLb(cluster: ClusterResource, endpoints: Endpoint[], setting: LocalityLoadBalancerSetting | undefined, caller: Caller | undefined): void {
  if (!setting || setting.enabled === false || !caller || endpoints.length === 0) return;
  if (setting.distribute?.length) {
    if (!caller.locality) return;
    const rule = setting.distribute.find((d) => localityMatches(caller.locality, d.from));
    if (!rule) return;
    cluster.localityLb = { overprovisioningFactor: OVERPROVISIONING_FACTOR, localityWeights: distributeWeights(endpoints, rule.to) };
    return;
  }
  // Failover only moves traffic when failing endpoints are ejected.
  if (!cluster.outlierDetection) return;
  const byLabels = setting.failoverPriority?.length ? setting.failoverPriority : undefined;
  if (!byLabels && !caller.locality) return;
  const failoverTo = setting.failover?.find((f) => f.from === regionOf(caller.locality))?.to;
  const raw = endpoints.map((e) => {
    const locality = !byLabels || setting.failover?.length ? localityPriority(caller.locality, e.locality ?? '', failoverTo) : 0;
    return byLabels ? labelPriority(byLabels, caller, e) * 5 + locality : locality;
  });
  const levels = [...new Set(raw)].sort((a, b) => a - b);
  if (levels.length < 2) return;
  endpoints.forEach((e, i) => {
    const level = levels.indexOf(raw[i]);
    if (level > 0) e.priority = level;
  });
  cluster.localityLb = { overprovisioningFactor: OVERPROVISIONING_FACTOR };
}

/** `us-west/zone1/*` matches `us-west/zone1/a`; `*` anything; a shorter pattern matches the localities under it. */
export function localityMatches(locality: string, pattern: string): boolean {
  if (pattern === '*') return true;
  const have = locality.split('/');
  const want = pattern.split('/');
  for (let i = 0; i < want.length; i++) {
    if (want[i] === '*') return true;
    if (have[i] !== want[i]) return false;
  }
  return true;
}

function regionOf(locality: string): string {
  const slash = locality.indexOf('/');
  return slash === -1 ? locality : locality.slice(0, slash);
}

function localityPriority(caller: string, endpoint: string, failoverTo: string | undefined): number {
  const [cr, cz, cs] = caller.split('/');
  const [er, ez, es] = endpoint.split('/');
  if (cr === er) {
    if (cz === ez) return cs === es ? 0 : 1;
    return 2;
  }
  return failoverTo !== undefined && er === failoverTo ? 3 : 4;
}

function labelPriority(keys: readonly string[], caller: Caller, e: Endpoint): number {
  for (let i = 0; i < keys.length; i++) {
    const want = valueOf(keys[i], caller.locality, caller.platform, caller.labels);
    const have = valueOf(keys[i], e.locality ?? '', e.platform ?? '', e.labels ?? {});
    if (want === undefined || want !== have) return keys.length - i;
  }
  return 0;
}

function valueOf(key: string, locality: string, platform: string, labels: Readonly<Record<string, string>>): string | undefined {
  const parts = locality.split('/');
  switch (key) {
    case REGION_KEY:
      return parts[0] || undefined;
    case ZONE_KEY:
      return parts[1] || undefined;
    case SUBZONE_KEY:
      return parts[2] || undefined;
    case PLATFORM_KEY:
      return platform || undefined;
    default:
      return labels[key];
  }
}

/** Each `to` pattern's percentage split evenly over the endpoint localities it matches (the first pattern that matches wins). */
function distributeWeights(endpoints: readonly Endpoint[], to: Readonly<Record<string, number>>): Record<string, number> {
  const localities = [...new Set(endpoints.map((e) => e.locality ?? ''))].sort();
  const patterns = Object.keys(to).sort((a, b) => specificity(b) - specificity(a) || (a < b ? -1 : 1));
  const members = new Map<string, string[]>();
  for (const locality of localities) {
    const pattern = patterns.find((p) => localityMatches(locality, p));
    if (pattern === undefined) continue;
    const list = members.get(pattern);
    if (list) list.push(locality);
    else members.set(pattern, [locality]);
  }
  const weights: Record<string, number> = {};
  for (const [pattern, list] of members) {
    for (const locality of list) weights[locality] = to[pattern] / list.length;
  }
  return weights;
}

/** More parts, and no wildcard, first: `a/b/c` before `a/b/*` before `a/*` before `*`. */
function specificity(pattern: string): number {
  const parts = pattern.split('/');
  return parts.length * 2 - (parts[parts.length - 1] === '*' ? 1 : 0);
}
