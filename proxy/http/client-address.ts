// A peer's address as policies, balancers, logs and headers use it: an IPv4
// client reached over a dual-stack socket shows up as `::ffff:10.0.0.9`, and
// every one of them means `10.0.0.9`.
import { isIP } from 'node:net';

/** `address` without the IPv4-mapped IPv6 prefix (anything else unchanged). */
export function unmapIpv4(address: string): string {
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}
