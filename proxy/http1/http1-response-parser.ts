// A small, strict, incremental HTTP/1.1 response parser for the upstream side.
// It is fed whatever the socket delivers (a head may be split at any byte) and
// calls its handler with the status, the raw header list, body slices (zero
// copy: subarrays of the socket's chunks, chunk framing removed) and the end.
// Strict on purpose: an upstream that sends obs-fold, bare LF, control
// characters, conflicting lengths or oversized heads gets a protocol error
// (UPE) instead of a guess that could desynchronise a pooled connection.

export const MAX_HEAD_BYTES = 64 * 1024;
export const MAX_HEADERS = 100;
const MAX_CHUNK_LINE = 4096;

/** How the body of the current response ends. */
export const FRAMING_NONE = 0;
export const FRAMING_LENGTH = 1;
export const FRAMING_CHUNKED = 2;
export const FRAMING_CLOSE = 3;

const S_IDLE = 0;
const S_HEAD = 1;
const S_LENGTH = 2;
const S_CHUNK_SIZE = 3;
const S_CHUNK_DATA = 4;
const S_CHUNK_DATA_CR = 5;
const S_CHUNK_DATA_LF = 6;
const S_TRAILERS = 7;
const S_CLOSE = 8;
const S_DONE = 9;
const S_ERROR = 10;

const CR = 13;
const LF = 10;
const CRLFCRLF = Buffer.from('\r\n\r\n');
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Field values: visible ASCII, SP, HTAB and obs-text; no CR, LF, NUL or other controls.
const INVALID_VALUE = /[^\t\x20-\x7e\x80-\xff]/;

export interface Http1ResponseHandler {
  /** A final (non-1xx) response head; `headers` is the raw flat list [name, value, …]. */
  onResponseHead(status: number, headers: string[]): void;
  onResponseBody(chunk: Buffer): void;
  onResponseComplete(): void;
}

export class Http1ResponseParser {
  private readonly handler: Http1ResponseHandler;
  private state = S_IDLE;
  private headBuf: Buffer | undefined = undefined;
  private noBody = false;
  private remaining = 0;
  private lineBytes = 0;
  private chunkSizeDigits = 0;
  private sawExtension = false;
  private chunkCr = false;
  private trailerBytes = 0;
  /** Bytes of the current trailer line so far (0 means the line is empty so far). */
  private trailerLine = 0;
  private trailerCr = false;
  status = 0;
  framing = FRAMING_NONE;
  /** The connection may carry another request once this response is complete. */
  keepAlive = false;
  /** Why parsing failed ('' while it has not). */
  error = '';
  /** Some byte of a response arrived since `expect` (a stale pooled connection would see none). */
  received = false;

  constructor(handler: Http1ResponseHandler) {
    this.handler = handler;
  }

  /** Prepares for the response to the request just sent; `head` for HEAD requests (no body follows). */
  expect(head: boolean): void {
    this.state = S_HEAD;
    this.noBody = head;
    this.headBuf = undefined;
    this.status = 0;
    this.framing = FRAMING_NONE;
    this.keepAlive = false;
    this.error = '';
    this.received = false;
  }

  get complete(): boolean {
    return this.state === S_DONE;
  }

  /** In a body that only the end of the connection ends. */
  get readingUntilClose(): boolean {
    return this.state === S_CLOSE;
  }

  /** Stops calling the handler (the owner gave up on this response). */
  abort(): void {
    this.state = S_IDLE;
    this.headBuf = undefined;
  }

  /**
   * The connection ended: completes a read-until-close body. Returns whether
   * the response is complete.
   */
  finish(): boolean {
    if (this.state === S_CLOSE) {
      this.state = S_DONE;
      this.handler.onResponseComplete();
      return true;
    }
    return this.state === S_DONE;
  }

