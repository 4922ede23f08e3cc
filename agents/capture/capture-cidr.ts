// Address ranges written the way iptables-save prints them back. The agent
// decides "already installed" by comparing its rules with iptables-save
// output token by token, so `10.1.2.3/8` must become `10.0.0.0/8`, a bare
// address must carry `/32` or `/128`, and IPv6 must be compressed exactly as
// glibc's inet_ntop does (RFC 5952: lowercase, longest run of two or more
// zero groups as `::`, the first run on a tie).
import { isIPv4, isIPv6 } from 'node:net';

export type IpFamily = 'v4' | 'v6';

export interface Cidr {
  family: IpFamily;
  /** Canonical `network/prefix`, as iptables-save prints it. */
  text: string;
}

/** Parses `a.b.c.d[/n]` or `x:y::z[/n]`; returns undefined when it is neither. */
export function parseCidr(input: string): Cidr | undefined {
  const slash = input.indexOf('/');
  const address = slash === -1 ? input : input.slice(0, slash);
  const prefixText = slash === -1 ? undefined : input.slice(slash + 1);
  const family: IpFamily | undefined = isIPv4(address) ? 'v4' : isIPv6(address) ? 'v6' : undefined;
  if (!family) return undefined;
  const bits = family === 'v4' ? 32 : 128;
  let prefix = bits;
  if (prefixText !== undefined) {
    if (!/^\d{1,3}$/.test(prefixText)) return undefined;
    prefix = Number(prefixText);
    if (prefix > bits) return undefined;
  }
  const value = family === 'v4' ? v4ToBigInt(address) : v6ToBigInt(address);
  const mask = prefix === 0 ? 0n : ((1n << BigInt(prefix)) - 1n) << BigInt(bits - prefix);
  const network = value & mask;
  const text = (family === 'v4' ? bigIntToV4(network) : bigIntToV6(network)) + '/' + prefix;
  return { family, text };
}

function v4ToBigInt(address: string): bigint {
  let value = 0n;
  for (const part of address.split('.')) value = (value << 8n) | BigInt(Number(part));
  return value;
}

function bigIntToV4(value: bigint): string {
  const parts: number[] = [];
  for (let shift = 24n; shift >= 0n; shift -= 8n) parts.push(Number((value >> shift) & 0xffn));
  return parts.join('.');
}

function v6ToBigInt(address: string): bigint {
  // An embedded dotted quad (::ffff:1.2.3.4) counts as two groups.
  let text = address.toLowerCase();
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const v4 = v4ToBigInt(dotted[1]);
    text = text.slice(0, dotted.index) + (v4 >> 16n).toString(16) + ':' + (v4 & 0xffffn).toString(16);
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const headGroups = head ? head.split(':') : [];
  const tailGroups = tail === undefined ? [] : tail ? tail.split(':') : [];
  const zeros = tail === undefined ? [] : new Array<string>(8 - headGroups.length - tailGroups.length).fill('0');
  let value = 0n;
  for (const group of [...headGroups, ...zeros, ...tailGroups]) value = (value << 16n) | BigInt(parseInt(group, 16));
  return value;
}

function bigIntToV6(value: bigint): string {
  const groups: number[] = [];
  for (let shift = 112n; shift >= 0n; shift -= 16n) groups.push(Number((value >> shift) & 0xffffn));
  let bestStart = -1;
  let bestLength = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) { bestStart = i; bestLength = j - i; }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestLength < 2) return hex.join(':');
  // inet_ntop prints the IPv4-mapped and IPv4-compatible forms with a dotted quad.
  if (bestStart === 0 && (bestLength === 6 || (bestLength === 5 && groups[5] === 0xffff))) {
    const v4 = bigIntToV4(value & 0xffffffffn);
    return bestLength === 6 ? '::' + v4 : '::ffff:' + v4;
  }
  return hex.slice(0, bestStart).join(':') + '::' + hex.slice(bestStart + bestLength).join(':');
}
