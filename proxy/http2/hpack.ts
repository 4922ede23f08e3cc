// HPACK (RFC 7541) header compression for the proxy's own HTTP/2 codec.
//
// Both sides keep the dynamic table as a ring of (name, value) strings. Every entry costs at
// least 32 bytes, so a table of N bytes never holds more than N/32 entries: the ring starts at
// that bound for the default 4096-byte table and only grows (doubling) for larger tables that
// are really filled, so a generous SETTINGS_HEADER_TABLE_SIZE costs nothing up front. Strings are latin1 (one char per byte), so a
// string's length is its octet length everywhere below.

import {
  HUFFMAN_ERR_EOS,
  huffmanDecode,
  huffmanEncode,
  huffmanEncodedLength,
  huffmanMaxDecodedLength,
} from './hpack-huffman.ts';
import { STATIC_NAME_INDEX, STATIC_NAMES, STATIC_TABLE_LENGTH, STATIC_VALUES } from './hpack-static-table.ts';

/** Any decoding error; the connection answers COMPRESSION_ERROR and the decoder is not used again. */
export class HpackError extends Error {
  override name = 'HpackError';
}

/** The SETTINGS_HEADER_TABLE_SIZE default (RFC 9113 §6.5.2) and our ceiling for the peer's table. */
const DEFAULT_TABLE_SIZE = 4096;
/** RFC 7541 §4.1: per-entry overhead. */
const ENTRY_OVERHEAD = 32;
/** Integers above this are refused: no legitimate length, index or table size comes near it. */
const MAX_INTEGER = 0x7fffffff;
/** Ring slots allocated up front: enough for a full default-size table. */
const INITIAL_RING = DEFAULT_TABLE_SIZE / ENTRY_OVERHEAD;

// Node's latin1 fast paths exist on every Buffer but are missing from @types/node.
type Latin1Buffer = Buffer & {
  latin1Slice(start: number, end: number): string;
  utf8Slice(start: number, end: number): string;
  latin1Write(s: string, offset: number, length?: number): number;
};

const EMPTY = Buffer.alloc(0) as Latin1Buffer;

/** Ring of dynamic table entries, newest at dynamic index 1. */
class DynamicTable {
  names: string[];
  values: string[];
  capacity: number;
  /** Slot the next insertion goes to. */
  head = 0;
  count = 0;
  /** Sum of entry sizes (§4.1). */
  size = 0;
  maxSize: number;
  /** Insertions ever made; the encoder turns its insertion stamps into indices with it. */
  inserted = 0;

  constructor(limit: number) {
    this.capacity = Math.max(1, Math.min(INITIAL_RING, Math.floor(limit / ENTRY_OVERHEAD)));
    this.names = new Array<string>(this.capacity).fill('');
    this.values = new Array<string>(this.capacity).fill('');
    this.maxSize = limit;
  }

  /** Slot of dynamic index i (1 = newest); the caller checks 1 <= i <= count. */
  slot(i: number): number {
    const s = this.head - i;
    return s < 0 ? s + this.capacity : s;
  }

  /** Drops the oldest entry and returns its slot. */
  evictOldest(): number {
    let s = this.head - this.count;
    if (s < 0) s += this.capacity;
    this.size -= this.names[s].length + this.values[s].length + ENTRY_OVERHEAD;
    this.count--;
    return s;
  }

  /** §4.4: evicts until the entry fits, then adds it; an entry larger than the table just empties it. */
  add(name: string, value: string, onEvict?: (slot: number, stamp: number) => void): void {
    const entrySize = name.length + value.length + ENTRY_OVERHEAD;
    while (this.count > 0 && this.size + entrySize > this.maxSize) {
      const stamp = this.inserted - this.count;
      const s = this.evictOldest();
      if (onEvict !== undefined) onEvict(s, stamp);
    }
    if (entrySize > this.maxSize) return;
    if (this.count === this.capacity) this.grow();
    this.names[this.head] = name;
    this.values[this.head] = value;
    this.head = this.head + 1 === this.capacity ? 0 : this.head + 1;
    this.count++;
    this.size += entrySize;
    this.inserted++;
  }

