// Small matching rules shared by the config builders: who may see a rule
// (exportTo), which labels a selector picks, how host names and wildcards
// compare, and which of two rules is older. Kept apart so the builders read as
// the translation they are.
import type { StringMatch } from '../model/networking.ts';
import type { StringMatcher } from '../model/proxy-config.ts';
import type { ObjectMeta } from '../model/resource.ts';
import { DEFAULT_NAMESPACE, compareStrings } from '../model/resource.ts';

/**
 * Istio's `exportTo`: absent, empty or `*` = every namespace; `.` = the owner's
 * namespace; `~` = none; any other entry names a namespace.
 */
export function isExportedTo(exportTo: readonly string[] | undefined, ownerNamespace: string, clientNamespace: string): boolean {
  if (!exportTo || exportTo.length === 0) return true;
  for (const entry of exportTo) {
    if (entry === '*') return true;
    if (entry === '.' ? ownerNamespace === clientNamespace : entry === clientNamespace) return true;
  }
  return false;
}

/** True when every selector label is present with the same value (an empty selector selects everything). */
export function selectorMatches(selector: Readonly<Record<string, string>> | undefined, labels: Readonly<Record<string, string>>): boolean {
  if (!selector) return true;
  for (const key in selector) {
    if (labels[key] !== selector[key]) return false;
  }
  return true;
}

/** `host` (no wildcard) matches `pattern`: equal, `*`, or `*.suffix` with at least one label before the suffix. */
export function hostMatchesPattern(host: string, pattern: string): boolean {
  if (pattern === '*') return true;
  if (pattern.startsWith('*.')) {
    const suffix = pattern.slice(1);
    return host.length > suffix.length && host.toLowerCase().endsWith(suffix.toLowerCase());
  }
  return host.toLowerCase() === pattern.toLowerCase();
}

/** Whether two host patterns (either may be a wildcard) can name a common host. */
export function hostsIntersect(a: string, b: string): boolean {
  const aWild = a.startsWith('*');
  const bWild = b.startsWith('*');
  if (!aWild && !bWild) return a.toLowerCase() === b.toLowerCase();
  if (!aWild) return hostMatchesPattern(a, b);
  if (!bWild) return hostMatchesPattern(b, a);
  // Both wildcards: `*.a.com` and `*.com` share `x.a.com`; the shorter suffix must end the longer.
  const sa = a.slice(1).toLowerCase();
  const sb = b.slice(1).toLowerCase();
  return sa.endsWith(sb) || sb.endsWith(sa);
}

/** Of two intersecting host patterns, the narrower one (what a request must actually carry). */
export function narrowerHost(a: string, b: string): string {
  if (a === '*') return b;
  if (b === '*') return a;
  if (!a.startsWith('*')) return a;
  if (!b.startsWith('*')) return b;
  return a.length >= b.length ? a : b;
}

/** Higher is more specific: exact hosts beat wildcards, longer wildcards beat shorter ones. */
export function hostSpecificity(pattern: string): number {
  if (!pattern.startsWith('*')) return Number.MAX_SAFE_INTEGER;
  return pattern.length;
}

function creationTime(meta: ObjectMeta): number {
  // Missing or unreadable timestamps sort as oldest, as Go's zero time does in Istio.
  if (!meta.creationTimestamp) return -Infinity;
  const t = Date.parse(meta.creationTimestamp);
  return Number.isNaN(t) ? -Infinity : t;
}

/** Oldest first (creationTimestamp, then name, then namespace): Istio's conflict order. */
export function compareByAge(a: { metadata: ObjectMeta }, b: { metadata: ObjectMeta }): number {
  const ta = creationTime(a.metadata);
  const tb = creationTime(b.metadata);
  if (ta !== tb) return ta < tb ? -1 : 1;
  return compareStrings(a.metadata.name, b.metadata.name) || compareStrings(namespaceOf(a), namespaceOf(b));
}

export function namespaceOf(r: { metadata: ObjectMeta }): string {
  return r.metadata.namespace ?? DEFAULT_NAMESPACE;
}

export { compareStrings };

/** A copy with keys in sorted order: equal label sets serialize identically. */
export function sortedRecord(record: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of Object.keys(record).sort(compareStrings)) out[key] = record[key];
  return out;
}

/** A rule's string match as the proxy's matcher: a fresh object (never shared with the snapshot); undefined for an empty one. */
export function stringMatcher(m: StringMatch | Record<string, never> | undefined): StringMatcher | undefined {
  if (!m || typeof m !== 'object') return undefined;
  if ('exact' in m && typeof m.exact === 'string') return { exact: m.exact };
  if ('prefix' in m && typeof m.prefix === 'string') return { prefix: m.prefix };
  if ('regex' in m && typeof m.regex === 'string') return { regex: m.regex };
  return undefined;
}
