// A small, strict, incremental HTTP/1.1 request parser for the downstream
// side. It is fed whatever the socket delivers (a head may be split at any
// byte), hands the request line, the raw header list and body slices (zero
// copy, chunk framing removed) to its handler, and stops at the end of each
// message so that pipelined bytes stay in order until the connection is ready
// for the next request. Strict on purpose: obs-fold, bare CR/LF, control
// characters and conflicting framing are 400; heads over 16 KiB or 100
// headers are 431 — a guess could desynchronise a keep-alive connection.

// node:http's default (--max-http-header-size): clients and tests expect 431 beyond it.
export const MAX_REQUEST_HEAD_BYTES = 16 * 1024;
export const MAX_REQUEST_HEADERS = 100;
const MAX_CHUNK_LINE = 4096;

const S_HEAD = 0;
const S_LENGTH = 1;
const S_CHUNK_SIZE = 2;
const S_CHUNK_DATA = 3;
const S_CHUNK_DATA_CR = 4;
const S_CHUNK_DATA_LF = 5;
const S_TRAILERS = 6;
const S_DONE = 7;
const S_ERROR = 8;

const CR = 13;
const LF = 10;
const CRLFCRLF = Buffer.from('\r\n\r\n');
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const INVALID_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
// Request targets: no whitespace, controls or DEL.
const INVALID_TARGET = /[^\x21-\x7e\x80-\xff]/;
// The methods node's server (llhttp) knows; others are refused with 400 as before.
const METHODS = new Set(
  'GET HEAD POST PUT DELETE CONNECT OPTIONS TRACE PATCH COPY LOCK MKCOL MOVE PROPFIND PROPPATCH SEARCH UNLOCK BIND REBIND UNBIND ACL REPORT MKACTIVITY CHECKOUT MERGE M-SEARCH NOTIFY SUBSCRIBE UNSUBSCRIBE PURGE MKCALENDAR LINK UNLINK SOURCE QUERY'.split(' '),
);

export interface Http1RequestHead {
  method: string;
  target: string;
  /** 1 for HTTP/1.1, 0 for HTTP/1.0. */
  minor: number;
  /** Raw flat list [name, value, …] as received. */
  headers: string[];
  /** The connection may carry another request after this one (version and `connection`). */
  keepAlive: boolean;
  /** `expect: 100-continue` on HTTP/1.1. */
  expectContinue: boolean;
  /** A body follows (chunked, or content-length above 0). */
  hasBody: boolean;
  chunked: boolean;
}

export interface Http1RequestHandler {
  onRequestHead(head: Http1RequestHead): void;
  onRequestBody(chunk: Buffer): void;
  onRequestComplete(): void;
}

export class Http1RequestParser {
  private readonly handler: Http1RequestHandler;
  private state = S_HEAD;
  private headBuf: Buffer | undefined = undefined;
  private remaining = 0;
  private lineBytes = 0;
  private chunkSizeDigits = 0;
  private sawExtension = false;
  private chunkCr = false;
  private trailerBytes = 0;
  private trailerLine = 0;
  private trailerCr = false;
  /** Why parsing failed ('' while it has not). */
  error = '';
  /** Status to answer a failure with: 400, or 431 for oversized heads. */
  errorStatus = 400;

  constructor(handler: Http1RequestHandler) {
    this.handler = handler;
  }

  /** Ready for the next request on the connection. */
  reset(): void {
    this.state = S_HEAD;
    this.headBuf = undefined;
  }

  /** The current message (head and body) has been read completely. */
  get complete(): boolean {
    return this.state === S_DONE;
  }

  /** Part of a request head has arrived but not all of it. */
  get inHead(): boolean {
    return this.state === S_HEAD && this.headBuf !== undefined;
  }

  get failed(): boolean {
    return this.state === S_ERROR;
  }

  /**
   * Feeds bytes from `pos`; returns the position where parsing stopped: the
   * end of the chunk, or the end of the message (the rest belongs to the
   * next request), or -1 on a protocol error (`error`, `errorStatus`).
   */
  execute(chunk: Buffer, pos: number): number {
    const len = chunk.length;
    while (pos < len) {
      switch (this.state) {
        case S_HEAD:
          pos = this.readHead(chunk, pos);
          if (pos < 0) return this.failed ? -1 : len;
          break;
        case S_LENGTH: {
          const n = Math.min(this.remaining, len - pos);
          this.remaining -= n;
          const slice = pos === 0 && n === len ? chunk : chunk.subarray(pos, pos + n);
          pos += n;
          if (this.remaining === 0) this.state = S_DONE;
          this.handler.onRequestBody(slice);
          if (this.state === S_DONE) {
            this.handler.onRequestComplete();
            return pos;
          }
          break;
        }
        case S_CHUNK_SIZE:
          pos = this.readChunkSize(chunk, pos);
          if (pos < 0) return -1;
          break;
        case S_CHUNK_DATA: {
          const n = Math.min(this.remaining, len - pos);
          this.remaining -= n;
          const slice = chunk.subarray(pos, pos + n);
          pos += n;
          if (this.remaining === 0) this.state = S_CHUNK_DATA_CR;
          this.handler.onRequestBody(slice);
          break;
        }
        case S_CHUNK_DATA_CR:
          if (chunk[pos++] !== CR) return this.failAt('chunk data not followed by CRLF');
          this.state = S_CHUNK_DATA_LF;
          break;
        case S_CHUNK_DATA_LF:
          if (chunk[pos++] !== LF) return this.failAt('chunk data not followed by CRLF');
          this.startChunkSize();
          break;
        case S_TRAILERS:
          pos = this.readTrailers(chunk, pos);
          if (pos < 0) return -1;
          break;
        case S_DONE:
          return pos;
        default:
          return -1;
      }
      if (this.complete) return pos;
    }
    return pos;
  }

