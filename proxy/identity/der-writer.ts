// The handful of DER encodings a PKCS#10 request needs. Written out here
// rather than loaded from node-forge: forge costs a sidecar ~10 MB of RSS, and
// a CSR is a few fixed structures around a public key node:crypto encodes.
// Lengths and tags follow X.690 (DER: definite, minimal lengths).

export function tlv(tag: number, content: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([tag]), encodeLength(content.length), content]);
}

export function sequence(...items: Uint8Array[]): Buffer {
  return tlv(0x30, Buffer.concat(items));
}

export function set(...items: Uint8Array[]): Buffer {
  // DER sorts SET OF members; every set built here holds one.
  if (items.length > 1) throw new RangeError('der-writer sets hold one member');
  return tlv(0x31, Buffer.concat(items));
}

export function integer(value: number): Buffer {
  if (!Number.isInteger(value) || value < 0 || value > 127) throw new RangeError('der-writer integers are 0..127');
  return tlv(0x02, Buffer.from([value]));
}

export function objectId(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  const bytes = [40 * arcs[0] + arcs[1]];
  for (const arc of arcs.slice(2)) {
    const base128 = [arc & 0x7f];
    for (let rest = Math.floor(arc / 128); rest > 0; rest = Math.floor(rest / 128)) base128.unshift((rest & 0x7f) | 0x80);
    bytes.push(...base128);
  }
  return tlv(0x06, Buffer.from(bytes));
}

export function octetString(content: Uint8Array): Buffer {
  return tlv(0x04, content);
}

export function bitString(content: Uint8Array): Buffer {
  // Leading byte: number of unused bits in the last byte (always whole bytes here).
  return tlv(0x03, Buffer.concat([Buffer.from([0]), content]));
}

export function booleanTrue(): Buffer {
  return Buffer.from([0x01, 0x01, 0xff]);
}

export function nullValue(): Buffer {
  return Buffer.from([0x05, 0x00]);
}

/** A context-specific tag: `[n]` constructed (0xa0 + n) or primitive (0x80 + n, IMPLICIT strings). */
export function contextTag(n: number, constructed: boolean, content: Uint8Array): Buffer {
  return tlv((constructed ? 0xa0 : 0x80) | n, content);
}

export function toPem(label: string, der: Uint8Array): string {
  const base64 = Buffer.from(der).toString('base64');
  const lines = base64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

function encodeLength(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  const bytes: number[] = [];
  for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}
