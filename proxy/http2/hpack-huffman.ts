// RFC 7541 Appendix B Huffman code, and the encoder/decoder built from it once at module load.
//
// Decoding walks the code tree four bits at a time through a precomputed state table
// (nghttp2's approach): a state is an internal tree node, and each (state, nibble) cell says
// where the walk lands, which byte (if any) was completed on the way, whether the walk may
// stop there (the bits since the last symbol are a valid padding: all 1s, at most 7), and
// whether EOS was hit. No code is shorter than 5 bits, so a nibble completes at most one symbol.

// [code, bit length] for symbols 0..255 and EOS (256), most significant bit first.
const CODE_TABLE: readonly number[] = [
  0x1ff8, 13, 0x7fffd8, 23, 0xfffffe2, 28, 0xfffffe3, 28, 0xfffffe4, 28, 0xfffffe5, 28, 0xfffffe6, 28, 0xfffffe7, 28,
  0xfffffe8, 28, 0xffffea, 24, 0x3ffffffc, 30, 0xfffffe9, 28, 0xfffffea, 28, 0x3ffffffd, 30, 0xfffffeb, 28, 0xfffffec, 28,
  0xfffffed, 28, 0xfffffee, 28, 0xfffffef, 28, 0xffffff0, 28, 0xffffff1, 28, 0xffffff2, 28, 0x3ffffffe, 30, 0xffffff3, 28,
  0xffffff4, 28, 0xffffff5, 28, 0xffffff6, 28, 0xffffff7, 28, 0xffffff8, 28, 0xffffff9, 28, 0xffffffa, 28, 0xffffffb, 28,
  0x14, 6, 0x3f8, 10, 0x3f9, 10, 0xffa, 12, 0x1ff9, 13, 0x15, 6, 0xf8, 8, 0x7fa, 11,
  0x3fa, 10, 0x3fb, 10, 0xf9, 8, 0x7fb, 11, 0xfa, 8, 0x16, 6, 0x17, 6, 0x18, 6,
  0x0, 5, 0x1, 5, 0x2, 5, 0x19, 6, 0x1a, 6, 0x1b, 6, 0x1c, 6, 0x1d, 6,
  0x1e, 6, 0x1f, 6, 0x5c, 7, 0xfb, 8, 0x7ffc, 15, 0x20, 6, 0xffb, 12, 0x3fc, 10,
  0x1ffa, 13, 0x21, 6, 0x5d, 7, 0x5e, 7, 0x5f, 7, 0x60, 7, 0x61, 7, 0x62, 7,
  0x63, 7, 0x64, 7, 0x65, 7, 0x66, 7, 0x67, 7, 0x68, 7, 0x69, 7, 0x6a, 7,
  0x6b, 7, 0x6c, 7, 0x6d, 7, 0x6e, 7, 0x6f, 7, 0x70, 7, 0x71, 7, 0x72, 7,
  0xfc, 8, 0x73, 7, 0xfd, 8, 0x1ffb, 13, 0x7fff0, 19, 0x1ffc, 13, 0x3ffc, 14, 0x22, 6,
  0x7ffd, 15, 0x3, 5, 0x23, 6, 0x4, 5, 0x24, 6, 0x5, 5, 0x25, 6, 0x26, 6,
  0x27, 6, 0x6, 5, 0x74, 7, 0x75, 7, 0x28, 6, 0x29, 6, 0x2a, 6, 0x7, 5,
  0x2b, 6, 0x76, 7, 0x2c, 6, 0x8, 5, 0x9, 5, 0x2d, 6, 0x77, 7, 0x78, 7,
  0x79, 7, 0x7a, 7, 0x7b, 7, 0x7ffe, 15, 0x7fc, 11, 0x3ffd, 14, 0x1ffd, 13, 0xffffffc, 28,
  0xfffe6, 20, 0x3fffd2, 22, 0xfffe7, 20, 0xfffe8, 20, 0x3fffd3, 22, 0x3fffd4, 22, 0x3fffd5, 22, 0x7fffd9, 23,
  0x3fffd6, 22, 0x7fffda, 23, 0x7fffdb, 23, 0x7fffdc, 23, 0x7fffdd, 23, 0x7fffde, 23, 0xffffeb, 24, 0x7fffdf, 23,
  0xffffec, 24, 0xffffed, 24, 0x3fffd7, 22, 0x7fffe0, 23, 0xffffee, 24, 0x7fffe1, 23, 0x7fffe2, 23, 0x7fffe3, 23,
  0x7fffe4, 23, 0x1fffdc, 21, 0x3fffd8, 22, 0x7fffe5, 23, 0x3fffd9, 22, 0x7fffe6, 23, 0x7fffe7, 23, 0xffffef, 24,
  0x3fffda, 22, 0x1fffdd, 21, 0xfffe9, 20, 0x3fffdb, 22, 0x3fffdc, 22, 0x7fffe8, 23, 0x7fffe9, 23, 0x1fffde, 21,
  0x7fffea, 23, 0x3fffdd, 22, 0x3fffde, 22, 0xfffff0, 24, 0x1fffdf, 21, 0x3fffdf, 22, 0x7fffeb, 23, 0x7fffec, 23,
  0x1fffe0, 21, 0x1fffe1, 21, 0x3fffe0, 22, 0x1fffe2, 21, 0x7fffed, 23, 0x3fffe1, 22, 0x7fffee, 23, 0x7fffef, 23,
  0xfffea, 20, 0x3fffe2, 22, 0x3fffe3, 22, 0x3fffe4, 22, 0x7ffff0, 23, 0x3fffe5, 22, 0x3fffe6, 22, 0x7ffff1, 23,
  0x3ffffe0, 26, 0x3ffffe1, 26, 0xfffeb, 20, 0x7fff1, 19, 0x3fffe7, 22, 0x7ffff2, 23, 0x3fffe8, 22, 0x1ffffec, 25,
  0x3ffffe2, 26, 0x3ffffe3, 26, 0x3ffffe4, 26, 0x7ffffde, 27, 0x7ffffdf, 27, 0x3ffffe5, 26, 0xfffff1, 24, 0x1ffffed, 25,
  0x7fff2, 19, 0x1fffe3, 21, 0x3ffffe6, 26, 0x7ffffe0, 27, 0x7ffffe1, 27, 0x3ffffe7, 26, 0x7ffffe2, 27, 0xfffff2, 24,
  0x1fffe4, 21, 0x1fffe5, 21, 0x3ffffe8, 26, 0x3ffffe9, 26, 0xffffffd, 28, 0x7ffffe3, 27, 0x7ffffe4, 27, 0x7ffffe5, 27,
  0xfffec, 20, 0xfffff3, 24, 0xfffed, 20, 0x1fffe6, 21, 0x3fffe9, 22, 0x1fffe7, 21, 0x1fffe8, 21, 0x7ffff3, 23,
  0x3fffea, 22, 0x3fffeb, 22, 0x1ffffee, 25, 0x1ffffef, 25, 0xfffff4, 24, 0xfffff5, 24, 0x3ffffea, 26, 0x7ffff4, 23,
  0x3ffffeb, 26, 0x7ffffe6, 27, 0x3ffffec, 26, 0x3ffffed, 26, 0x7ffffe7, 27, 0x7ffffe8, 27, 0x7ffffe9, 27, 0x7ffffea, 27,
  0x7ffffeb, 27, 0xffffffe, 28, 0x7ffffec, 27, 0x7ffffed, 27, 0x7ffffee, 27, 0x7ffffef, 27, 0x7fffff0, 27, 0x3ffffee, 26,
  0x3fffffff, 30,
];