  /** Feeds bytes; returns false on a protocol error (`error` says which). */
  execute(chunk: Buffer): boolean {
    if (chunk.length > 0) this.received = true;
    let pos = 0;
    const len = chunk.length;
    while (pos < len) {
      switch (this.state) {
        case S_HEAD: {
          const next = this.readHead(chunk, pos);
          if (next < 0) return this.error === '';
          pos = next;
          break;
        }
        case S_LENGTH: {
          const n = Math.min(this.remaining, len - pos);
          this.remaining -= n;
          const slice = pos === 0 && n === len ? chunk : chunk.subarray(pos, pos + n);
          pos += n;
          if (this.remaining === 0) this.state = S_DONE;
          this.handler.onResponseBody(slice);
          if (this.state === S_DONE) this.handler.onResponseComplete();
          break;
        }
        case S_CLOSE:
          this.handler.onResponseBody(pos === 0 ? chunk : chunk.subarray(pos));
          return true;
        case S_CHUNK_SIZE:
          pos = this.readChunkSize(chunk, pos);
          if (pos < 0) return false;
          break;
        case S_CHUNK_DATA: {
          const n = Math.min(this.remaining, len - pos);
          this.remaining -= n;
          const slice = chunk.subarray(pos, pos + n);
          pos += n;
          if (this.remaining === 0) this.state = S_CHUNK_DATA_CR;
          this.handler.onResponseBody(slice);
          break;
        }
        case S_CHUNK_DATA_CR:
          if (chunk[pos++] !== CR) return this.fail('chunk data not followed by CRLF');
          this.state = S_CHUNK_DATA_LF;
          break;
        case S_CHUNK_DATA_LF:
          if (chunk[pos++] !== LF) return this.fail('chunk data not followed by CRLF');
          this.state = S_CHUNK_SIZE;
          this.lineBytes = 0;
          this.chunkSizeDigits = 0;
          this.sawExtension = false;
          this.chunkCr = false;
          break;
        case S_TRAILERS:
          pos = this.readTrailers(chunk, pos);
          if (pos < 0) return false;
          break;
        case S_DONE:
          return this.fail('data after the end of the response');
        case S_ERROR:
          return false;
        default:
          // S_IDLE: the owner aborted; bytes are dropped (the connection will not be reused).
          return true;
      }
    }
    return true;
  }

  private fail(reason: string): false {
    this.state = S_ERROR;
    this.error = reason;
    this.headBuf = undefined;
    return false;
  }

  /** Returns the position after the head, or -1 when more bytes are needed or on error. */
  private readHead(chunk: Buffer, pos: number): number {
    let buf: Buffer;
    let from: number;
    let base: number;
    if (this.headBuf === undefined) {
      buf = chunk;
      base = pos;
      from = pos;
    } else {
      const prev = this.headBuf.length;
      buf = Buffer.concat([this.headBuf, chunk.subarray(pos)]);
      base = 0;
      from = prev > 3 ? prev - 3 : 0;
    }
    const end = buf.indexOf(CRLFCRLF, from);
    if (end < 0) {
      if (buf.length - base > MAX_HEAD_BYTES) {
        this.fail('response head larger than 64 KiB');
        return -1;
      }
      this.headBuf = base === 0 && buf !== chunk ? buf : Buffer.from(buf.subarray(base));
      return -1;
    }
    if (end - base > MAX_HEAD_BYTES) {
      this.fail('response head larger than 64 KiB');
      return -1;
    }
    const consumedFromChunk = this.headBuf === undefined ? end + 4 : end + 4 - this.headBuf.length + pos;
    this.headBuf = undefined;
    if (!this.parseHead(buf.toString('latin1', base, end + 2))) return -1;
    return consumedFromChunk;
  }

