// One HTTP/2 request stream from a client, as the exchange's Downstream
// (proxy/http/downstream.ts). Pseudo-headers become method and target;
// `:authority` stands in for Host (RFC 9113 §8.3.1: it wins over a Host
// field). The response head is held until the end of the tick, so a head
// with nothing after it leaves as one HEADERS frame with END_STREAM (gRPC's
// trailers-only form). The request body is read only once the exchange asks
// for it: until then node keeps it and stops granting flow-control window.
// Responses are sent with waitForTrailers so that their end is always ours to
// send (trailers, or an empty END_STREAM DATA frame): node's stream.close()
// ends the writable side first, which would make a reset response look whole.
import type { IncomingHttpHeaders, OutgoingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import type { Downstream } from '../http/downstream.ts';
import { H2_INTERNAL_ERROR, flattenHeaders } from './node-http2.ts';
import { INVALID_VALUE } from '../http1/http1-syntax.ts';

export interface Http2DownstreamHandler<T> {
  body(owner: T, chunk: Buffer): void;
  bodyEnd(owner: T): void;
  /** The client took what it had pushed back on. */
  drain(owner: T): void;
  /** The response is over, written completely or not (`finished` says which). */
  done(owner: T): void;
}

// Connection-specific fields HTTP/2 forbids (RFC 9113 §8.2.2); node throws on them.
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings', 'te', 'host']);

const WAIT_FOR_TRAILERS = { waitForTrailers: true };
const kDown = Symbol('jibe.http2.downstream');
type TaggedStream = ServerHttp2Stream & { [kDown]?: Http2Downstream<unknown> };

export class Http2Downstream<T> implements Downstream {
  readonly httpVersion = 2 as const;
  readonly stream: TaggedStream;
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
  private needDrain = false;
  private doneCalled = false;
  private pendingHead: OutgoingHttpHeaders | undefined = undefined;
  private trailers: OutgoingHttpHeaders | undefined = undefined;

  constructor(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, rawHeaders: string[] | undefined, remoteAddress: string, handler: Http2DownstreamHandler<T>) {
    this.stream = stream;
    this.handler = handler;
    this.remoteAddress = remoteAddress;
    this.method = (headers[':method'] as string | undefined) ?? '';
    this.target = (headers[':path'] as string | undefined) ?? (this.method === 'CONNECT' ? '' : '/');
    const authority = headers[':authority'] as string | undefined;
    const flat: string[] = authority !== undefined ? ['host', authority] : [];
    const raw = rawHeaders ?? flattenHeaders(headers);
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i];
      if (name.charCodeAt(0) === 58 /* : */) continue;
      if (name === 'host' && authority !== undefined) continue;
      // RFC 9113 §8.2.3: cookie crumbs may arrive as separate fields; HTTP/1.1 wants one.
      if (name === 'cookie') {
        const prior = flat.indexOf('cookie');
        if (prior >= 0 && (prior & 1) === 0) {
          flat[prior + 1] += '; ' + raw[i + 1];
          continue;
        }
      }
      flat.push(name, raw[i + 1]);
    }
    this.rawHeaders = flat;
    this.bodyComplete = stream.endAfterHeaders;
    const tagged = stream as TaggedStream;
    tagged[kDown] = this as Http2Downstream<unknown>;
    stream.on('close', onStreamClose);
    stream.on('error', onStreamError);
    stream.on('drain', onStreamDrain);
    stream.on('wantTrailers', onWantTrailers);
  }

  writeHead(status: number, headers: string[], validate: boolean): boolean {
    if (this.destroyed || this.headersSent) return false;
    const out: OutgoingHttpHeaders = { ':status': status };
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i].toLowerCase();
      const value = headers[i + 1];
      if (CONNECTION_SPECIFIC.has(name)) continue;
      if (validate && INVALID_VALUE.test(value)) return false;
      const prior = out[name];
      if (prior === undefined) out[name] = value;
      else if (Array.isArray(prior)) prior.push(value);
      else out[name] = [prior as string, value];
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
    if (this.destroyed || this.stream.destroyed) return;
    try {
      this.stream.respond(head, end || this.noBody ? { endStream: true } : WAIT_FOR_TRAILERS);
    } catch {
      // A value node refuses (the upstream parser let it through): the client must not get half a response.
      this.destroy();
    }
  }

  write(chunk: Buffer): boolean {
    if (this.noBody || chunk.length === 0 || this.destroyed) return true;
    if (this.pendingHead !== undefined) this.flushHead();
    if (this.destroyed) return true;
    const ok = this.stream.write(chunk);
    if (!ok) this.needDrain = true;
    return ok;
  }

  end(chunk?: Buffer): void {
    if (this.finished || this.destroyed) return;
    this.finished = true;
    const hasChunk = chunk !== undefined && chunk.length > 0 && !this.noBody;
    if (this.pendingHead !== undefined) this.flushHead(!hasChunk);
    if (!this.stream.destroyed && !this.stream.writableEnded) {
      if (hasChunk) this.stream.end(chunk);
      else this.stream.end();
    }
    this.callDone();
  }

  endWithTrailers(trailers: string[]): void {
    if (this.finished || this.destroyed) return;
    // HTTP/2 clients always accept trailers (te: trailers only says they want them).
    if (trailers.length === 0 || this.noBody) {
      this.end();
      return;
    }
    const out: OutgoingHttpHeaders = {};
    for (let i = 0; i < trailers.length; i += 2) {
      const name = trailers[i].toLowerCase();
      if (CONNECTION_SPECIFIC.has(name) || name.charCodeAt(0) === 58 || INVALID_VALUE.test(trailers[i + 1])) continue;
      out[name] = trailers[i + 1];
    }
    this.trailers = out;
    this.finished = true;
    if (this.pendingHead !== undefined) this.flushHead();
    if (!this.stream.destroyed && !this.stream.writableEnded) this.stream.end();
    this.callDone();
  }

  /** Node asks for the trailers of a response sent with `waitForTrailers` (an empty set ends the stream with an empty DATA frame). */
  sendTrailers(): void {
    // Being reset: the RST_STREAM follows; an END_STREAM now would make the response look whole.
    if (this.destroyed) return;
    const trailers = this.trailers ?? {};
    this.trailers = undefined;
    try {
      this.stream.sendTrailers(trailers);
    } catch {
      this.destroy();
    }
  }

  destroy(code?: number): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.pendingHead = undefined;
    if (!this.stream.destroyed) this.stream.close(code ?? H2_INTERNAL_ERROR);
  }

  readBody(): void {
    if (this.reading || this.bodyComplete || this.destroyed) {
      if (!this.reading && this.bodyComplete && this.owner !== undefined) {
        this.reading = true;
        if (!this.discarding) this.handler.bodyEnd(this.owner);
      }
      return;
    }
    this.reading = true;
    const stream = this.stream;
    stream.on('data', onStreamData);
    stream.on('end', onStreamEnd);
    stream.on('trailers', onStreamTrailers);
  }

  pauseBody(): void {
    this.stream.pause();
  }

  resumeBody(): void {
    if (!this.destroyed) this.stream.resume();
  }

  discardBody(): void {
    this.discarding = true;
    if (!this.reading && !this.bodyComplete) this.readBody();
    else this.stream.resume();
  }

  onData(chunk: Buffer): void {
    if (this.discarding || this.owner === undefined) return;
    this.handler.body(this.owner, chunk);
  }

  onEnd(): void {
    this.bodyComplete = true;
    if (this.discarding || this.owner === undefined) return;
    this.handler.bodyEnd(this.owner);
  }

  onTrailers(headers: IncomingHttpHeaders): void {
    this.requestTrailers = flattenHeaders(headers, true);
  }

  onDrain(): void {
    if (this.needDrain && this.owner !== undefined && !this.doneCalled) {
      this.needDrain = false;
      this.handler.drain(this.owner);
    }
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

/** A node header object as a flat [name, value, …] list (arrays spread into repeated fields). */
function downOf(stream: TaggedStream): Http2Downstream<unknown> {
  return stream[kDown]!;
}

function flushHead(down: Http2Downstream<unknown>): void {
  down.flushHead();
}

function onStreamData(this: TaggedStream, chunk: Buffer): void {
  downOf(this).onData(chunk);
}

function onStreamEnd(this: TaggedStream): void {
  downOf(this).onEnd();
}

function onStreamTrailers(this: TaggedStream, headers: IncomingHttpHeaders): void {
  downOf(this).onTrailers(headers);
}

function onStreamDrain(this: TaggedStream): void {
  downOf(this).onDrain();
}

function onWantTrailers(this: TaggedStream): void {
  downOf(this).sendTrailers();
}

function onStreamClose(this: TaggedStream): void {
  downOf(this).onClose();
}

function onStreamError(): void {
  // 'close' follows with the reset code; the exchange is finished there.
}