const EOS = 256;

/** Code of each symbol, right-aligned. */
export const HUFFMAN_CODES = new Uint32Array(257);
/** Bit length of each symbol's code (5..30). */
export const HUFFMAN_LENGTHS = new Uint8Array(257);
for (let sym = 0; sym <= EOS; sym++) {
  HUFFMAN_CODES[sym] = CODE_TABLE[2 * sym];
  HUFFMAN_LENGTHS[sym] = CODE_TABLE[2 * sym + 1];
}

const EMIT = 1 << 16;
const ACCEPT = 1 << 17;
const FAIL = 1 << 18;

/** Decode cell = next state (bits 0-7) | emitted byte (bits 8-15) | EMIT | ACCEPT | FAIL; 256 states x 16 nibbles. */
const DECODE_TABLE: Uint32Array = buildDecodeTable();

function buildDecodeTable(): Uint32Array {
  // The code is complete with 257 leaves, so the tree has exactly 256 internal nodes: state ids.
  // child[node * 2 + bit] >= 0 is an internal node; -1 - sym is a leaf.
  const child = new Int32Array(512).fill(0x7fffffff);
  let nodes = 1;
  for (let sym = 0; sym <= EOS; sym++) {
    const code = HUFFMAN_CODES[sym];
    const len = HUFFMAN_LENGTHS[sym];
    let node = 0;
    for (let b = len - 1; b > 0; b--) {
      const slot = node * 2 + ((code >>> b) & 1);
      if (child[slot] === 0x7fffffff) child[slot] = nodes++;
      node = child[slot];
    }
    child[node * 2 + (code & 1)] = -1 - sym;
  }
  if (nodes !== 256) throw new Error(`hpack huffman: ${nodes} internal nodes, expected 256`);

  // A walk may end at a node reached by at most 7 one-bits since the last symbol (RFC 7541 §5.2).
  const acceptable = new Uint8Array(256);
  for (let node = 0, depth = 0; depth <= 7; depth++) {
    acceptable[node] = 1;
    node = child[node * 2 + 1];
  }

  const table = new Uint32Array(256 * 16);
  for (let state = 0; state < 256; state++) {
    for (let nibble = 0; nibble < 16; nibble++) {
      let node = state;
      let cell = 0;
      for (let b = 3; b >= 0; b--) {
        const next = child[node * 2 + ((nibble >>> b) & 1)];
        if (next >= 0) {
          node = next;
          continue;
        }
        const sym = -1 - next;
        if (sym === EOS) {
          cell = FAIL;
          break;
        }
        cell = EMIT | (sym << 8);
        node = 0;
      }
      if (cell !== FAIL) table[state * 16 + nibble] = cell | node | (acceptable[node] === 1 ? ACCEPT : 0);
      else table[state * 16 + nibble] = FAIL;
    }
  }
  return table;
}

