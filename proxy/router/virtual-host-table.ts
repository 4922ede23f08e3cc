// Virtual host lookup by authority, in Envoy's order: exact domain, then
// suffix wildcards (`*.example.com`, longest first), then prefix wildcards
// (`example.*`), then `*`. The full authority is tried first, then the host
// without its port, so `reviews:9080` finds a virtual host that only lists
// `reviews`. Lookups are cached per authority (bounded, reset when full) so
// the common case is one Map hit.

export class VirtualHostTable<V> {
  private readonly exact = new Map<string, V>();
  private readonly suffixes: Array<[string, V]> = [];
  private readonly prefixes: Array<[string, V]> = [];
  private any: V | undefined;
  private readonly cache = new Map<string, V | null>();
  private readonly cacheLimit: number;

  constructor(cacheLimit = 4096) {
    this.cacheLimit = cacheLimit;
  }

  /** Adds a domain; returns false when the table already has it (a duplicate). */
  add(domain: string, value: V): boolean {
    const d = domain.toLowerCase();
    if (d === '*') {
      if (this.any !== undefined) return false;
      this.any = value;
    } else if (d.startsWith('*')) {
      const suffix = d.slice(1);
      if (this.suffixes.some(([s]) => s === suffix)) return false;
      this.suffixes.push([suffix, value]);
      this.suffixes.sort((a, b) => b[0].length - a[0].length);
    } else if (d.endsWith('*')) {
      const prefix = d.slice(0, -1);
      if (this.prefixes.some(([p]) => p === prefix)) return false;
      this.prefixes.push([prefix, value]);
      this.prefixes.sort((a, b) => b[0].length - a[0].length);
    } else {
      if (this.exact.has(d)) return false;
      this.exact.set(d, value);
    }
    return true;
  }

  lookup(authority: string): V | undefined {
    const cached = this.cache.get(authority);
    if (cached !== undefined) return cached ?? undefined;
    const found = this.resolve(authority.toLowerCase());
    if (this.cache.size >= this.cacheLimit) this.cache.clear();
    this.cache.set(authority, found ?? null);
    return found;
  }

  private resolve(authority: string): V | undefined {
    const hit = this.match(authority);
    if (hit !== undefined) return hit;
    const host = stripPort(authority);
    if (host !== authority) {
      const hostHit = this.match(host);
      if (hostHit !== undefined) return hostHit;
    }
    return this.any;
  }

  private match(name: string): V | undefined {
    const exact = this.exact.get(name);
    if (exact !== undefined) return exact;
    // A wildcard stands for at least one character, as in Envoy.
    for (const [suffix, value] of this.suffixes) {
      if (name.length > suffix.length && name.endsWith(suffix)) return value;
    }
    for (const [prefix, value] of this.prefixes) {
      if (name.length > prefix.length && name.startsWith(prefix)) return value;
    }
    return undefined;
  }
}

/** `host:port` → `host`; `[::1]:80` → `[::1]`; anything without a port unchanged. */
export function stripPort(authority: string): string {
  const colon = authority.lastIndexOf(':');
  if (colon < 0) return authority;
  if (authority.charCodeAt(0) === 91 /* [ */) {
    const close = authority.indexOf(']');
    return close >= 0 && close < colon ? authority.slice(0, colon) : authority;
  }
  if (authority.indexOf(':') !== colon) return authority; // bare IPv6 without brackets
  return authority.slice(0, colon);
}
