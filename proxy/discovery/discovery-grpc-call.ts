// One bidirectional gRPC call over node:http2, for the proxy's discovery stream.
// The proxy speaks the gRPC wire protocol itself (PROTOCOL-HTTP2.md: a POST with
// `content-type: application/grpc` and `te: trailers`, 5-byte length-prefixed
// messages, the status in `grpc-status`/`grpc-message` trailers) instead of
// loading @grpc/grpc-js: one stream on one connection needs none of grpc-js's
// channels, resolvers, load balancers or compression, and a sidecar pays for
// every module it loads in memory. Each call owns its HTTP/2 session, so a
// reconnect always dials afresh.
import type { ClientHttp2Session, ClientHttp2Stream, IncomingHttpHeaders, SecureClientSessionOptions } from 'node:http2';
// The data plane's lazy loader: one copy of the module, loaded by whoever needs it first.
import { H2_CANCEL, H2_ENHANCE_YOUR_CALM, H2_NO_ERROR, H2_REFUSED_STREAM } from '../http2/http2-frame.ts';
import { nodeHttp2 } from '../http2/node-http2.ts';

/** gRPC status codes (grpc/doc/statuscodes.md), indexed by code. */
export const GRPC_STATUS_NAMES: readonly string[] = [
  'OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS',
  'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE',
  'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED',
];
export const GRPC_STATUS = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
} as const;

export interface GrpcStatus {
  code: number;
  details: string;
}

export interface GrpcCallOptions {
  /** host:port of the server. */
  address: string;
  /** Full method path, e.g. `/jibe.discovery.v1.AggregatedDiscovery/StreamResources`. */
  path: string;
  /** TLS settings; absent = plaintext (h2c), as on the local-only discovery port. */
  tls?: SecureClientSessionOptions;
  /** Largest message accepted from the server; a larger one ends the call with RESOURCE_EXHAUSTED. */
  maxReceiveBytes: number;
  /** Ping the server this often once connected (grpc keepalive_time); 0 = never. */
  keepaliveMs: number;
  /** A ping unanswered this long ends the call with UNAVAILABLE (grpc keepalive_timeout). */
  keepaliveTimeoutMs: number;
  /** Give up dialling after this long (UNAVAILABLE). */
  connectTimeoutMs: number;
  userAgent: string;
  /** Each message the server sent, without its 5-byte prefix. */
  onMessage(message: Buffer): void;
  /** Called once, when the call is over for any reason but cancel(). */
  onStatus(status: GrpcStatus): void;
}

const HEADER_BYTES = 5;
const EMPTY = Buffer.alloc(0);

