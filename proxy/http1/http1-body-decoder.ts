// Removes chunked transfer coding (RFC 9112 §7.1) from a body, incrementally:
// `size[;ext]CRLF data CRLF … 0CRLF trailers CRLF`, split at any byte. Both
// parsers drive one instance so that requests and responses are de-framed by
// the same rules. No callbacks: `execute` stops after each data run and the
// caller slices `[dataStart, returned position)` itself, which keeps the hot
// path free of closures and lets the caller stop between slices (a handler
// may abort or reset the parser while it takes a body slice).

import { CR, LF, hexValue } from './http1-syntax.ts';

const MAX_CHUNK_LINE = 4096;
// 13 hex digits stay below 2^53, so the size is exact in a double.
const MAX_SIZE_DIGITS = 13;

const C_SIZE = 0;
const C_DATA = 1;
const C_DATA_CR = 2;
const C_DATA_LF = 3;
const C_TRAILERS = 4;
const C_DONE = 5;
const C_ERROR = 6;

export class Http1ChunkedDecoder {
  /** Why decoding failed ('' while it has not). */
  error = '';
  /** After `execute`: where the body bytes it stopped after begin (-1 when it returned none). */
  dataStart = -1;
  private readonly maxTrailerBytes: number;
  private readonly trailerLimitError: string;
  private state = C_SIZE;
  private remaining = 0;
  private lineBytes = 0;
  private sizeDigits = 0;
  private sawExtension = false;
  private lineCr = false;
  private trailerBytes = 0;
  /** Bytes of the current trailer line so far (0 means the line is empty so far). */
  private trailerLine = 0;

  constructor(maxTrailerBytes: number) {
    this.maxTrailerBytes = maxTrailerBytes;
    this.trailerLimitError = `trailers larger than ${maxTrailerBytes / 1024} KiB`;
  }

  /** A new chunked body begins. */
  start(): void {
    this.state = C_SIZE;
    this.error = '';
    this.startSizeLine();
  }

  /** The last chunk and the trailers have been read. */
  get done(): boolean {
    return this.state === C_DONE;
  }

  /**
   * Decodes from `pos`. Returns the position where it stopped: after a run
   * of body bytes (`dataStart` ≥ 0 says where it began), at the end of the
   * body (`done`), or at the end of `chunk`; -1 on a framing error (`error`).
   */
  execute(chunk: Buffer, pos: number): number {
    this.dataStart = -1;
    const len = chunk.length;
    while (pos < len) {
      switch (this.state) {
        case C_SIZE:
          pos = this.readSize(chunk, pos);
          if (pos < 0) return -1;
          break;
        case C_DATA: {
          const n = Math.min(this.remaining, len - pos);
          this.remaining -= n;
          if (this.remaining === 0) this.state = C_DATA_CR;
          this.dataStart = pos;
          return pos + n;
        }
        case C_DATA_CR:
          if (chunk[pos++] !== CR) return this.fail('chunk data not followed by CRLF');
          this.state = C_DATA_LF;
          break;
        case C_DATA_LF:
          if (chunk[pos++] !== LF) return this.fail('chunk data not followed by CRLF');
          this.state = C_SIZE;
          this.startSizeLine();
          break;
        case C_TRAILERS:
          pos = this.readTrailers(chunk, pos);
          if (pos < 0) return -1;
          if (this.done) return pos;
          break;
        case C_DONE:
          return pos;
        default:
          return -1;
      }
    }
    return pos;
  }

  private fail(reason: string): -1 {
    this.state = C_ERROR;
    this.error = reason;
    return -1;
  }

  private startSizeLine(): void {
    this.lineBytes = 0;
    this.sizeDigits = 0;
    this.sawExtension = false;
    this.lineCr = false;
  }

  /** Reads `size[;ext]CRLF` a byte at a time (it may be split anywhere). */
  private readSize(chunk: Buffer, pos: number): number {
    const len = chunk.length;
    while (pos < len) {
      const c = chunk[pos++];
      if (this.lineCr) {
        if (c !== LF) return this.fail('bare CR in chunk size line');
        this.lineCr = false;
        if (this.remaining === 0) {
          this.state = C_TRAILERS;
          this.trailerBytes = 0;
          this.trailerLine = 0;
        } else {
          this.state = C_DATA;
        }
        return pos;
      }
      if (++this.lineBytes > MAX_CHUNK_LINE) return this.fail('chunk size line too long');
      if (c === CR) {
        if (this.sizeDigits === 0) return this.fail('invalid chunk size');
        this.lineCr = true;
        continue;
      }
      if (c === LF) return this.fail('bare LF in chunk size line');
      if (this.sawExtension) {
        if ((c < 32 && c !== 9) || c === 127) return this.fail('invalid character in chunk extension');
        continue;
      }
      const h = hexValue(c);
      if (h >= 0) {
        if (++this.sizeDigits > MAX_SIZE_DIGITS) return this.fail('chunk size too large');
        this.remaining = this.sizeDigits === 1 ? h : this.remaining * 16 + h;
        continue;
      }
      if (this.sizeDigits === 0) return this.fail('invalid chunk size');
      if (c === 59 /* ; */ || c === 32 || c === 9) {
        this.sawExtension = true;
        continue;
      }
      return this.fail('invalid chunk size');
    }
    return pos;
  }

  /** Trailer fields are read, bounded and dropped; the body ends at the empty line. */
  private readTrailers(chunk: Buffer, pos: number): number {
    const len = chunk.length;
    while (pos < len) {
      const c = chunk[pos++];
      if (++this.trailerBytes > this.maxTrailerBytes) return this.fail(this.trailerLimitError);
      if (this.lineCr) {
        if (c !== LF) return this.fail('bare CR in trailers');
        this.lineCr = false;
        if (this.trailerLine === 0) {
          this.state = C_DONE;
          return pos;
        }
        this.trailerLine = 0;
        continue;
      }
      if (c === CR) {
        this.lineCr = true;
        continue;
      }
      if (c === LF) return this.fail('bare LF in trailers');
      if ((c < 32 && c !== 9) || c === 127) return this.fail('invalid character in trailers');
      if (this.trailerLine === 0 && (c === 32 || c === 9)) return this.fail('obsolete line folding in trailers');
      this.trailerLine++;
    }
    return pos;
  }
}
