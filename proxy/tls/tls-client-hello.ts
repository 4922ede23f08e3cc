// Reads the ALPN list out of a TLS ClientHello without terminating it (what
// Envoy's tls_inspector does). On a PERMISSIVE tcp or auto port this tells a
// calling Jibe proxy, which always offers the `istio` protocol as Istio's
// sidecars do, from an application that speaks TLS itself: the first is
// terminated as mesh mTLS, the second is relayed untouched to the app.

/** The ALPN value every mesh client offers besides the application protocol (Istio's marker). */
export const MESH_ALPN_MARKER = 'istio';

/**
 * ALPN protocols the ClientHello in `head` offers ([] when it offers none);
 * `undefined` while the first record is not complete; `null` when the bytes
 * are not a ClientHello.
 */
export function clientHelloAlpn(head: Buffer): string[] | undefined | null {
  if (head.length < 5) return head.length > 0 && head[0] !== 0x16 ? null : undefined;
  if (head[0] !== 0x16 || head[1] !== 0x03) return null;
  const recordEnd = 5 + head.readUInt16BE(3);
  if (head.length < recordEnd) return undefined;
  let p = 5;
  // Handshake header: type 1 (ClientHello), 24-bit length.
  if (head[p] !== 0x01) return null;
  const helloEnd = Math.min(recordEnd, p + 4 + head.readUIntBE(p + 1, 3));
  p += 4;
  // client_version (2), random (32).
  p += 34;
  if (p + 1 > helloEnd) return null;
  p += 1 + head[p]; // session id
  if (p + 2 > helloEnd) return null;
  p += 2 + head.readUInt16BE(p); // cipher suites
  if (p + 1 > helloEnd) return null;
  p += 1 + head[p]; // compression methods
  if (p + 2 > helloEnd) return [];
  const extEnd = Math.min(helloEnd, p + 2 + head.readUInt16BE(p));
  p += 2;
  while (p + 4 <= extEnd) {
    const type = head.readUInt16BE(p);
    const len = head.readUInt16BE(p + 2);
    p += 4;
    if (p + len > extEnd) return null;
    if (type === 0x0010) return alpnList(head, p, p + len);
    p += len;
  }
  return [];
}

function alpnList(buf: Buffer, start: number, end: number): string[] | null {
  if (start + 2 > end) return null;
  const listEnd = Math.min(end, start + 2 + buf.readUInt16BE(start));
  const out: string[] = [];
  let p = start + 2;
  while (p < listEnd) {
    const len = buf[p];
    if (p + 1 + len > listEnd) return null;
    out.push(buf.toString('latin1', p + 1, p + 1 + len));
    p += 1 + len;
  }
  return out;
}