  /** `text` is the head up to and including the last header line's CRLF. */
  private parseHead(text: string): boolean {
    let eol = text.indexOf('\r\n');
    const line = text.slice(0, eol);
    // HTTP/1.x SP 3DIGIT [SP reason]
    if (line.length < 12 || !line.startsWith('HTTP/1.') || line.charCodeAt(8) !== 32) {
      this.fail('malformed status line');
      return false;
    }
    const minor = line.charCodeAt(7);
    if (minor !== 49 && minor !== 48) {
      this.fail('unsupported HTTP version');
      return false;
    }
    const d0 = line.charCodeAt(9) - 48;
    const d1 = line.charCodeAt(10) - 48;
    const d2 = line.charCodeAt(11) - 48;
    if (d0 < 1 || d0 > 5 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9 || (line.length > 12 && line.charCodeAt(12) !== 32)) {
      this.fail('malformed status code');
      return false;
    }
    if (line.length > 13 && INVALID_VALUE.test(line)) {
      this.fail('invalid character in status line');
      return false;
    }
    const status = d0 * 100 + d1 * 10 + d2;
    const headers: string[] = [];
    let contentLength = -1;
    let chunked = false;
    let hasTe = false;
    let close = minor === 48;
    let start = eol + 2;
    while (start < text.length) {
      eol = text.indexOf('\r\n', start);
      const colon = text.indexOf(':', start);
      if (colon < 0 || colon > eol) {
        this.fail(text.charCodeAt(start) === 32 || text.charCodeAt(start) === 9 ? 'obsolete line folding' : 'header line without a colon');
        return false;
      }
      const name = text.slice(start, colon);
      if (!TOKEN.test(name)) {
        this.fail('invalid header name');
        return false;
      }
      let vs = colon + 1;
      let ve = eol;
      while (vs < ve && (text.charCodeAt(vs) === 32 || text.charCodeAt(vs) === 9)) vs++;
      while (ve > vs && (text.charCodeAt(ve - 1) === 32 || text.charCodeAt(ve - 1) === 9)) ve--;
      const value = text.slice(vs, ve);
      if (INVALID_VALUE.test(value)) {
        this.fail('invalid character in header value');
        return false;
      }
      if (headers.length >= MAX_HEADERS * 2) {
        this.fail('more than 100 response headers');
        return false;
      }
      headers.push(name, value);
      start = eol + 2;
      const nl = name.length;
      if (nl === 14 || nl === 17 || nl === 10) {
        const lower = name.toLowerCase();
        if (lower === 'content-length') {
          const n = parseContentLength(value);
          if (n < 0 || (contentLength >= 0 && n !== contentLength)) {
            this.fail('invalid or conflicting content-length');
            return false;
          }
          contentLength = n;
        } else if (lower === 'transfer-encoding') {
          if (hasTe || value.toLowerCase() !== 'chunked') {
            this.fail('unsupported transfer-encoding');
            return false;
          }
          hasTe = true;
          chunked = true;
        } else if (lower === 'connection') {
          const v = value.toLowerCase();
          if (v === 'close' || (v !== 'keep-alive' && /(^|,)\s*close\s*(,|$)/.test(v))) close = true;
          else if (minor === 48 && /(^|,)\s*keep-alive\s*(,|$)/.test(v)) close = false;
        }
      }
    }
    if (status < 200) {
      // 101 would switch protocols; the proxy never asks for an upgrade.
      if (status === 101) {
        this.fail('unexpected 101 Switching Protocols');
        return false;
      }
      // Interim responses (100 Continue, 103 Early Hints) are skipped: the final one follows.
      return true;
    }
    this.status = status;
    if (this.noBody || status === 204 || status === 304) {
      this.framing = FRAMING_NONE;
      // A body-less response after a message that claimed framing is fine; reuse still needs no close.
      this.keepAlive = !close && !(chunked && contentLength >= 0);
      this.state = S_DONE;
    } else if (chunked) {
      // Both framings: chunked wins (RFC 9112 §6.3) and the connection must not be reused.
      this.framing = FRAMING_CHUNKED;
      this.keepAlive = !close && contentLength < 0;
      this.state = S_CHUNK_SIZE;
      this.lineBytes = 0;
      this.chunkSizeDigits = 0;
      this.sawExtension = false;
      this.chunkCr = false;
    } else if (contentLength >= 0) {
      this.framing = FRAMING_LENGTH;
      this.keepAlive = !close;
      this.remaining = contentLength;
      this.state = contentLength === 0 ? S_DONE : S_LENGTH;
    } else {
      this.framing = FRAMING_CLOSE;
      this.keepAlive = false;
      this.state = S_CLOSE;
    }
    const done = this.state === S_DONE;
    this.handler.onResponseHead(status, headers);
    if (done && this.state === S_DONE) this.handler.onResponseComplete();
    return true;
  }

