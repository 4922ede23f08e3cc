// Recovers where an iptables-redirected connection was really going: the
// kernel's conntrack entry keeps the destination from before REDIRECT, and
// getsockopt(SO_ORIGINAL_DST) returns it (IPv4: SOL_IP, sockaddr_in; IPv6:
// SOL_IPV6 with IP6T_SO_ORIGINAL_DST, sockaddr_in6). Node has no API for
// it, so the call goes through koffi (FFI into libc), loaded on first use:
// a proxy that never runs capture never pays its memory.
//
// The file descriptor is read from `socket._handle.fd`, a Node internal
// (libuv's TCPWrap exposes it on Unix). A test pins that it still exists; if
// a Node upgrade removes it, every lookup answers undefined and capture
// listeners treat connections as direct ones instead of crashing.
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';

export interface OriginalDestination {
  address: string;
  port: number;
  family: 4 | 6;
}

const SOL_IP = 0;
const SOL_IPV6 = 41;
/** SO_ORIGINAL_DST and IP6T_SO_ORIGINAL_DST share the number 80. */
const SO_ORIGINAL_DST = 80;
const SOCKADDR_IN_SIZE = 16;
const SOCKADDR_IN6_SIZE = 28;
const AF_INET = 2;
const AF_INET6 = 10;

type GetSockOpt = (fd: number, level: number, name: number, buf: Buffer, len: number[]) => number;

let getsockopt: GetSockOpt | null | undefined;
let loadError: string | undefined;

function load(): GetSockOpt | null {
  if (getsockopt !== undefined) return getsockopt;
  if (process.platform !== 'linux') {
    loadError = 'SO_ORIGINAL_DST exists only on Linux';
    return (getsockopt = null);
  }
  try {
    const require = createRequire(import.meta.url);
    const koffi = require('koffi') as { load(path: string): { func(decl: string): GetSockOpt } };
    const libc = koffi.load('libc.so.6');
    getsockopt = libc.func('int getsockopt(int, int, int, _Out_ uint8_t *buf, _Inout_ uint32_t *len)');
  } catch (err) {
    loadError = `cannot load koffi/libc for SO_ORIGINAL_DST: ${(err as Error).message}`;
    getsockopt = null;
  }
  return getsockopt;
}

/** Loads the FFI binding now (capture listeners call it at start, so a broken install fails loudly there). @returns why it cannot work, or undefined. */
export function originalDestinationUnavailable(): string | undefined {
  load();
  return loadError;
}

/** The socket's file descriptor, from Node's internal handle; undefined when it has none. */
export function socketFd(socket: Socket): number | undefined {
  const handle = (socket as unknown as { _handle?: { fd?: unknown } })._handle;
  const fd = handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/**
 * The destination the client connected to before iptables redirected it, or
 * undefined: not redirected (no conntrack NAT entry), not a TCP socket, or
 * the binding is unavailable. For a connection that was not redirected the
 * kernel may answer the socket's own local address; callers compare.
 */
export function originalDestination(socket: Socket): OriginalDestination | undefined {
  const call = load();
  if (call === null) return undefined;
  const fd = socketFd(socket);
  if (fd === undefined) return undefined;
  const local = socket.localAddress ?? '';
  // An IPv4 connection on a dual-stack socket is tracked by IPv4 conntrack.
  const v6 = local.includes(':') && !local.startsWith('::ffff:');
  const buf = Buffer.alloc(v6 ? SOCKADDR_IN6_SIZE : SOCKADDR_IN_SIZE);
  const len = [buf.length];
  if (call(fd, v6 ? SOL_IPV6 : SOL_IP, SO_ORIGINAL_DST, buf, len) !== 0) return undefined;
  return decodeSockaddr(buf.subarray(0, len[0]));
}

/** Decodes a sockaddr_in / sockaddr_in6 as Linux lays them out (family in host order, port in network order). */
export function decodeSockaddr(buf: Buffer): OriginalDestination | undefined {
  if (buf.length < 8) return undefined;
  const family = buf.readUInt16LE(0);
  const port = buf.readUInt16BE(2);
  if (family === AF_INET) {
    return { address: `${buf[4]}.${buf[5]}.${buf[6]}.${buf[7]}`, port, family: 4 };
  }
  if (family === AF_INET6 && buf.length >= 24) {
    const groups: string[] = [];
    for (let i = 8; i < 24; i += 2) groups.push(buf.readUInt16BE(i).toString(16));
    return { address: compressIpv6(groups), port, family: 6 };
  }
  return undefined;
}

/** RFC 5952 text form (longest run of zero groups as `::`), which is what Node prints for addresses. */
function compressIpv6(groups: string[]): string {
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestStart < 0) return groups.join(':');
  const head = groups.slice(0, bestStart).join(':');
  const tail = groups.slice(bestStart + bestLen).join(':');
  // IPv4-mapped addresses in their dotted form, as Node prints them.
  if (bestStart === 0 && bestLen === 5 && groups[5] === 'ffff') {
    const lo = parseInt(groups[6], 16);
    const hi = parseInt(groups[7], 16);
    return `::ffff:${lo >> 8}.${lo & 255}.${hi >> 8}.${hi & 255}`;
  }
  return `${head}::${tail}`;
}

const kOriginalDestination = Symbol('jibe.originalDestination');
type RememberingSocket = Socket & { [kOriginalDestination]?: OriginalDestination };

/** Keeps the original destination on a captured connection, for the requests it carries (PASSTHROUGH clusters). */
export function rememberOriginalDestination(socket: Socket, dst: OriginalDestination): void {
  (socket as RememberingSocket)[kOriginalDestination] = dst;
}

/** The original destination remembered on a captured connection; undefined for one that was not redirected. */
export function rememberedOriginalDestination(socket: Socket | undefined): OriginalDestination | undefined {
  return socket === undefined ? undefined : (socket as RememberingSocket)[kOriginalDestination];
}
