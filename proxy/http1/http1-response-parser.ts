// A small, strict, incremental HTTP/1.1 response parser for the upstream side.
// It is fed whatever the socket delivers (a head may be split at any byte) and
// calls its handler with the status, the raw header list, body slices (zero
// copy: subarrays of the socket's chunks, chunk framing removed) and the end.
// Strict on purpose: an upstream that sends obs-fold, bare LF, control
// characters, conflicting lengths or oversized heads gets a protocol error
// (UPE) instead of a guess that could desynchronise a pooled connection.

import { Http1ChunkedDecoder } from './http1-body-decoder.ts';
import { HEAD_TOO_LARGE, Http1HeadReader } from './http1-head-reader.ts';
import { Http1FieldReader, INVALID_VALUE } from './http1-syntax.ts';

export const MAX_HEAD_BYTES = 64 * 1024;
export const MAX_HEADERS = 100;

/** How the body of the current response ends. */
export const FRAMING_NONE = 0;
export const FRAMING_LENGTH = 1;
export const FRAMING_CHUNKED = 2;
export const FRAMING_CLOSE = 3;

const S_IDLE = 0;
const S_HEAD = 1;
const S_LENGTH = 2;
const S_CHUNKED = 3;
const S_CLOSE = 4;
const S_DONE = 5;
const S_ERROR = 6;

export interface Http1ResponseHandler {
  /** A final (non-1xx) response head; `headers` is the raw flat list [name, value, …]. */
  onResponseHead(status: number, headers: string[]): void;
  onResponseBody(chunk: Buffer): void;
  onResponseComplete(): void;
}

export class Http1ResponseParser {
  private readonly handler: Http1ResponseHandler;
  private state = S_IDLE;
  private readonly head = new Http1HeadReader(MAX_HEAD_BYTES);
  private readonly field = new Http1FieldReader();
  private readonly chunked = new Http1ChunkedDecoder(MAX_HEAD_BYTES);
  private noBody = false;
  private remaining = 0;
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

  /** The request asked to switch protocols (WebSocket): a 101 answer is final, and the bytes after it are the tunnel's. */
  private upgrade = false;

  /** Prepares for the response to the request just sent; `head` for HEAD requests (no body follows). */
  expect(head: boolean, upgrade = false): void {
    this.state = S_HEAD;
    this.noBody = head;
    this.upgrade = upgrade;
    this.head.reset();
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
    this.head.reset();
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
        case S_CHUNKED: {
          const dec = this.chunked;
          pos = dec.execute(chunk, pos);
          if (pos < 0) return this.fail(dec.error);
          if (dec.done) this.state = S_DONE;
          if (dec.dataStart >= 0) this.handler.onResponseBody(chunk.subarray(dec.dataStart, pos));
          if (this.state === S_DONE) this.handler.onResponseComplete();
          break;
        }
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
    this.head.reset();
    return false;
  }

  /** Returns the position after the head, or -1 when more bytes are needed or on error. */
  private readHead(chunk: Buffer, pos: number): number {
    const next = this.head.read(chunk, pos);
    if (next < 0) {
      if (next === HEAD_TOO_LARGE) this.fail('response head larger than 64 KiB');
      return -1;
    }
    if (!this.parseHead(this.head.text)) return -1;
    return next;
  }

  /** `text` is the head up to and including the last header line's CRLF. */
  private parseHead(text: string): boolean {
    const eol = text.indexOf('\r\n');
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
    let start = eol + 2;
    const field = this.field;
    field.begin(minor - 48);
    while (start < text.length) {
      if (!field.read(text, start)) {
        this.fail(field.error);
        return false;
      }
      const name = field.name;
      const value = field.value;
      if (headers.length >= MAX_HEADERS * 2) {
        this.fail('more than 100 response headers');
        return false;
      }
      headers.push(name, value);
      start = field.next;
      const nl = name.length;
      if (nl === 14 || nl === 17 || nl === 10) {
        if (!field.noteFraming(name.toLowerCase())) {
          this.fail(field.error);
          return false;
        }
      }
    }
    const { contentLength, chunked, close } = field;
    if (status < 200) {
      if (status === 101) {
        // Only a request that asked for an upgrade may be answered with one.
        if (!this.upgrade) {
          this.fail('unexpected 101 Switching Protocols');
          return false;
        }
        // What follows is the upgraded protocol's bytes until the connection closes: relayed as a read-until-close body.
        this.status = 101;
        this.framing = FRAMING_CLOSE;
        this.keepAlive = false;
        this.state = S_CLOSE;
        this.handler.onResponseHead(101, headers);
        return true;
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
      this.state = S_CHUNKED;
      this.chunked.start();
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
}