  private fail(reason: string, status = 400): void {
    this.state = S_ERROR;
    this.error = reason;
    this.errorStatus = status;
    this.headBuf = undefined;
  }

  private failAt(reason: string): -1 {
    this.fail(reason);
    return -1;
  }

  private startChunkSize(): void {
    this.state = S_CHUNK_SIZE;
    this.lineBytes = 0;
    this.chunkSizeDigits = 0;
    this.sawExtension = false;
    this.chunkCr = false;
  }

  /** Returns the position after the head, or -1 when more bytes are needed or on error. */
  private readHead(chunk: Buffer, pos: number): number {
    if (this.headBuf === undefined) {
      // Empty lines before a request line are ignored (RFC 9112 §2.2).
      while (pos < chunk.length && (chunk[pos] === CR || chunk[pos] === LF)) pos++;
      if (pos === chunk.length) return -1;
    }
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
    if (end < 0 || end - base > MAX_REQUEST_HEAD_BYTES) {
      if (buf.length - base > MAX_REQUEST_HEAD_BYTES) {
        this.fail('request head larger than 16 KiB', 431);
        return -1;
      }
      // Bytes that cannot begin a request (TLS, binary) are refused now rather than at the size limit.
      if (!plausibleRequestStart(buf, base)) {
        this.fail('not an HTTP/1.x request');
        return -1;
      }
      this.headBuf = base === 0 && buf !== chunk ? buf : Buffer.from(buf.subarray(base));
      return -1;
    }
    const consumed = this.headBuf === undefined ? end + 4 : end + 4 - this.headBuf.length + pos;
    this.headBuf = undefined;
    if (!this.parseHead(buf.toString('latin1', base, end + 2))) return -1;
    return consumed;
  }

  /** `text` is the head up to and including the last header line's CRLF. */
  private parseHead(text: string): boolean {
    let eol = text.indexOf('\r\n');
    const line = text.slice(0, eol);
    const sp1 = line.indexOf(' ');
    const sp2 = line.lastIndexOf(' ');
    if (sp1 <= 0 || sp2 <= sp1 + 1 || sp2 !== line.length - 9 || !line.startsWith('HTTP/1.', sp2 + 1)) {
      this.fail('malformed request line');
      return false;
    }
    const minorCode = line.charCodeAt(line.length - 1);
    if (minorCode !== 49 && minorCode !== 48) {
      this.fail('unsupported HTTP version');
      return false;
    }
    const minor = minorCode - 48;
    const method = line.slice(0, sp1);
    const target = line.slice(sp1 + 1, sp2);
    if (!METHODS.has(method) || INVALID_TARGET.test(target)) {
      this.fail('invalid method or request target');
      return false;
    }
    const headers: string[] = [];
    let contentLength = -1;
    let chunked = false;
    let hasTe = false;
    let hasHost = false;
    let close = minor === 0;
    let expectContinue = false;
    let start = eol + 2;
    if (text.indexOf('\n') < eol || text.indexOf('\r') < eol) {
      this.fail('bare CR or LF in request line');
      return false;
    }
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
      if (headers.length >= MAX_REQUEST_HEADERS * 2) {
        this.fail('more than 100 request headers', 431);
        return false;
      }
      headers.push(name, value);
      start = eol + 2;
      const nl = name.length;
      if (nl === 4 || nl === 6 || nl === 10 || nl === 14 || nl === 17) {
        const lower = name.toLowerCase();
        if (lower === 'host') {
          if (hasHost) {
            this.fail('more than one host header');
            return false;
          }
          hasHost = true;
        } else if (lower === 'content-length') {
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
          else if (minor === 0 && /(^|,)\s*keep-alive\s*(,|$)/.test(v)) close = false;
        } else if (lower === 'expect') {
          if (minor === 1 && value.toLowerCase() === '100-continue') expectContinue = true;
        }
      }
    }
    if (chunked && contentLength >= 0) {
      this.fail('both content-length and transfer-encoding');
      return false;
    }
    if (!hasHost && minor === 1 && method !== 'CONNECT') {
      this.fail('HTTP/1.1 request without a host header');
      return false;
    }
    const hasBody = chunked || contentLength > 0;
    if (chunked) {
      this.startChunkSize();
    } else if (contentLength > 0) {
      this.state = S_LENGTH;
      this.remaining = contentLength;
    } else {
      this.state = S_DONE;
    }
    const done = this.state === S_DONE;
    this.handler.onRequestHead({ method, target, minor, headers, keepAlive: !close, expectContinue, hasBody, chunked });
    if (done) this.handler.onRequestComplete();
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

  /** Trailer fields are read, bounded and dropped; the request ends at the empty line. */
  private readTrailers(chunk: Buffer, pos: number): number {
    const len = chunk.length;
    while (pos < len) {
      const c = chunk[pos++];
      if (++this.trailerBytes > MAX_REQUEST_HEAD_BYTES) return this.failAt('trailers larger than 64 KiB');
      if (this.trailerCr) {
        if (c !== LF) return this.failAt('bare CR in trailers');
        this.trailerCr = false;
        if (this.trailerLine === 0) {
          this.state = S_DONE;
          this.handler.onRequestComplete();
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
}

/** The method so far is a token, and a CR or LF never comes before the first space. */
function plausibleRequestStart(buf: Buffer, base: number): boolean {
  const end = Math.min(buf.length, base + 32);
  for (let i = base; i < end; i++) {
    const c = buf[i];
    if (c === 32) return i > base;
    if (!IS_TOKEN[c]) return false;
  }
  return true;
}

const IS_TOKEN = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") IS_TOKEN[c.charCodeAt(0)] = 1;

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