  /** Doubles the ring, laying entries out oldest first from slot 0. */
  private grow(): void {
    const capacity = this.capacity * 2;
    const names = new Array<string>(capacity).fill('');
    const values = new Array<string>(capacity).fill('');
    for (let i = this.count, to = 0; i >= 1; i--, to++) {
      const s = this.slot(i);
      names[to] = this.names[s];
      values[to] = this.values[s];
    }
    this.names = names;
    this.values = values;
    this.capacity = capacity;
    this.head = this.count;
  }

  entries(): Array<[string, string]> {
    const out: Array<[string, string]> = [];
    for (let i = 1; i <= this.count; i++) {
      const s = this.slot(i);
      out.push([this.names[s], this.values[s]]);
    }
    return out;
  }
}

/** Huffman output scratch shared by every decoder: decoding is synchronous, one string at a time. */
let huffmanScratch = Buffer.allocUnsafe(4096);

export class HpackDecoder {
  private readonly table: DynamicTable;
  /** The most a size update may ask for: what we advertise in SETTINGS_HEADER_TABLE_SIZE. */
  private readonly limit: number;
  private block: Latin1Buffer = EMPTY;
  private pos = 0;

  constructor(maxTableSize = DEFAULT_TABLE_SIZE) {
    if (!Number.isInteger(maxTableSize) || maxTableSize < 0 || maxTableSize > MAX_INTEGER) {
      throw new RangeError(`HPACK table size must be an integer in 0..${MAX_INTEGER}, got ${maxTableSize}`);
    }
    this.limit = maxTableSize;
    this.table = new DynamicTable(maxTableSize);
  }

  /** For tests and debugging only: the dynamic table's size in octets (§4.1). */
  get tableSize(): number {
    return this.table.size;
  }

  /** For tests and debugging only: the dynamic table's current maximum size. */
  get maxTableSize(): number {
    return this.table.maxSize;
  }

  /** For tests and debugging only: dynamic table entries, newest (index 62) first. */
  tableEntries(): Array<[string, string]> {
    return this.table.entries();
  }

  /**
   * Decodes one complete header block, appending [name, value, …] to `out` (latin1 strings).
   * Returns the header list size (§4.1: name + value + 32 per field). Once the running size
   * exceeds `maxListSize` fields stop being appended, but decoding goes on so the dynamic
   * table stays in step with the peer. Throws HpackError on a malformed block.
   */
  decode(block: Buffer, out: string[], maxListSize = Infinity): number {
    this.block = block as Latin1Buffer;
    this.pos = 0;
    const end = block.length;
    const table = this.table;
    let listSize = 0;
    let sawField = false;
    while (this.pos < end) {
      const first = block[this.pos];
      let name: string;
      let value: string;
      if (first >= 0x80) {
        // §6.1 indexed header field.
        const index = this.readInt(7);
        if (index === 0) throw new HpackError('HPACK indexed header field with index 0');
        if (index <= STATIC_TABLE_LENGTH) {
          name = STATIC_NAMES[index];
          value = STATIC_VALUES[index];
        } else {
          const i = index - STATIC_TABLE_LENGTH;
          if (i > table.count) throw new HpackError(`HPACK index ${index} is beyond the dynamic table (${table.count} entries)`);
          const s = table.slot(i);
          name = table.names[s];
          value = table.values[s];
        }
      } else if (first >= 0x40) {
        // §6.2.1 literal with incremental indexing.
        name = this.readName(6);
        value = this.readString();
        table.add(name, value);
      } else if (first >= 0x20) {
        // §6.3 dynamic table size update: only before the first field of a block (§4.2).
        if (sawField) throw new HpackError('HPACK dynamic table size update after a header field');
        const size = this.readInt(5);
        if (size > this.limit) throw new HpackError(`HPACK dynamic table size update to ${size} exceeds the advertised ${this.limit}`);
        table.maxSize = size;
        while (table.size > size) table.evictOldest();
        continue;
      } else {
        // §6.2.2 without indexing (0000) and §6.2.3 never indexed (0001): same layout.
        name = this.readName(4);
        value = this.readString();
      }
      sawField = true;
      listSize += name.length + value.length + ENTRY_OVERHEAD;
      if (listSize <= maxListSize) out.push(name, value);
    }
    this.block = EMPTY;
    return listSize;
  }

