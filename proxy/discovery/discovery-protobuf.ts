// The protobuf encoding of the two messages the proxy exchanges on the discovery
// stream (core/discovery/discovery.proto), written by hand so a sidecar does not
// carry protobufjs and proto-loader (≈ 10 MB of its private memory) for five
// messages. Only what proto3 needs for these messages: varints and
// length-delimited fields; unknown fields of any wire type are skipped, so a
// control plane that adds fields keeps working with older proxies.
import type { WireDiscoveryResponse, WireResource, WireResourceRef } from '../../core/discovery/discovery-protocol.ts';

/** DiscoveryRequest as the proxy sends it; empty strings are proto3 defaults and are not written. */
export interface DiscoveryRequestMessage {
  node?: {
    id: string;
    type: string;
    namespace: string;
    workload?: string;
    platform?: string;
    labels?: Readonly<Record<string, string>>;
    version?: string;
  };
  versionInfo: string;
  responseNonce: string;
  errorDetail?: { code: number; message: string };
}

const VARINT = 0;
const FIXED64 = 1;
const LENGTH_DELIMITED = 2;
const FIXED32 = 5;
const EMPTY = Buffer.alloc(0);

/** Appends protobuf fields to a list of chunks; nested messages are encoded first and written as bytes. */
class ProtoWriter {
  readonly #chunks: Buffer[] = [];
  #length = 0;

  #push(chunk: Buffer): void {
    this.#chunks.push(chunk);
    this.#length += chunk.length;
  }

  #varint(value: number | bigint): void {
    // Negative int32 values are sign-extended to 64 bits (ten bytes), as protobuf requires.
    let v = typeof value === 'bigint' ? BigInt.asUintN(64, value) : value >= 0 ? value : BigInt.asUintN(64, BigInt(value));
    const out: number[] = [];
    if (typeof v === 'bigint') {
      while (v > 0x7fn) {
        out.push(Number(v & 0x7fn) | 0x80);
        v >>= 7n;
      }
      out.push(Number(v));
    } else {
      while (v > 0x7f) {
        out.push((v % 0x80) | 0x80);
        v = Math.floor(v / 0x80);
      }
      out.push(v);
    }
    this.#push(Buffer.from(out));
  }

  #tag(field: number, wireType: number): void {
    this.#varint(field * 8 + wireType);
  }

  /** proto3: an empty string is the default and is not written. */
  string(field: number, value: string | undefined): this {
    if (!value) return this;
    const bytes = Buffer.from(value, 'utf8');
    this.#tag(field, LENGTH_DELIMITED);
    this.#varint(bytes.length);
    this.#push(bytes);
    return this;
  }

  int32(field: number, value: number): this {
    if (value === 0) return this;
    this.#tag(field, VARINT);
    this.#varint(value | 0);
    return this;
  }

  /** An embedded message, always written (presence matters for messages). */
  message(field: number, body: Buffer): this {
    this.#tag(field, LENGTH_DELIMITED);
    this.#varint(body.length);
    this.#push(body);
    return this;
  }

  finish(): Buffer {
    return Buffer.concat(this.#chunks, this.#length);
  }
}

export function encodeDiscoveryRequest(request: DiscoveryRequestMessage): Buffer {
  const out = new ProtoWriter();
  const node = request.node;
  if (node) {
    const w = new ProtoWriter().string(1, node.id).string(2, node.type).string(3, node.namespace).string(4, node.workload).string(5, node.platform);
    // map<string, string> is a repeated entry message {key = 1, value = 2}.
    for (const [key, value] of Object.entries(node.labels ?? {})) w.message(6, new ProtoWriter().string(1, key).string(2, value).finish());
    out.message(1, w.string(7, node.version).finish());
  }
  out.string(2, request.versionInfo).string(3, request.responseNonce);
  if (request.errorDetail) out.message(4, new ProtoWriter().int32(1, request.errorDetail.code).string(2, request.errorDetail.message).finish());
  return out.finish();
}

/** Reads fields from one message's bytes; every read is bounds-checked, so a truncated message throws instead of reading past it. */
class ProtoReader {
  readonly #buf: Buffer;
  #pos: number;
  readonly #end: number;

  constructor(buf: Buffer, start = 0, end = buf.length) {
    this.#buf = buf;
    this.#pos = start;
    this.#end = end;
  }

  get done(): boolean {
    return this.#pos >= this.#end;
  }