/** Failure results of huffmanDecode (negative so they never collide with a length). */
export const HUFFMAN_ERR_EOS = -1;
export const HUFFMAN_ERR_PADDING = -2;

/**
 * Decodes src[start, end) into dst from offset 0 and returns the decoded length, or
 * HUFFMAN_ERR_EOS / HUFFMAN_ERR_PADDING for an invalid string. dst must hold
 * huffmanMaxDecodedLength(end - start) bytes.
 */
export function huffmanDecode(src: Uint8Array, start: number, end: number, dst: Uint8Array): number {
  const table = DECODE_TABLE;
  let state = 0;
  let cell = ACCEPT;
  let out = 0;
  for (let i = start; i < end; i++) {
    const byte = src[i];
    cell = table[(state << 4) | (byte >>> 4)];
    if ((cell & FAIL) !== 0) return HUFFMAN_ERR_EOS;
    if ((cell & EMIT) !== 0) dst[out++] = (cell >>> 8) & 0xff;
    state = cell & 0xff;
    cell = table[(state << 4) | (byte & 15)];
    if ((cell & FAIL) !== 0) return HUFFMAN_ERR_EOS;
    if ((cell & EMIT) !== 0) dst[out++] = (cell >>> 8) & 0xff;
    state = cell & 0xff;
  }
  return (cell & ACCEPT) !== 0 ? out : HUFFMAN_ERR_PADDING;
}

/** Upper bound of the decoded length of n Huffman bytes: the shortest code is 5 bits. */
export function huffmanMaxDecodedLength(n: number): number {
  return ((n * 8) / 5) | 0;
}

/** Bytes the Huffman encoding of a latin1 string takes (codes padded to a whole byte). */
export function huffmanEncodedLength(s: string): number {
  const lengths = HUFFMAN_LENGTHS;
  let bits = 0;
  for (let i = 0; i < s.length; i++) bits += lengths[s.charCodeAt(i) & 0xff];
  return (bits + 7) >>> 3;
}

/** Writes the Huffman encoding of latin1 string s at dst[off] and returns the offset after it. */
export function huffmanEncode(s: string, dst: Uint8Array, off: number): number {
  const codes = HUFFMAN_CODES;
  const lengths = HUFFMAN_LENGTHS;
  // acc holds nbits < 8 pending bits; a code is added in pieces of at most 24 bits so
  // acc never exceeds 31 bits and stays an exact int32.
  let acc = 0;
  let nbits = 0;
  for (let i = 0; i < s.length; i++) {
    const sym = s.charCodeAt(i) & 0xff;
    let code = codes[sym];
    let len = lengths[sym];
    if (len > 24) {
      const high = len - 16;
      acc = (acc << high) | (code >>> 16);
      nbits += high;
      while (nbits >= 8) {
        nbits -= 8;
        dst[off++] = acc >>> nbits;
      }
      acc &= (1 << nbits) - 1;
      code &= 0xffff;
      len = 16;
    }
    acc = (acc << len) | code;
    nbits += len;
    while (nbits >= 8) {
      nbits -= 8;
      dst[off++] = acc >>> nbits;
    }
    acc &= (1 << nbits) - 1;
  }
  // Pad with the most significant bits of EOS, i.e. ones (RFC 7541 §5.2).
  if (nbits > 0) dst[off++] = (acc << (8 - nbits)) | (0xff >>> nbits);
  return off;
}