  /** §5.1 integer with an N-bit prefix at this.pos (the representation bits above it are ignored). */
  private readInt(prefixBits: number): number {
    const block = this.block;
    const mask = (1 << prefixBits) - 1;
    let value = block[this.pos++] & mask;
    if (value < mask) return value;
    let shift = 0;
    for (let n = 0; ; n++) {
      if (n === 5) throw new HpackError('HPACK integer has more than 5 continuation bytes');
      if (this.pos >= block.length) throw new HpackError('HPACK integer truncated at the end of the block');
      const b = block[this.pos++];
      value += (b & 0x7f) * 2 ** shift;
      if (value > MAX_INTEGER) throw new HpackError('HPACK integer exceeds 2^31-1');
      if (b < 0x80) return value;
      shift += 7;
    }
  }

  /** Name of a literal field: an index into either table, or a literal string when the index is 0. */
  private readName(prefixBits: number): string {
    const index = this.readInt(prefixBits);
    if (index === 0) return this.readString();
    if (index <= STATIC_TABLE_LENGTH) return STATIC_NAMES[index];
    const i = index - STATIC_TABLE_LENGTH;
    if (i > this.table.count) throw new HpackError(`HPACK name index ${index} is beyond the dynamic table (${this.table.count} entries)`);
    return this.table.names[this.table.slot(i)];
  }

  /** §5.2 string literal, Huffman-coded or raw. */
  private readString(): string {
    const block = this.block;
    if (this.pos >= block.length) throw new HpackError('HPACK string literal missing at the end of the block');
    const huffman = block[this.pos] >= 0x80;
    const length = this.readInt(7);
    const start = this.pos;
    const end = start + length;
    if (end > block.length) throw new HpackError(`HPACK string literal of ${length} octets overruns the block`);
    this.pos = end;
    if (!huffman) return bytesToString(block, start, end);
    const need = huffmanMaxDecodedLength(length);
    if (need > huffmanScratch.length) huffmanScratch = Buffer.allocUnsafe(Math.max(need, huffmanScratch.length * 2));
    const n = huffmanDecode(block, start, end, huffmanScratch);
    if (n < 0) {
      throw new HpackError(n === HUFFMAN_ERR_EOS
        ? 'HPACK Huffman string contains EOS'
        : 'HPACK Huffman string ends with invalid padding (more than 7 bits, or not all ones)');
    }
    return bytesToString(huffmanScratch as Latin1Buffer, 0, n);
  }
}

/**
 * buf[start, end) as a latin1 string. Node's latin1Slice pays ~150 ns per call whatever the
 * length, while utf8Slice, identical on ASCII, costs less than half that; header strings are
 * almost always short ASCII, so check for it. Tiny strings are cheapest built in JS.
 */
function bytesToString(buf: Latin1Buffer, start: number, end: number): string {
  const length = end - start;
  if (length <= 4) {
    let s = '';
    for (let i = start; i < end; i++) s += String.fromCharCode(buf[i]);
    return s;
  }
  if (length <= 256) {
    let bits = 0;
    for (let i = start; i < end; i++) bits |= buf[i];
    if (bits < 0x80) return buf.utf8Slice(start, end);
  }
  return buf.latin1Slice(start, end);
}

// How the encoder represents a field that is not an exact table match.
const MODE_INDEX = 0;
const MODE_NO_INDEX = 1;
const MODE_NEVER_INDEX = 2;
/** Never indexed when shorter than SHORT_COOKIE, else indexed. */
const MODE_COOKIE = 3;

/**
 * Fields whose values change per request (indexing them would only churn the table) or are
 * credentials (never indexed, §7.1.3, so intermediaries do not compress them either).
 * `cookie` is handled apart: only short cookies are guessable enough to protect (as nghttp2).
 */
const FIELD_MODES: ReadonlyMap<string, number> = new Map([
  [':path', MODE_NO_INDEX],
  [':status', MODE_NO_INDEX],
  ['content-length', MODE_NO_INDEX],
  ['date', MODE_NO_INDEX],
  ['x-request-id', MODE_NO_INDEX],
  ['traceparent', MODE_NO_INDEX],
  ['tracestate', MODE_NO_INDEX],
  ['x-b3-traceid', MODE_NO_INDEX],
  ['x-b3-spanid', MODE_NO_INDEX],
  ['x-b3-parentspanid', MODE_NO_INDEX],
  ['grpc-timeout', MODE_NO_INDEX],
  ['b3', MODE_NO_INDEX],
  ['etag', MODE_NO_INDEX],
  ['age', MODE_NO_INDEX],
  ['last-modified', MODE_NO_INDEX],
  ['expires', MODE_NO_INDEX],
  ['x-envoy-upstream-service-time', MODE_NO_INDEX],
  ['x-envoy-attempt-count', MODE_NO_INDEX],
  ['authorization', MODE_NEVER_INDEX],
  ['proxy-authorization', MODE_NEVER_INDEX],
  ['set-cookie', MODE_NEVER_INDEX],
  ['cookie', MODE_COOKIE],
]);
const SHORT_COOKIE = 20;

