// A small, strict, incremental HTTP/1.1 request parser for the downstream
// side. It is fed whatever the socket delivers (a head may be split at any
// byte), hands the request line, the raw header list and body slices (zero
// copy, chunk framing removed) to its handler, and stops at the end of each
// message so that pipelined bytes stay in order until the connection is ready
// for the next request. Strict on purpose: obs-fold, bare CR/LF, control
// characters and conflicting framing are 400; heads over 16 KiB or 100
// headers are 431 — a guess could desynchronise a keep-alive connection.

import { Http1ChunkedDecoder } from './http1-body-decoder.ts';
import { HEAD_TOO_LARGE, Http1HeadReader } from './http1-head-reader.ts';
import { CR, Http1FieldReader, IS_TOKEN, LF } from './http1-syntax.ts';

// node:http's default (--max-http-header-size): clients and tests expect 431 beyond it.
export const MAX_REQUEST_HEAD_BYTES = 16 * 1024;
export const MAX_REQUEST_HEADERS = 100;

const S_HEAD = 0;
const S_LENGTH = 1;
const S_CHUNKED = 2;
const S_DONE = 3;
const S_ERROR = 4;
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
  private readonly head = new Http1HeadReader(MAX_REQUEST_HEAD_BYTES);
  private readonly field = new Http1FieldReader();
  private readonly chunked = new Http1ChunkedDecoder(MAX_REQUEST_HEAD_BYTES);
  private remaining = 0;
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
    this.head.reset();
  }

  /** The current message (head and body) has been read completely. */
  get complete(): boolean {
    return this.state === S_DONE;
  }

  /** Part of a request head has arrived but not all of it. */
  get inHead(): boolean {
    return this.state === S_HEAD && this.head.pending !== undefined;
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
        case S_CHUNKED: {
          const dec = this.chunked;
          pos = dec.execute(chunk, pos);
          if (pos < 0) return this.failAt(dec.error);
          if (dec.done) this.state = S_DONE;
          if (dec.dataStart >= 0) this.handler.onRequestBody(chunk.subarray(dec.dataStart, pos));
          if (this.state === S_DONE) this.handler.onRequestComplete();
          break;
        }
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
    this.head.reset();
  }

  private failAt(reason: string): -1 {
    this.fail(reason);
    return -1;
  }

  /** Returns the position after the head, or -1 when more bytes are needed or on error. */
  private readHead(chunk: Buffer, pos: number): number {
    if (this.head.pending === undefined) {
      // Empty lines before a request line are ignored (RFC 9112 §2.2).
      while (pos < chunk.length && (chunk[pos] === CR || chunk[pos] === LF)) pos++;
      if (pos === chunk.length) return -1;
    }
    const next = this.head.read(chunk, pos);
    if (next < 0) {
      if (next === HEAD_TOO_LARGE) {
        this.fail('request head larger than 16 KiB', 431);
      } else if (!plausibleRequestStart(this.head.pending as Buffer)) {
        // Bytes that cannot begin a request (TLS, binary) are refused now rather than at the size limit.
        this.fail('not an HTTP/1.x request');
      }
      return -1;
    }
    if (!this.parseHead(this.head.text)) return -1;
    return next;
  }

  /** `text` is the head up to and including the last header line's CRLF. */
  private parseHead(text: string): boolean {
    const eol = text.indexOf('\r\n');
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
    let hasHost = false;
    let expectContinue = false;
    let start = eol + 2;
    if (text.indexOf('\n') < eol || text.indexOf('\r') < eol) {
      this.fail('bare CR or LF in request line');
      return false;
    }
    const field = this.field;
    field.begin(minor);
    while (start < text.length) {
      if (!field.read(text, start)) {
        this.fail(field.error);
        return false;
      }
      const name = field.name;
      const value = field.value;
      if (headers.length >= MAX_REQUEST_HEADERS * 2) {
        this.fail('more than 100 request headers', 431);
        return false;
      }
      headers.push(name, value);
      start = field.next;
      const nl = name.length;
      if (nl === 4 || nl === 6 || nl === 10 || nl === 14 || nl === 17) {
        const lower = name.toLowerCase();
        if (lower === 'host') {
          if (hasHost) {
            this.fail('more than one host header');
            return false;
          }
          hasHost = true;
        } else if (lower === 'expect') {
          if (minor === 1 && value.toLowerCase() === '100-continue') expectContinue = true;
        } else if (!field.noteFraming(lower)) {
          this.fail(field.error);
          return false;
        }
      }
    }
    const { contentLength, chunked, close } = field;
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
      this.state = S_CHUNKED;
      this.chunked.start();
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
}

/** The method so far is a token, and a CR or LF never comes before the first space. */
function plausibleRequestStart(buf: Buffer): boolean {
  const end = Math.min(buf.length, 32);
  for (let i = 0; i < end; i++) {
    const c = buf[i];
    if (c === 32) return i > 0;
    if (!IS_TOKEN[c]) return false;
  }
  return true;
}
