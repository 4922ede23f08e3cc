// One downstream HTTP/1.1 connection over a raw net.Socket, instead of
// node:http's server (IncomingMessage/ServerResponse, whose layers were most
// of the proxy's CPU per request). One request at a time: bytes pipelined
// behind it wait, in order, until its response is written. The connection is
// the request's Downstream (proxy/http/downstream.ts) while it is current;
// keep-alive follows the HTTP version and `connection` headers both ways.
import type { Socket } from 'node:net';
import http from '../http/node-http.ts';
import type { Downstream } from '../http/downstream.ts';
import { Http1RequestParser } from './http1-request-parser.ts';
import type { Http1RequestHandler, Http1RequestHead } from './http1-request-parser.ts';
import { INVALID_VALUE } from './http1-syntax.ts';

export interface Http1ServerHandler<T> {
  /** A request head arrived; the handler sets `conn.current` to the owner serving it before anything else. */
  request(conn: Http1ServerConnection<T>): void;
  /** CONNECT: answer on the socket; return true to read the following bytes as new requests. */
  connect(conn: Http1ServerConnection<T>, target: string): boolean;
  body(owner: T, chunk: Buffer): void;
  bodyEnd(owner: T): void;
  /** The client took what it had pushed back on. */
  drain(owner: T): void;
  /** The response is over, written completely or not (`finished` says which). */
  done(owner: T): void;
  /** A malformed request head; the connection is answered and closed. */
  clientError(conn: Http1ServerConnection<T>, status: number, reason: string): void;
}

const CRLF = '\r\n';
const LAST_CHUNK = '0\r\n\r\n';
const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n';
const STATUS_LINES: string[] = [];

function statusLine(status: number): string {
  return (STATUS_LINES[status] ??= `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? 'Unknown'}\r\n`);
}

export function clientErrorResponse(status: number): string {
  return statusLine(status) + 'server: jibe\r\nconnection: close\r\ncontent-length: 0\r\n\r\n';
}

export class Http1ServerConnection<T> implements Downstream, Http1RequestHandler {
  readonly socket: Socket;
  private readonly handler: Http1ServerHandler<T>;
  private readonly parser: Http1RequestParser;
  /** The request being served. */
  current: T | undefined = undefined;
  /** When the connection started waiting for a request head (0 while one is in flight). */
  idleSince: number;
  /** No further request will be read (close after the current response). */
  closing = false;

  readonly httpVersion = 1 as const;
  readonly requestTrailers = undefined;
  method = '';
  target = '';
  rawHeaders: string[] = [];
  bodyComplete = true;
  headersSent = false;
  statusCode = 0;
  finished = false;
  destroyed = false;

  private keepAlive = true;
  private minor = 1;
  private reading = false;
  private buffered: Buffer[] | undefined = undefined;
  private bodyEndPending = false;
  private discarding = false;
  private pending: Buffer | undefined = undefined;
  private feeding = false;
  private tunnel = false;
  private noBody = false;
  private chunked = false;
  private corked = false;
  private needDrain = false;
  /** A 101 answer was written: bytes flow raw both ways until either side closes. */
  private tunneling = false;