  /** Lengths and tags only: values past 2^53 cannot be valid there and are refused. */
  varint(): number {
    let result = 0;
    let multiplier = 1;
    for (let i = 0; i < 10; i++) {
      if (this.#pos >= this.#end) throw new Error('protobuf: truncated varint');
      const byte = this.#buf[this.#pos++];
      result += (byte & 0x7f) * multiplier;
      if (byte < 0x80) {
        if (!Number.isSafeInteger(result)) throw new Error('protobuf: varint too large');
        return result;
      }
      multiplier *= 0x80;
    }
    throw new Error('protobuf: varint longer than 10 bytes');
  }

  /** The [start, end) of a length-delimited field's payload, which it steps over. */
  bytes(): [number, number] {
    const length = this.varint();
    const start = this.#pos;
    const end = start + length;
    if (end > this.#end) throw new Error('protobuf: length-delimited field runs past the end of its message');
    this.#pos = end;
    return [start, end];
  }

  string(): string {
    const [start, end] = this.bytes();
    return this.#buf.toString('utf8', start, end);
  }

  skip(wireType: number): void {
    switch (wireType) {
      case VARINT:
        this.#skipVarint();
        return;
      case FIXED64:
        this.#advance(8);
        return;
      case LENGTH_DELIMITED:
        this.bytes();
        return;
      case FIXED32:
        this.#advance(4);
        return;
      default:
        throw new Error(`protobuf: unsupported wire type ${wireType}`);
    }
  }

  #skipVarint(): void {
    for (let i = 0; i < 10; i++) {
      if (this.#pos >= this.#end) throw new Error('protobuf: truncated varint');
      if (this.#buf[this.#pos++] < 0x80) return;
    }
    throw new Error('protobuf: varint longer than 10 bytes');
  }

  #advance(n: number): void {
    if (this.#pos + n > this.#end) throw new Error('protobuf: truncated fixed-width field');
    this.#pos += n;
  }

  /** A reader over an embedded message's bytes. */
  sub(): ProtoReader {
    const [start, end] = this.bytes();
    return new ProtoReader(this.#buf, start, end);
  }

  /** A bool: any non-zero varint is true. */
  bool(): boolean {
    let nonZero = false;
    for (let i = 0; i < 10; i++) {
      if (this.#pos >= this.#end) throw new Error('protobuf: truncated varint');
      const byte = this.#buf[this.#pos++];
      if ((byte & 0x7f) !== 0) nonZero = true;
      if (byte < 0x80) return nonZero;
    }
    throw new Error('protobuf: varint longer than 10 bytes');
  }

  /** The payload of a bytes field, sharing the message's memory (valid while the caller holds it). */
  slice(): Buffer {
    const [start, end] = this.bytes();
    return this.#buf.subarray(start, end);
  }
}

function expect(wireType: number, want: number, field: string): void {
  if (wireType !== want) throw new Error(`protobuf: ${field} has wire type ${wireType}, expected ${want}`);
}

function stringField(reader: ProtoReader, wireType: number, field: string): string {
  expect(wireType, LENGTH_DELIMITED, field);
  return reader.string();
}

function decodeResource(reader: ProtoReader): WireResource {
  const resource: WireResource = { type: '', name: '', version: '', body: EMPTY };
  while (!reader.done) {
    const tag = reader.varint();
    const wireType = tag & 7;
    switch (Math.floor(tag / 8)) {
      case 1:
        resource.type = stringField(reader, wireType, 'Resource.type');
        break;
      case 2:
        resource.name = stringField(reader, wireType, 'Resource.name');
        break;
      case 3:
        resource.version = stringField(reader, wireType, 'Resource.version');
        break;
      case 4:
        expect(wireType, LENGTH_DELIMITED, 'Resource.body');
        resource.body = reader.slice();
        break;
      default:
        reader.skip(wireType);
    }
  }
  return resource;
}

function decodeResourceRef(reader: ProtoReader): WireResourceRef {
  const ref: WireResourceRef = { type: '', name: '' };
  while (!reader.done) {
    const tag = reader.varint();
    const wireType = tag & 7;
    switch (Math.floor(tag / 8)) {
      case 1:
        ref.type = stringField(reader, wireType, 'ResourceRef.type');
        break;
      case 2:
        ref.name = stringField(reader, wireType, 'ResourceRef.name');
        break;
      default:
        reader.skip(wireType);
    }
  }
  return ref;
}

/**
 * Decodes a DiscoveryResponse into the shape proto-loader gives (absent fields
 * are '' / false / []). Resource bodies share `bytes`' memory.
 * @throws Error naming what is malformed (truncated fields, wrong wire types).
 */
export function decodeDiscoveryResponse(bytes: Buffer): WireDiscoveryResponse {
  const response: WireDiscoveryResponse = { versionInfo: '', nonce: '', fullState: false, resources: [], removed: [] };
  const reader = new ProtoReader(bytes);
  while (!reader.done) {
    const tag = reader.varint();
    const field = Math.floor(tag / 8);
    const wireType = tag & 7;
    switch (field) {
      case 1:
        response.versionInfo = stringField(reader, wireType, 'DiscoveryResponse.version_info');
        break;
      case 2:
        response.nonce = stringField(reader, wireType, 'DiscoveryResponse.nonce');
        break;
      case 3:
        expect(wireType, VARINT, 'DiscoveryResponse.full_state');
        response.fullState = reader.bool();
        break;
      case 4:
        expect(wireType, LENGTH_DELIMITED, 'DiscoveryResponse.resources');
        response.resources.push(decodeResource(reader.sub()));
        break;
      case 5:
        expect(wireType, LENGTH_DELIMITED, 'DiscoveryResponse.removed');
        response.removed.push(decodeResourceRef(reader.sub()));
        break;
      default:
        reader.skip(wireType);
    }
  }
  return response;
}
