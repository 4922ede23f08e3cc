// Consistent hashing on a ketama-style ring (Envoy's RING_HASH): every host
// owns `minimumRingSize × weight / heaviest weight` points on a 32-bit ring, placed by
// hashing `<address:port>_<n>`; a request hashes its key (a header, a cookie,
// the source IP or a query parameter) and goes to the owner of the next point
// clockwise. A host leaving removes only its own points, so only the keys it
// owned move. Requests without a key go to a random point, as Envoy does.
// The ring is built once per balancer (rebuilt on endpoint or ejection
// changes); `pick` is one hash and one binary search.
import type { ConsistentHash } from '../../core/model/proxy-config.ts';
import type { Exchange } from '../http/exchange.ts';
import { hash32 } from './hash.ts';
import type { LoadBalancer, LoadBalancerInput } from './load-balancer.ts';
import type { UpstreamHost } from './upstream-pool.ts';
import { unmapIpv4 } from '../http/client-address.ts';

/** Istio's default ringHash.minimumRingSize. */
export const DEFAULT_MINIMUM_RING_SIZE = 1024;
// Bounds memory and build time for clusters with many endpoints or skewed weights.
const MAXIMUM_RING_SIZE = 1 << 20;
const HOST_SLOTS = 1 << 20;

const HASH_NONE = 0;
const HASH_HEADER = 1;
const HASH_COOKIE = 2;
const HASH_SOURCE_IP = 3;
const HASH_QUERY = 4;

export class RingHash implements LoadBalancer {
  /** Ring points, ascending. */
  readonly points: Uint32Array;
  /** Index into `hosts` of each point's owner. */
  private readonly owners: Uint32Array;
  private readonly hosts: readonly UpstreamHost[];
  private readonly random: () => number;
  private readonly kind: number;
  /** Header name (lower case), cookie name or query parameter name. */
  private readonly name: string;
  private readonly cookieSuffix: string | undefined;

  constructor(input: LoadBalancerInput) {
    const hosts = input.hosts;
    const config: ConsistentHash | undefined = input.consistentHash;
    this.hosts = hosts;
    this.random = input.random;
    if (config?.httpHeaderName !== undefined) {
      this.kind = HASH_HEADER;
      this.name = config.httpHeaderName.toLowerCase();
    } else if (config?.httpCookie !== undefined) {
      this.kind = HASH_COOKIE;
      this.name = config.httpCookie.name;
    } else if (config?.useSourceIp === true) {
      this.kind = HASH_SOURCE_IP;
      this.name = '';
    } else if (config?.httpQueryParameterName !== undefined) {
      this.kind = HASH_QUERY;
      this.name = config.httpQueryParameterName;
    } else {
      this.kind = HASH_NONE;
      this.name = '';
    }
    const cookie = config?.httpCookie;
    this.cookieSuffix =
      cookie?.ttlMs !== undefined && cookie.ttlMs > 0
        ? `; Max-Age=${Math.max(1, Math.floor(cookie.ttlMs / 1000))}${cookie.path ? `; Path=${cookie.path}` : ''}; HttpOnly`
        : undefined;

    // Each host's points depend only on its own weight (relative to the
    // heaviest), never on how many hosts there are: so a host leaving takes
    // exactly its points away and no other key moves. Bounded in total.
    const minimum = Math.max(config?.minimumRingSize ?? DEFAULT_MINIMUM_RING_SIZE, 1);
    const weights = input.weights;
    let maxWeight = 0;
    let total = 0;
    for (let i = 0; i < hosts.length; i++) {
      const w = weights === undefined ? 1 : weights[i];
      if (w > maxWeight) maxWeight = w;
      total += w;
    }
    const perUnit = Math.min(minimum / maxWeight, MAXIMUM_RING_SIZE / total);
    const counts = new Uint32Array(hosts.length);
    let size = 0;
    for (let i = 0; i < hosts.length; i++) {
      counts[i] = Math.max(1, Math.ceil(perUnit * (weights === undefined ? 1 : weights[i])));
      size += counts[i];
    }
    // hash × 2^20 + host index fits a double exactly: one native numeric sort
    // orders the points, ties broken by host order.
    const packed = new Float64Array(size);
    let k = 0;
    for (let i = 0; i < hosts.length; i++) {
      const prefix = hosts[i].key + '_';
      for (let n = 0; n < counts[i]; n++) packed[k++] = hash32(prefix + n) * HOST_SLOTS + i;
    }
    packed.sort();
    this.points = new Uint32Array(size);
    this.owners = new Uint32Array(size);
    for (let j = 0; j < size; j++) {
      const v = packed[j];
      const owner = v % HOST_SLOTS;
      this.owners[j] = owner;
      this.points[j] = (v - owner) / HOST_SLOTS;
    }
  }