/**
 * One lookup per field for everything known about a name: its lowest static index (bits 0-7,
 * 0 = not static) and its mode (bits 8+).
 */
const KNOWN_NAMES: ReadonlyMap<string, number> = (() => {
  const known = new Map<string, number>();
  for (const [name, index] of STATIC_NAME_INDEX) known.set(name, index);
  for (const [name, mode] of FIELD_MODES) known.set(name, (known.get(name) ?? 0) | (mode << 8));
  return known;
})();

/** The encoder's index of the dynamic entries sharing one name. */
class DynamicName {
  /** Insertion stamp of the newest entry with this name. */
  newest = 0;
  /** value -> insertion stamp of its newest copy. */
  readonly values = new Map<string, number>();
}

/** First-byte pattern and prefix width of each literal representation (§6.2). */
const LITERAL_FLAGS = [0x40, 0x00, 0x10];
const LITERAL_PREFIX = [6, 4, 4];

export interface HpackEncoderOptions {
  /** Huffman-code strings where that is shorter (RFC 7541 §5.2); off by default to save CPU. */
  huffman?: boolean;
}

export class HpackEncoder {
  private readonly table = new DynamicTable(DEFAULT_TABLE_SIZE);
  private readonly huffman: boolean;
  /** Dynamic entries by name, then value; two lookups of existing strings, no key to build. */
  private readonly dynamic = new Map<string, DynamicName>();
  /** Smallest size set since the last block, and whether a size update is owed (§4.2). */
  private pendingMin = -1;
  private buf: Latin1Buffer = Buffer.allocUnsafe(4096) as Latin1Buffer;
  private readonly onEvict = (slot: number, stamp: number): void => {
    const name = this.table.names[slot];
    const entry = this.dynamic.get(name);
    if (entry === undefined) return;
    // The evicted entry is the oldest: if it is also its name's newest, it was the name's last.
    if (entry.newest === stamp) this.dynamic.delete(name);
    else {
      const value = this.table.values[slot];
      if (entry.values.get(value) === stamp) entry.values.delete(value);
    }
  };

  constructor(options: HpackEncoderOptions = {}) {
    this.huffman = options.huffman === true;
  }

  /** For tests and debugging only: the dynamic table's size in octets (§4.1). */
  get tableSize(): number {
    return this.table.size;
  }

  /** For tests and debugging only: dynamic table entries, newest first. */
  tableEntries(): Array<[string, string]> {
    return this.table.entries();
  }