  constructor(socket: Socket, handler: Http1ServerHandler<T>) {
    this.socket = socket;
    this.handler = handler;
    this.parser = new Http1RequestParser(this);
    this.idleSince = performance.now();
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onEnd());
    socket.on('drain', () => this.onDrain());
    socket.on('close', () => this.onClose());
    socket.on('error', () => {});
  }

  get remoteAddress(): string {
    return this.socket.remoteAddress ?? '';
  }

  /** Waiting for a request and none has started: safe to close. */
  get idle(): boolean {
    return this.current === undefined && !this.parser.inHead && this.pending === undefined;
  }

  /** Part of a request head has been waiting longer than allowed: 408 and close. */
  timedOut(): void {
    if (this.current !== undefined || this.destroyed) return;
    if (this.parser.inHead) this.socket.end(clientErrorResponse(408));
    else this.socket.destroy();
    this.closing = true;
  }

  /** Serves bytes already read from the socket before this connection took it (protocol sniffing). */
  receive(head: Buffer): void {
    if (head.length > 0) this.onData(head);
  }

  private onData(chunk: Buffer): void {
    if (this.tunneling) {
      if (this.current !== undefined) this.handler.body(this.current, chunk);
      return;
    }
    if (this.closing) return;
    if (this.current !== undefined && this.parser.complete) {
      this.holdBack(chunk);
      return;
    }
    this.feed(chunk, 0);
  }

  private holdBack(chunk: Buffer): void {
    this.pending = this.pending === undefined ? chunk : Buffer.concat([this.pending, chunk]);
    this.socket.pause();
  }

  private feed(chunk: Buffer, pos: number): void {
    this.feeding = true;
    try {
      while (pos < chunk.length && !this.closing) {
        if (this.parser.complete) {
          if (this.current !== undefined) {
            this.holdBack(pos === 0 ? chunk : chunk.subarray(pos));
            return;
          }
          this.parser.reset();
        }
        const next = this.parser.execute(chunk, pos);
        if (next < 0) {
          this.rejectRequest(this.parser.errorStatus, this.parser.error);
          return;
        }
        pos = next;
      }
      if (this.parser.complete && this.current === undefined && !this.closing) this.parser.reset();
    } finally {
      this.feeding = false;
    }
  }

  private rejectRequest(status: number, reason: string): void {
    this.closing = true;
    if (this.current !== undefined && this.headersSent) {
      this.socket.destroy();
      return;
    }
    this.handler.clientError(this, status, reason);
    if (this.current !== undefined) {
      // A malformed chunked body mid-request: the exchange is over for the client.
      this.socket.destroy();
      return;
    }
    this.socket.end(clientErrorResponse(status));
  }

  onRequestHead(head: Http1RequestHead): void {
    this.idleSince = 0;
    if (head.method === 'CONNECT') {
      this.tunnel = true;
      this.target = head.target;
      return;
    }
    this.method = head.method;
    this.target = head.target;
    this.rawHeaders = head.headers;
    this.minor = head.minor;
    this.keepAlive = head.keepAlive;
    this.bodyComplete = !head.hasBody;
    this.headersSent = false;
    this.statusCode = 0;
    this.finished = false;
    this.reading = false;
    this.bodyEndPending = false;
    this.discarding = false;
    this.needDrain = false;
    if (head.expectContinue && head.hasBody) this.socket.write(CONTINUE, 'latin1');
    this.handler.request(this);
  }

  onRequestBody(chunk: Buffer): void {
    if (this.current === undefined || this.discarding) return;
    if (!this.reading) {
      (this.buffered ??= []).push(chunk);
      this.socket.pause();
      return;
    }
    this.handler.body(this.current, chunk);
  }

  onRequestComplete(): void {
    if (this.tunnel) {
      this.tunnel = false;
      if (!this.handler.connect(this, this.target)) this.closing = true;
      else this.idleSince = performance.now();
      return;
    }
    if (this.current === undefined) return;
    this.bodyComplete = true;
    if (this.discarding) return;
    if (this.reading) this.handler.bodyEnd(this.current);
    else this.bodyEndPending = true;
  }

  readBody(): void {
    if (this.reading || this.current === undefined) return;
    this.reading = true;
    const owner = this.current;
    const buffered = this.buffered;
    this.buffered = undefined;
    if (buffered !== undefined) for (let i = 0; i < buffered.length; i++) this.handler.body(owner, buffered[i]);
    if (this.bodyEndPending) {
      this.bodyEndPending = false;
      this.handler.bodyEnd(owner);
    } else if (this.current === owner) {
      this.socket.resume();
    }
  }

  pauseBody(): void {
    this.socket.pause();
  }

  resumeBody(): void {
    if (this.tunneling || (!this.parser.complete && !this.closing)) this.socket.resume();
  }

  discardBody(): void {
    this.discarding = true;
    this.buffered = undefined;
    this.keepAlive = false;
    this.socket.resume();
  }

  writeHead(status: number, headers: string[], validate: boolean): boolean {
    if (status === 101) return this.switchProtocols(headers, validate);
    let head = statusLine(status);
    let contentLength = false;
    let hasConnection = false;
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i];
      const value = headers[i + 1];
      if (validate && INVALID_VALUE.test(value)) return false;
      const nl = name.length;
      if (nl === 14) {
        if (name.toLowerCase() === 'content-length') contentLength = true;
      } else if (nl === 10 && name.toLowerCase() === 'connection') {
        hasConnection = true;
        if (value.toLowerCase() === 'close') this.keepAlive = false;
      }
      head += name + ': ' + value + CRLF;
    }
    this.noBody = this.method === 'HEAD' || status === 204 || status === 304 || status < 200;
    this.chunked = false;
    if (!contentLength && !this.noBody) {
      if (this.minor === 1) {
        this.chunked = true;
        head += 'transfer-encoding: chunked\r\n';
      } else {
        // An HTTP/1.0 client reads an unframed body until the connection closes.
        this.keepAlive = false;
      }
    }
    if (!this.bodyComplete && !this.reading) this.keepAlive = false;
    if (!hasConnection) {
      if (!this.keepAlive) head += 'connection: close\r\n';
      else if (this.minor === 0) head += 'connection: keep-alive\r\n';
    }
    this.headersSent = true;
    this.statusCode = status;
    // Head and first body slice leave in one write.
    this.socket.cork();
    this.corked = true;
    process.nextTick(uncork, this);
    this.socket.write(head + CRLF, 'latin1');
    return true;
  }

  /**
   * Writes a 101 and turns the connection into a tunnel: what the client sends
   * next (and what it already sent behind its request head) goes to the
   * handler as body, raw; the response body is written raw. Never kept alive.
   */
  private switchProtocols(headers: string[], validate: boolean): boolean {
    let head = statusLine(101);
    for (let i = 0; i < headers.length; i += 2) {
      if (validate && INVALID_VALUE.test(headers[i + 1])) return false;
      head += headers[i] + ': ' + headers[i + 1] + CRLF;
    }
    this.headersSent = true;
    this.statusCode = 101;
    this.noBody = false;
    this.chunked = false;
    this.keepAlive = false;
    this.tunneling = true;
    this.reading = true;
    this.socket.write(head + CRLF, 'latin1');
    const pending = this.pending;
    this.pending = undefined;
    if (pending !== undefined && this.current !== undefined) this.handler.body(this.current, pending);
    this.socket.resume();
    return true;
  }

  write(chunk: Buffer): boolean {
    if (this.noBody || chunk.length === 0 || this.destroyed) return true;
    let ok: boolean;
    if (this.chunked) {
      const socket = this.socket;
      socket.write(chunk.length.toString(16) + CRLF, 'latin1');
      socket.write(chunk);
      ok = socket.write(CRLF, 'latin1');
    } else {
      ok = this.socket.write(chunk);
    }
    if (!ok) this.needDrain = true;
    return ok;
  }

  end(chunk?: Buffer): void {
    if (this.finished || this.destroyed) return;
    if (chunk !== undefined) this.write(chunk);
    if (this.chunked && !this.noBody) this.socket.write(LAST_CHUNK, 'latin1');
    this.finished = true;
    if (this.corked) {
      this.corked = false;
      this.socket.uncork();
    }
    const owner = this.current;
    this.current = undefined;
    this.idleSince = performance.now();
    if (!this.bodyComplete) this.keepAlive = false;
    if (!this.keepAlive) {
      this.closing = true;
      this.pending = undefined;
      this.socket.end();
      // Whatever the client still sends is read and dropped until it closes.
      this.socket.resume();
    }
    if (owner !== undefined) this.handler.done(owner);
    if (!this.closing && !this.feeding) {
      if (this.pending !== undefined) process.nextTick(feedPending, this);
      else this.socket.resume();
    }
  }

  endWithTrailers(trailers: string[]): void {
    if (this.finished || this.destroyed) return;
    if (this.chunked && !this.noBody && trailers.length > 0 && this.acceptsTrailers()) {
      let block = '0\r\n';
      for (let i = 0; i < trailers.length; i += 2) {
        if (!INVALID_VALUE.test(trailers[i + 1])) block += trailers[i] + ': ' + trailers[i + 1] + CRLF;
      }
      this.socket.write(block + CRLF, 'latin1');
      // The last chunk is written; end() must not write another.
      this.chunked = false;
    }
    this.end();
  }

  /** The client said it reads a trailer section (`te: trailers`, RFC 9110 §10.1.4). */
  private acceptsTrailers(): boolean {
    const raw = this.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) {
      if (raw[i].length === 2 && raw[i].toLowerCase() === 'te' && /(^|,)\s*trailers\s*(;|,|$)/i.test(raw[i + 1])) return true;
    }
    return false;
  }

  /** Flushes the head and body slices written in the same tick as one write. */
  uncorkNow(): void {
    if (this.corked) {
      this.corked = false;
      this.socket.uncork();
    }
  }

  /** Continues with pipelined bytes that arrived while the last request was served. */
  feedPending(): void {
    const pending = this.pending;
    if (pending === undefined || this.closing || this.current !== undefined) return;
    this.pending = undefined;
    this.feed(pending, 0);
    if (!this.closing && this.current === undefined) this.socket.resume();
    else if (this.current !== undefined && !this.parser.complete && this.reading) this.socket.resume();
  }

  destroy(): void {
    if (this.destroyed) return;
    this.socket.destroy();
  }

  private onEnd(): void {
    if (this.tunneling && this.current !== undefined) {
      // The client is done sending: half-close the tunnel's upstream side, keep relaying the other way.
      this.handler.bodyEnd(this.current);
      return;
    }
    // As node's server: a client that ends its side is gone; a response in flight is cut (DC).
    this.closing = true;
    if (this.current !== undefined) this.socket.destroy();
    else this.socket.end();
  }

  private onDrain(): void {
    if (this.needDrain && this.current !== undefined) {
      this.needDrain = false;
      this.handler.drain(this.current);
    }
  }

  private onClose(): void {
    this.destroyed = true;
    this.closing = true;
    const owner = this.current;
    if (owner !== undefined) {
      this.current = undefined;
      this.handler.done(owner);
    }
  }
}

function uncork(conn: Http1ServerConnection<unknown>): void {
  conn.uncorkNow();
}

function feedPending(conn: Http1ServerConnection<unknown>): void {
  conn.feedPending();
}
