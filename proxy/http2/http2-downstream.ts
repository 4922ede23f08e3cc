// One HTTP/2 request stream from a client (http2-connection.ts, server role),
// as the exchange's Downstream (proxy/http/downstream.ts). Pseudo-headers
// become method and target; `:authority` stands in for Host (RFC 9113
// §8.3.1: it wins over a Host field). The response head is held until the
// end of the tick, so a head with nothing after it leaves as one HEADERS
// frame with END_STREAM (gRPC's trailers-only form). The request body is
// held (and no flow-control window returned for it) until the exchange asks
// for it with readBody().
import type { Downstream } from '../http/downstream.ts';
import { INVALID_VALUE } from '../http1/http1-syntax.ts';
import { H2_INTERNAL_ERROR } from './http2-frame.ts';
import type { Http2Stream, Http2StreamEvents } from './http2-stream.ts';

export interface Http2DownstreamHandler<T> {
  body(owner: T, chunk: Buffer): void;
  bodyEnd(owner: T): void;
  /** The client took what it had pushed back on. */
  drain(owner: T): void;
  /** The response is over, written completely or not (`finished` says which). */
  done(owner: T): void;
}

// Connection-specific fields HTTP/2 forbids (RFC 9113 §8.2.2), and Host, which `:authority` replaces.
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings', 'te', 'host']);

export class Http2Downstream<T> implements Downstream {
  readonly httpVersion = 2 as const;
  readonly stream: Http2Stream;
  readonly method: string;
  readonly target: string;
  readonly rawHeaders: string[];
  readonly remoteAddress: string;
  owner: T | undefined = undefined;
  bodyComplete: boolean;
  headersSent = false;
  statusCode = 0;
  finished = false;
  destroyed = false;
  requestTrailers: string[] | undefined = undefined;

  private readonly handler: Http2DownstreamHandler<T>;
  private reading = false;
  private discarding = false;
  private noBody = false;
  private doneCalled = false;
  private pendingHead: string[] | undefined = undefined;

  /** `fields`: the request head as the connection validated it (pseudo-headers first). */
  constructor(stream: Http2Stream, fields: string[], endStream: boolean, remoteAddress: string, handler: Http2DownstreamHandler<T>) {
    this.stream = stream;
    this.handler = handler;
    this.remoteAddress = remoteAddress;
    this.method = stream.method;
    this.target = stream.path;
    const authority = stream.authority;
    const flat: string[] = authority !== undefined ? ['host', authority] : [];
    let cookie = -1;
    for (let i = 0; i < fields.length; i += 2) {
      const name = fields[i];
      if (name.charCodeAt(0) === 58 /* : */) continue;
      if (name === 'host' && authority !== undefined) continue;
      // RFC 9113 §8.2.3: cookie crumbs may arrive as separate fields; HTTP/1.1 wants one.
      if (name === 'cookie') {
        if (cookie >= 0) {
          flat[cookie] += '; ' + fields[i + 1];
          continue;
        }
        cookie = flat.length + 1;
      }
      flat.push(name, fields[i + 1]);
    }
    this.rawHeaders = flat;
    this.bodyComplete = endStream;
    stream.owner = this;
    stream.events = DOWNSTREAM_EVENTS;
    // The body waits here until the exchange knows where it goes.
    if (!endStream) stream.pause();
  }

