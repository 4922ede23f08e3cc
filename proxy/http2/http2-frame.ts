// HTTP/2 frames on the wire (RFC 9113 §4, §6): the 9-byte frame header, the
// frame types, flags, error codes and settings the proxy's own HTTP/2
// connection (http2-connection.ts) speaks, and builders for the small control
// frames. DATA and HEADERS payloads are written next to their header (two
// buffers in one writev) rather than copied into one.

export const FRAME_HEADER_LENGTH = 9;

export const FrameType = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

export const Flag = {
  END_STREAM: 0x1,
  ACK: 0x1,
  END_HEADERS: 0x4,
  PADDED: 0x8,
  PRIORITY: 0x20,
} as const;

// Error codes (RFC 9113 §7), for RST_STREAM and GOAWAY.
export const H2_NO_ERROR = 0x0;
export const H2_PROTOCOL_ERROR = 0x1;
export const H2_INTERNAL_ERROR = 0x2;
export const H2_FLOW_CONTROL_ERROR = 0x3;
export const H2_SETTINGS_TIMEOUT = 0x4;
export const H2_STREAM_CLOSED = 0x5;
export const H2_FRAME_SIZE_ERROR = 0x6;
export const H2_REFUSED_STREAM = 0x7;
export const H2_CANCEL = 0x8;
export const H2_COMPRESSION_ERROR = 0x9;
export const H2_CONNECT_ERROR = 0xa;
export const H2_ENHANCE_YOUR_CALM = 0xb;
export const H2_INADEQUATE_SECURITY = 0xc;
export const H2_HTTP_1_1_REQUIRED = 0xd;

// Settings identifiers (RFC 9113 §6.5.2).
export const Setting = {
  HEADER_TABLE_SIZE: 0x1,
  ENABLE_PUSH: 0x2,
  MAX_CONCURRENT_STREAMS: 0x3,
  INITIAL_WINDOW_SIZE: 0x4,
  MAX_FRAME_SIZE: 0x5,
  MAX_HEADER_LIST_SIZE: 0x6,
} as const;

export const DEFAULT_WINDOW = 65_535;
export const DEFAULT_MAX_FRAME_SIZE = 16_384;
export const MAX_FRAME_SIZE_LIMIT = 16_777_215;
export const MAX_WINDOW = 2_147_483_647;

/** The connection preface a client starts with (RFC 9113 §3.4). */
export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/**
 * Whether the first bytes of a connection are HTTP/2's preface: 1 yes, 0 no,
 * -1 too few bytes to tell (a prefix of the preface so far).
 */
export function sniffHttp2(head: Buffer): number {
  const n = Math.min(head.length, PREFACE.length);
  for (let i = 0; i < n; i++) if (head[i] !== PREFACE[i]) return 0;
  return n === PREFACE.length ? 1 : -1;
}

/**
 * Reset codes relayed from one side to the other as they are; anything else
 * (a connection-level condition of the other hop) becomes INTERNAL_ERROR.
 */
export function relayedResetCode(code: number): number {
  return code === H2_CANCEL || code === H2_REFUSED_STREAM || code === H2_ENHANCE_YOUR_CALM ? code : H2_INTERNAL_ERROR;
}

export function frameHeader(length: number, type: number, flags: number, streamId: number): Buffer {
  const b = Buffer.allocUnsafe(FRAME_HEADER_LENGTH);
  writeFrameHeader(b, 0, length, type, flags, streamId);
  return b;
}

export function writeFrameHeader(b: Buffer, offset: number, length: number, type: number, flags: number, streamId: number): void {
  b[offset] = length >>> 16;
  b[offset + 1] = (length >>> 8) & 0xff;
  b[offset + 2] = length & 0xff;
  b[offset + 3] = type;
  b[offset + 4] = flags;
  b.writeUInt32BE(streamId & 0x7fffffff, offset + 5);
}

/** A SETTINGS frame with [id, value, …] pairs. */
export function settingsFrame(pairs: readonly number[]): Buffer {
  const b = Buffer.allocUnsafe(FRAME_HEADER_LENGTH + (pairs.length / 2) * 6);
  writeFrameHeader(b, 0, (pairs.length / 2) * 6, FrameType.SETTINGS, 0, 0);
  let o = FRAME_HEADER_LENGTH;
  for (let i = 0; i < pairs.length; i += 2) {
    b.writeUInt16BE(pairs[i], o);
    b.writeUInt32BE(pairs[i + 1], o + 2);
    o += 6;
  }
  return b;
}

export const SETTINGS_ACK = frameHeader(0, FrameType.SETTINGS, Flag.ACK, 0);

export function pingFrame(payload: Buffer, ack: boolean): Buffer {
  const b = Buffer.allocUnsafe(FRAME_HEADER_LENGTH + 8);
  writeFrameHeader(b, 0, 8, FrameType.PING, ack ? Flag.ACK : 0, 0);
  payload.copy(b, FRAME_HEADER_LENGTH, 0, 8);
  return b;
}

export function rstStreamFrame(streamId: number, code: number): Buffer {
  const b = Buffer.allocUnsafe(FRAME_HEADER_LENGTH + 4);
  writeFrameHeader(b, 0, 4, FrameType.RST_STREAM, 0, streamId);
  b.writeUInt32BE(code, FRAME_HEADER_LENGTH);
  return b;
}

export function windowUpdateFrame(streamId: number, increment: number): Buffer {
  const b = Buffer.allocUnsafe(FRAME_HEADER_LENGTH + 4);
  writeFrameHeader(b, 0, 4, FrameType.WINDOW_UPDATE, 0, streamId);
  b.writeUInt32BE(increment, FRAME_HEADER_LENGTH);
  return b;
}

export function goawayFrame(lastStreamId: number, code: number, debug = ''): Buffer {
  const debugLength = Buffer.byteLength(debug, 'latin1');
  const b = Buffer.allocUnsafe(FRAME_HEADER_LENGTH + 8 + debugLength);
  writeFrameHeader(b, 0, 8 + debugLength, FrameType.GOAWAY, 0, 0);
  b.writeUInt32BE(lastStreamId & 0x7fffffff, FRAME_HEADER_LENGTH);
  b.writeUInt32BE(code, FRAME_HEADER_LENGTH + 4);
  if (debugLength > 0) b.write(debug, FRAME_HEADER_LENGTH + 8, 'latin1');
  return b;
}