  /** Reads `size[;ext]CRLF` a byte at a time (it may be split anywhere). */
  private readChunkSize(chunk: Buffer, pos: number): number {
    const len = chunk.length;
    while (pos < len) {
      const c = chunk[pos++];
      if (this.chunkCr) {
        if (c !== LF) return this.failAt('bare CR in chunk size line');
        this.chunkCr = false;
        return this.endChunkSize(pos);
      }
      if (++this.lineBytes > MAX_CHUNK_LINE) return this.failAt('chunk size line too long');
      if (c === CR) {
        if (this.chunkSizeDigits === 0) return this.failAt('invalid chunk size');
        this.chunkCr = true;
        continue;
      }
      if (c === LF) return this.failAt('bare LF in chunk size line');
      if (this.sawExtension) {
        if ((c < 32 && c !== 9) || c === 127) return this.failAt('invalid character in chunk extension');
        continue;
      }
      const h = hexValue(c);
      if (h >= 0) {
        if (++this.chunkSizeDigits > 13) return this.failAt('chunk size too large');
        this.remaining = this.chunkSizeDigits === 1 ? h : this.remaining * 16 + h;
        continue;
      }
      if (this.chunkSizeDigits === 0) return this.failAt('invalid chunk size');
      if (c === 59 /* ; */ || c === 32 || c === 9) {
        this.sawExtension = true;
        continue;
      }
      return this.failAt('invalid chunk size');
    }
    return pos;
  }

  private endChunkSize(pos: number): number {
    if (this.chunkSizeDigits === 0) return this.failAt('invalid chunk size');
    if (this.remaining === 0) {
      this.state = S_TRAILERS;
      this.trailerBytes = 0;
      this.trailerLine = 0;
      this.trailerCr = false;
    } else {
      this.state = S_CHUNK_DATA;
    }
    return pos;
  }

  /** Trailer fields are read, bounded and dropped; the response ends at the empty line. */
  private readTrailers(chunk: Buffer, pos: number): number {
    const len = chunk.length;
    while (pos < len) {
      const c = chunk[pos++];
      if (++this.trailerBytes > MAX_HEAD_BYTES) return this.failAt('trailers larger than 64 KiB');
      if (this.trailerCr) {
        if (c !== LF) return this.failAt('bare CR in trailers');
        this.trailerCr = false;
        if (this.trailerLine === 0) {
          this.state = S_DONE;
          this.handler.onResponseComplete();
          return pos;
        }
        this.trailerLine = 0;
        continue;
      }
      if (c === CR) {
        this.trailerCr = true;
        continue;
      }
      if (c === LF) return this.failAt('bare LF in trailers');
      if ((c < 32 && c !== 9) || c === 127) return this.failAt('invalid character in trailers');
      if (this.trailerLine === 0 && (c === 32 || c === 9)) return this.failAt('obsolete line folding in trailers');
      this.trailerLine++;
    }
    return pos;
  }

  private failAt(reason: string): -1 {
    this.fail(reason);
    return -1;
  }
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/** Digits only (a list of equal values is accepted, as RFC 9110 §8.6 allows); -1 when invalid. */
function parseContentLength(value: string): number {
  if (value.includes(',')) {
    const parts = value.split(',');
    const first = parseContentLength(parts[0].trim());
    for (let i = 1; i < parts.length; i++) if (parseContentLength(parts[i].trim()) !== first) return -1;
    return first;
  }
  if (value.length === 0 || value.length > 15) return -1;
  let n = 0;
  for (let i = 0; i < value.length; i++) {
    const d = value.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}