  writeHead(status: number, headers: string[], validate: boolean): boolean {
    if (this.destroyed || this.headersSent) return false;
    const out: string[] = [':status', String(status)];
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i].toLowerCase();
      const value = headers[i + 1];
      if (CONNECTION_SPECIFIC.has(name)) continue;
      if (validate && INVALID_VALUE.test(value)) return false;
      out.push(name, value);
    }
    this.noBody = this.method === 'HEAD' || status === 204 || status === 205 || status === 304;
    this.headersSent = true;
    this.statusCode = status;
    this.pendingHead = out;
    process.nextTick(flushHead, this);
    return true;
  }

  /** Sends the held response head (`end`: it is the whole response). */
  flushHead(end = false): void {
    const head = this.pendingHead;
    if (head === undefined) return;
    this.pendingHead = undefined;
    if (this.destroyed) return;
    this.stream.sendHeaders(head, end || this.noBody);
  }

  write(chunk: Buffer): boolean {
    if (this.noBody || chunk.length === 0 || this.destroyed) return true;
    if (this.pendingHead !== undefined) this.flushHead();
    if (this.destroyed) return true;
    return this.stream.write(chunk);
  }

  end(chunk?: Buffer): void {
    if (this.finished || this.destroyed) return;
    this.finished = true;
    const hasChunk = chunk !== undefined && chunk.length > 0 && !this.noBody;
    if (this.pendingHead !== undefined) this.flushHead(!hasChunk);
    if (!this.stream.localEnded) this.stream.end(hasChunk ? chunk : undefined);
    this.callDone();
  }

  endWithTrailers(trailers: string[]): void {
    if (this.finished || this.destroyed) return;
    // HTTP/2 clients always accept trailers (te: trailers only says they want them).
    if (trailers.length === 0 || this.noBody) {
      this.end();
      return;
    }
    const out: string[] = [];
    for (let i = 0; i < trailers.length; i += 2) {
      const name = trailers[i].toLowerCase();
      if (CONNECTION_SPECIFIC.has(name) || name.charCodeAt(0) === 58 || INVALID_VALUE.test(trailers[i + 1])) continue;
      out.push(name, trailers[i + 1]);
    }
    this.finished = true;
    if (this.pendingHead !== undefined) this.flushHead();
    this.stream.endWithTrailers(out);
    this.callDone();
  }

  destroy(code?: number): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.pendingHead = undefined;
    this.stream.reset(code ?? H2_INTERNAL_ERROR);
  }

  readBody(): void {
    if (this.reading || this.destroyed) return;
    this.reading = true;
    if (this.bodyComplete) {
      if (!this.discarding && this.owner !== undefined) this.handler.bodyEnd(this.owner);
      return;
    }
    this.stream.resume();
  }

  pauseBody(): void {
    this.stream.pause();
  }

  resumeBody(): void {
    if (!this.destroyed && this.reading) this.stream.resume();
  }

  discardBody(): void {
    this.discarding = true;
    if (!this.reading) this.readBody();
    else this.stream.resume();
  }

  onData(chunk: Buffer): void {
    if (this.discarding || this.owner === undefined) return;
    this.handler.body(this.owner, chunk);
  }

  onEnd(): void {
    if (this.bodyComplete) return;
    this.bodyComplete = true;
    if (this.discarding || this.owner === undefined) return;
    this.handler.bodyEnd(this.owner);
  }

  onDrain(): void {
    if (this.owner !== undefined && !this.doneCalled) this.handler.drain(this.owner);
  }

  onClose(): void {
    this.destroyed = true;
    this.pendingHead = undefined;
    this.callDone();
  }

  private callDone(): void {
    if (this.doneCalled || this.owner === undefined) return;
    this.doneCalled = true;
    this.handler.done(this.owner);
  }
}

type AnyDownstream = Http2Downstream<unknown>;

function flushHead(down: AnyDownstream): void {
  down.flushHead();
}

function noop(): void {
  // A request stream has no response head to receive.
}

const DOWNSTREAM_EVENTS: Http2StreamEvents = {
  headers: noop,
  data(stream, chunk) {
    (stream.owner as AnyDownstream).onData(chunk);
  },
  trailers(stream, fields) {
    (stream.owner as AnyDownstream).requestTrailers = fields;
  },
  end(stream) {
    (stream.owner as AnyDownstream).onEnd();
  },
  drain(stream) {
    (stream.owner as AnyDownstream).onDrain();
  },
  close(stream) {
    (stream.owner as AnyDownstream).onClose();
  },
};
