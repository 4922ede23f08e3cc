// Name syntax shared by the validators: Kubernetes object names (DNS-1123),
// host names with Istio's wildcard forms, IP addresses and CIDR blocks.
import { isIP } from 'node:net';

const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** A DNS-1123 label: namespaces, subset and port names (`reviews-v1`). */
export function isDns1123Label(s: string): boolean {
  return typeof s === 'string' && s.length <= 63 && LABEL.test(s);
}

/** A DNS-1123 subdomain: object names (`reviews`, `reviews.v1`). */
export function isDns1123Subdomain(s: string): boolean {
  return typeof s === 'string' && s.length > 0 && s.length <= 253 && s.split('.').every(isDns1123Label);
}

export const LABEL_RULE = 'lowercase letters, digits and "-", starting and ending with a letter or digit, at most 63 characters';
export const SUBDOMAIN_RULE = 'lowercase letters, digits, "-" and ".", each dot-separated part starting and ending with a letter or digit, at most 253 characters';

// Host names in rules may carry upper case (DNS is case-insensitive) and, in
// Istio, underscores in some registries' names; digits-only labels are IPs.
const HOST_LABEL = /^[A-Za-z0-9_]([-A-Za-z0-9_]*[A-Za-z0-9_])?$/;

/**
 * Why a host as written in a rule is invalid, or undefined when it is valid.
 * Accepts `*`, `*.example.com`, `reviews`, `reviews.default.svc.cluster.local`, IPs.
 */
export function hostProblem(host: unknown, opts: { wildcard: boolean } = { wildcard: true }): string | undefined {
  if (typeof host !== 'string' || host.length === 0) return 'host must not be empty';
  if (host.length > 255) return 'host is longer than 255 characters';
  if (host === '*') return opts.wildcard ? undefined : 'host must not be a wildcard';
  let name = host;
  if (host.startsWith('*.')) {
    if (!opts.wildcard) return 'host must not be a wildcard';
    name = host.slice(2);
  } else if (host.includes('*')) {
    return 'a wildcard is allowed only as the whole first label, as in *.example.com';
  }
  if (isIP(name)) return undefined;
  for (const label of name.split('.')) {
    if (label.length === 0) return 'host has an empty label (two dots in a row, or a leading or trailing dot)';
    if (label.length > 63) return `label "${label}" is longer than 63 characters`;
    if (!HOST_LABEL.test(label)) return `label "${label}" may hold only letters, digits and "-", and must not start or end with "-"`;
  }
  return undefined;
}

/** An IPv4/IPv6 address or CIDR block (`10.0.0.0/8`, `2001:db8::/32`). */
export function isIpOrCidr(s: string): boolean {
  if (typeof s !== 'string') return false;
  const slash = s.indexOf('/');
  if (slash < 0) return isIP(s) !== 0;
  const family = isIP(s.slice(0, slash));
  const bits = s.slice(slash + 1);
  if (family === 0 || !/^\d{1,3}$/.test(bits)) return false;
  return Number(bits) <= (family === 4 ? 32 : 128);
}

/** `exportTo` entries: `.` (own namespace), `*` (all), `~` (none) or a namespace. */
export function isExportTo(s: string): boolean {
  return s === '.' || s === '*' || s === '~' || isDns1123Label(s);
}

/** Levenshtein distance, for "did you mean" suggestions on typos. */
export function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0];
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j];
      prev[j] = Math.min(prev[j] + 1, prev[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length];
}

/** The candidate closest to `word`, when it is close enough to be a likely typo. */
export function closest(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  const lower = word.toLowerCase();
  for (const c of candidates) {
    const d = editDistance(lower, c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best !== undefined && bestDistance <= Math.max(1, Math.floor(word.length / 3)) ? best : undefined;
}

/** The reserved gateway name that means "the sidecars of the mesh". */
export const MESH_GATEWAY = 'mesh';

/**
 * A VirtualService's gateway reference: `mesh`, `name` (the rule's namespace)
 * or `namespace/name`. Returns undefined when it is not of those forms.
 */
export function parseGatewayRef(ref: string, ruleNamespace: string): { namespace: string; name: string } | typeof MESH_GATEWAY | undefined {
  if (ref === MESH_GATEWAY) return MESH_GATEWAY;
  const parts = ref.split('/');
  if (parts.length === 1 && isDns1123Subdomain(parts[0])) return { namespace: ruleNamespace, name: parts[0] };
  if (parts.length === 2 && isDns1123Label(parts[0]) && isDns1123Subdomain(parts[1])) return { namespace: parts[0], name: parts[1] };
  return undefined;
}
