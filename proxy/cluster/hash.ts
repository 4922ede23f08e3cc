// A fast, stable 32-bit string hash for the ring hash balancer: FNV-1a over
// the UTF-16 code units, then murmur3's finaliser so that keys differing in
// one trailing character (`host_1`, `host_2`: the ring's virtual nodes) still
// land far apart on the ring. Stable across processes and Node versions, so
// every proxy maps a key to the same endpoint.

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

export function hash32(s: string): number {
  let h = FNV_OFFSET;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h = Math.imul(h ^ (c & 0xff), FNV_PRIME);
    if (c > 0xff) h = Math.imul(h ^ (c >>> 8), FNV_PRIME);
  }
  // murmur3 fmix32
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