  /**
   * The peer's SETTINGS_HEADER_TABLE_SIZE changed. The table shrinks now to min(n, 4096) and the
   * next block opens with size updates: the smallest size since the last block, then the final one.
   */
  setMaxTableSize(n: number): void {
    if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`HPACK table size must be a 32-bit unsigned integer, got ${n}`);
    const size = Math.min(n, DEFAULT_TABLE_SIZE);
    const table = this.table;
    // A SETTINGS frame restating the current size changes nothing worth signalling.
    if (this.pendingMin < 0 && size === table.maxSize) return;
    table.maxSize = size;
    while (table.size > size) {
      const stamp = table.inserted - table.count;
      this.onEvict(table.evictOldest(), stamp);
    }
    if (this.pendingMin < 0 || size < this.pendingMin) this.pendingMin = size;
  }

  /** Encodes a flat [name, value, …] list (lower-case names, pseudo-headers first) into one header block. */
  encode(fields: readonly string[]): Buffer {
    const table = this.table;
    let buf = this.buf;
    let off = 0;
    if (this.pendingMin >= 0) {
      off = writeHpackInteger(buf, off, 5, 0x20, this.pendingMin);
      if (this.pendingMin !== table.maxSize) off = writeHpackInteger(buf, off, 5, 0x20, table.maxSize);
      this.pendingMin = -1;
    }
    for (let f = 0; f + 1 < fields.length; f += 2) {
      const name = fields[f];
      const value = fields[f + 1];
      // Worst case: two 6-byte integers, a prefix byte, both strings raw.
      const need = off + name.length + value.length + 16;
      if (need > buf.length) buf = this.grow(off, need);

      const known = KNOWN_NAMES.get(name) ?? 0;
      let nameIndex = known & 0xff;
      if (nameIndex !== 0) {
        let hit = 0;
        for (let i = nameIndex; i <= STATIC_TABLE_LENGTH && STATIC_NAMES[i] === name; i++) {
          if (STATIC_VALUES[i] === value) {
            hit = i;
            break;
          }
        }
        if (hit !== 0) {
          off = writeHpackInteger(buf, off, 7, 0x80, hit);
          continue;
        }
      }

      let mode = known >>> 8;
      if (mode === MODE_COOKIE) mode = value.length < SHORT_COOKIE ? MODE_NEVER_INDEX : MODE_INDEX;
      // An entry over 3/4 of the table would flush nearly everything for one field (as nghttp2).
      if (mode === MODE_INDEX && (name.length + value.length + ENTRY_OVERHEAD) * 4 > table.maxSize * 3) mode = MODE_NO_INDEX;

      const dynamic = this.dynamic.get(name);
      if (dynamic !== undefined) {
        if (mode === MODE_INDEX) {
          const stamp = dynamic.values.get(value);
          if (stamp !== undefined) {
            off = writeHpackInteger(buf, off, 7, 0x80, STATIC_TABLE_LENGTH + table.inserted - stamp);
            continue;
          }
        }
        if (nameIndex === 0) nameIndex = STATIC_TABLE_LENGTH + table.inserted - dynamic.newest;
      }

      off = writeHpackInteger(buf, off, LITERAL_PREFIX[mode], LITERAL_FLAGS[mode], nameIndex);
      if (nameIndex === 0) off = this.writeString(buf, off, name);
      off = this.writeString(buf, off, value);

      if (mode === MODE_INDEX) {
        const stamp = table.inserted;
        table.add(name, value, this.onEvict);
        // add() refuses an entry larger than the whole table; then there is nothing to remember.
        if (table.inserted !== stamp) {
          // Looked up again: the eviction inside add() may have dropped this name's record.
          let entry = this.dynamic.get(name);
          if (entry === undefined) {
            entry = new DynamicName();
            this.dynamic.set(name, entry);
          }
          entry.newest = stamp;
          entry.values.set(value, stamp);
        }
      }
    }
    const block = Buffer.allocUnsafe(off);
    buf.copy(block, 0, 0, off);
    return block;
  }

  private grow(used: number, need: number): Latin1Buffer {
    const next = Buffer.allocUnsafe(Math.max(need, this.buf.length * 2)) as Latin1Buffer;
    this.buf.copy(next, 0, 0, used);
    this.buf = next;
    return next;
  }

  private writeString(buf: Latin1Buffer, off: number, s: string): number {
    const length = s.length;
    if (this.huffman && length > 0) {
      const encoded = huffmanEncodedLength(s);
      if (encoded < length) {
        off = writeHpackInteger(buf, off, 7, 0x80, encoded);
        return huffmanEncode(s, buf, off);
      }
    }
    off = writeHpackInteger(buf, off, 7, 0x00, length);
    // Short strings are cheaper copied in JS than through the native write call.
    if (length < 16) {
      for (let i = 0; i < length; i++) buf[off + i] = s.charCodeAt(i);
      return off + length;
    }
    return off + buf.latin1Write(s, off, length);
  }
}

/**
 * §5.1 integer with an N-bit prefix at buf[off]; `flags` are the representation bits above the
 * prefix. Returns the offset after it. Exported for the RFC 7541 C.1 tests.
 */
export function writeHpackInteger(buf: Uint8Array, off: number, prefixBits: number, flags: number, value: number): number {
  const mask = (1 << prefixBits) - 1;
  if (value < mask) {
    buf[off] = flags | value;
    return off + 1;
  }
  buf[off++] = flags | mask;
  value -= mask;
  while (value >= 0x80) {
    buf[off++] = (value & 0x7f) | 0x80;
    value = Math.floor(value / 128);
  }
  buf[off] = value;
  return off + 1;
}