// Non-gRPC HTTP answers (a proxy or a wrong port in between), mapped as grpc/doc/http-grpc-status-mapping.md says.
function statusForHttp(httpStatus: number): number {
  switch (httpStatus) {
    case 400: return GRPC_STATUS.INTERNAL;
    case 401: return 16;
    case 403: return 7;
    case 404: return GRPC_STATUS.UNIMPLEMENTED;
    case 429: case 502: case 503: case 504: return GRPC_STATUS.UNAVAILABLE;
    default: return GRPC_STATUS.UNKNOWN;
  }
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** grpc-message is percent-encoded (PROTOCOL-HTTP2.md). */
function decodeGrpcMessage(value: string | undefined): string {
  if (!value) return '';
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

export class GrpcBidiCall {
  readonly #options: GrpcCallOptions;
  readonly #session: ClientHttp2Session;
  readonly #stream: ClientHttp2Stream;
  #ended = false;
  #sessionClosed = false;
  #connectTimer: ReturnType<typeof setTimeout> | undefined;
  #keepaliveTimer: ReturnType<typeof setInterval> | undefined;
  #pingTimer: ReturnType<typeof setTimeout> | undefined;
  // Incoming bytes not yet formed into a whole message.
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #needed = HEADER_BYTES;
  #inMessage = false;

  constructor(options: GrpcCallOptions) {
    this.#options = options;
    const authority = `${options.tls ? 'https' : 'http'}://${options.address}`;
    const http2 = nodeHttp2();
    this.#session = options.tls ? http2.connect(authority, options.tls) : http2.connect(authority);
    this.#session.on('error', (error: Error) => this.#end({ code: GRPC_STATUS.UNAVAILABLE, details: error.message }));
    this.#session.on('close', () => (this.#sessionClosed = true));
    this.#session.on('goaway', () => {
      // The stream in flight may still finish; its end (trailers or reset) reports the outcome.
    });
    this.#connectTimer = setTimeout(() => {
      this.#end({ code: GRPC_STATUS.UNAVAILABLE, details: `no connection to ${options.address} within ${options.connectTimeoutMs} ms` });
    }, options.connectTimeoutMs);
    this.#session.once('connect', () => {
      clearTimeout(this.#connectTimer);
      this.#connectTimer = undefined;
      if (options.keepaliveMs > 0) this.#keepaliveTimer = setInterval(() => this.#ping(), options.keepaliveMs);
    });

    this.#stream = this.#session.request({
      ':method': 'POST',
      ':path': options.path,
      'content-type': 'application/grpc+proto',
      te: 'trailers',
      'user-agent': options.userAgent,
      'grpc-accept-encoding': 'identity',
    });
    this.#stream.on('response', (headers) => this.#onHeaders(headers));
    this.#stream.on('trailers', (trailers) => this.#onTrailers(trailers));
    this.#stream.on('data', (chunk: Buffer) => this.#onData(chunk));
    // A stream error is followed by 'close', which tells a reset from a lost connection.
    this.#stream.on('error', () => {});
    this.#stream.on('close', () => {
      const session = this.#session;
      // A lost connection closes the stream before the session reports why (its 'error' comes first of its own events).
      if ((session.destroyed || session.closed) && !this.#sessionClosed) {
        session.once('close', () => this.#end({ code: GRPC_STATUS.UNAVAILABLE, details: 'connection to the server closed' }));
      } else {
        this.#end(this.#closedWithoutStatus());
      }
    });
    // The response is consumed as it arrives; 'end' follows trailers or a closing DATA frame.
    this.#stream.on('end', () => {});
  }

  /** Sends one message (length-prefixed, uncompressed). */
  write(message: Buffer): void {
    if (this.#ended) return;
    const header = Buffer.allocUnsafe(HEADER_BYTES);
    header[0] = 0;
    header.writeUInt32BE(message.length, 1);
    this.#stream.write(Buffer.concat([header, message], HEADER_BYTES + message.length));
  }

  /** Ends the call from this side (RST_STREAM CANCEL) and closes the connection; onStatus is not called. */
  cancel(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#teardown(H2_CANCEL);
  }

  /** The outcome of a stream that ended without trailers, as grpc-js reports it. */
  #closedWithoutStatus(): GrpcStatus {
    if (this.#session.destroyed || this.#session.closed) return { code: GRPC_STATUS.UNAVAILABLE, details: 'connection to the server closed' };
    const code = this.#stream.rstCode;
    if (code === H2_REFUSED_STREAM) return { code: GRPC_STATUS.UNAVAILABLE, details: 'stream refused by the server' };
    if (code === H2_CANCEL) return { code: GRPC_STATUS.CANCELLED, details: 'stream cancelled by the server' };
    if (code === H2_ENHANCE_YOUR_CALM) return { code: GRPC_STATUS.RESOURCE_EXHAUSTED, details: 'server reset the stream: ENHANCE_YOUR_CALM' };
    return { code: GRPC_STATUS.INTERNAL, details: `stream closed without a gRPC status (HTTP/2 code ${code})` };
  }

  #onHeaders(headers: IncomingHttpHeaders): void {
    const httpStatus = Number(headers[':status']);
    const grpcStatus = headerValue(headers['grpc-status']);
    // Trailers-only answer: the status came with the headers (e.g. an immediate error).
    if (grpcStatus !== undefined) {
      this.#onTrailers(headers);
      return;
    }
    if (httpStatus !== 200) {
      this.#end({ code: statusForHttp(httpStatus), details: `server answered HTTP ${httpStatus}, not gRPC` });
      return;
    }
    const type = headerValue(headers['content-type']) ?? '';
    if (!type.startsWith('application/grpc')) this.#end({ code: GRPC_STATUS.UNKNOWN, details: `server answered content-type "${type}", not gRPC` });
  }

  #onTrailers(trailers: IncomingHttpHeaders): void {
    const raw = headerValue(trailers['grpc-status']);
    const code = raw === undefined ? NaN : Number(raw);
    if (!Number.isInteger(code) || code < 0) {
      this.#end({ code: GRPC_STATUS.UNKNOWN, details: `trailers without a valid grpc-status (${raw ?? 'missing'})` });
      return;
    }
    this.#end({ code, details: decodeGrpcMessage(headerValue(trailers['grpc-message'])) });
  }

  #onData(chunk: Buffer): void {
    if (this.#ended) return;
    this.#pending.push(chunk);
    this.#pendingBytes += chunk.length;
    while (!this.#ended && this.#pendingBytes >= this.#needed) {
      const bytes = this.#take(this.#needed);
      if (!this.#inMessage) {
        if (bytes[0] !== 0) {
          this.#end({ code: GRPC_STATUS.INTERNAL, details: 'server sent a compressed message, which this client did not accept' });
          return;
        }
        const length = bytes.readUInt32BE(1);
        if (length > this.#options.maxReceiveBytes) {
          this.#end({ code: GRPC_STATUS.RESOURCE_EXHAUSTED, details: `received message larger than max (${length} vs. ${this.#options.maxReceiveBytes})` });
          return;
        }
        if (length > 0) {
          this.#inMessage = true;
          this.#needed = length;
          continue;
        }
        this.#options.onMessage(EMPTY);
        continue;
      }
      this.#inMessage = false;
      this.#needed = HEADER_BYTES;
      this.#options.onMessage(bytes);
    }
  }

  /** Removes the first n pending bytes (n <= pendingBytes), copying only when they span chunks. */
  #take(n: number): Buffer {
    this.#pendingBytes -= n;
    const first = this.#pending[0];
    if (first.length === n) {
      this.#pending.shift();
      return first;
    }
    if (first.length > n) {
      this.#pending[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.#pending[0];
      const want = n - filled;
      if (chunk.length <= want) {
        chunk.copy(out, filled);
        filled += chunk.length;
        this.#pending.shift();
      } else {
        chunk.copy(out, filled, 0, want);
        this.#pending[0] = chunk.subarray(want);
        filled += want;
      }
    }
    return out;
  }

  #ping(): void {
    if (this.#ended || this.#pingTimer !== undefined) return;
    this.#pingTimer = setTimeout(() => {
      this.#end({ code: GRPC_STATUS.UNAVAILABLE, details: `keepalive ping not answered within ${this.#options.keepaliveTimeoutMs} ms` });
    }, this.#options.keepaliveTimeoutMs);
    const sent = this.#session.ping((error) => {
      clearTimeout(this.#pingTimer);
      this.#pingTimer = undefined;
      if (error) this.#end({ code: GRPC_STATUS.UNAVAILABLE, details: `keepalive ping failed: ${error.message}` });
    });
    if (!sent) {
      clearTimeout(this.#pingTimer);
      this.#pingTimer = undefined;
    }
  }

  #end(status: GrpcStatus): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#teardown(status.code === GRPC_STATUS.OK ? H2_NO_ERROR : H2_CANCEL);
    this.#options.onStatus(status);
  }

  #teardown(rstCode: number): void {
    clearTimeout(this.#connectTimer);
    clearInterval(this.#keepaliveTimer);
    clearTimeout(this.#pingTimer);
    this.#connectTimer = this.#keepaliveTimer = this.#pingTimer = undefined;
    this.#pending = [];
    this.#pendingBytes = 0;
    if (!this.#stream.closed) this.#stream.close(rstCode);
    // Errors after the end (a reset racing the close) have nowhere to go and must not throw.
    this.#stream.on('error', () => {});
    this.#session.on('error', () => {});
    this.#session.destroy();
  }
}