  pick(ex?: Exchange): UpstreamHost | undefined {
    if (this.hosts.length === 0) return undefined;
    const key = ex === undefined ? undefined : this.keyOf(ex);
    const h = key === undefined ? Math.floor(this.random() * 0x100000000) >>> 0 : hash32(key);
    return this.hosts[this.owners[this.lookup(h)]];
  }

  /** Index of the first point at or after `h`, wrapping to the start. */
  lookup(h: number): number {
    const points = this.points;
    let lo = 0;
    let hi = points.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (points[mid] < h) lo = mid + 1;
      else hi = mid;
    }
    return lo === points.length ? 0 : lo;
  }

  /** The host a given hash key maps to (tests, admin). */
  hostFor(key: string): UpstreamHost | undefined {
    if (this.hosts.length === 0) return undefined;
    return this.hosts[this.owners[this.lookup(hash32(key))]];
  }

  private keyOf(ex: Exchange): string | undefined {
    switch (this.kind) {
      case HASH_HEADER:
        return ex.header(this.name);
      case HASH_COOKIE:
        return this.cookieKey(ex);
      case HASH_SOURCE_IP:
        return unmapIpv4(ex.down.remoteAddress);
      case HASH_QUERY:
        return ex.queryParam(this.name);
      default:
        return undefined;
    }
  }

  /**
   * The cookie's value; when the client has none and a ttl is configured, a
   * fresh value is generated, hashed, and set on the response so the client's
   * next requests stick to the same host (Envoy's generated cookie).
   */
  private cookieKey(ex: Exchange): string | undefined {
    const value = cookieValue(ex.header('cookie'), this.name);
    if (value !== undefined || this.cookieSuffix === undefined) return value;
    const generated = randomToken(this.random);
    (ex.extraResponseHeaders ??= []).push('set-cookie', `${this.name}=${generated}${this.cookieSuffix}`);
    return generated;
  }
}

/**
 * The value of cookie `name` in a Cookie header (`a=1; b=2`), or undefined.
 * Several Cookie headers arrive joined with ', ' (Exchange.header); a cookie
 * value cannot hold a comma (RFC 6265), so both separate pairs.
 */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  const n = header.length;
  let start = 0;
  while (start < n) {
    let end = start;
    while (end < n) {
      const c = header.charCodeAt(end);
      if (c === 59 /* ; */ || c === 44 /* , */) break;
      end++;
    }
    let s = start;
    while (s < end && header.charCodeAt(s) === 32) s++;
    const eq = header.indexOf('=', s);
    if (eq > s && eq < end && eq - s === name.length && header.startsWith(name, s)) {
      let v = header.slice(eq + 1, end).trim();
      if (v.length >= 2 && v.charCodeAt(0) === 34 && v.charCodeAt(v.length - 1) === 34) v = v.slice(1, -1);
      return v;
    }
    start = end + 1;
  }
  return undefined;
}

function randomToken(random: () => number): string {
  let out = '';
  for (let i = 0; i < 4; i++) out += (Math.floor(random() * 0x10000) | 0x10000).toString(16).slice(1);
  return out;
}

export function createRingHash(input: LoadBalancerInput): LoadBalancer {
  return new RingHash(input);
}
