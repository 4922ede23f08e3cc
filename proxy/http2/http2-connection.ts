// The proxy's own HTTP/2 connection (RFC 9113) over a net or TLS socket, in
// the server role (a listener's client) or the client role (an upstream
// endpoint). It replaces node:http2 on the hot path: there, every stream was
// two Duplex objects with their events and buffers, which cost four times
// what nginx spends per gRPC call. Here a stream is one object
// (http2-stream.ts), frames are parsed from the socket's chunks in place,
// and everything written during one event is flushed in one writev.
//
// Errors follow RFC 9113 §5.4: a malformed request or a frame that breaks a
// stream's rules resets that stream; anything that breaks the connection's
// state (HPACK, framing, flow-control window of the connection) ends it with
// GOAWAY. Flow control (§5.2, §6.9): this side grants STREAM_WINDOW per
// stream and CONNECTION_WINDOW per connection, returning window only for data
// its owner took; sends never exceed the peer's windows, the rest waits in
// the stream's queue.
import type { Socket } from 'node:net';
import { INVALID_VALUE } from '../http1/http1-syntax.ts';
import { HpackDecoder, HpackEncoder, HpackError } from './hpack.ts';
import {
  DEFAULT_MAX_FRAME_SIZE,
  DEFAULT_WINDOW,
  FRAME_HEADER_LENGTH,
  Flag,
  FrameType,
  H2_CANCEL,
  H2_COMPRESSION_ERROR,
  H2_ENHANCE_YOUR_CALM,
  H2_FLOW_CONTROL_ERROR,
  H2_FRAME_SIZE_ERROR,
  H2_INTERNAL_ERROR,
  H2_NO_ERROR,
  H2_PROTOCOL_ERROR,
  H2_REFUSED_STREAM,
  H2_STREAM_CLOSED,
  MAX_FRAME_SIZE_LIMIT,
  MAX_WINDOW,
  PREFACE,
  SETTINGS_ACK,
  Setting,
  frameHeader,
  goawayFrame,
  pingFrame,
  rstStreamFrame,
  settingsFrame,
  windowUpdateFrame,
} from './http2-frame.ts';
import { Http2Stream, STREAM_END } from './http2-stream.ts';
import { validName, validRequest, validResponse } from './http2-validation.ts';
import type { Http2StreamEvents } from './http2-stream.ts';

export interface Http2ConnectionHandler {
  /** Server role: a client opened `stream` with a valid request head (`stream.method`, `.path`, … are set). */
  stream(conn: Http2Connection, stream: Http2Stream, fields: string[], endStream: boolean): void;
  /** A SETTINGS frame from the peer was applied (after the first, it speaks HTTP/2 and its stream limit is known; later ones may change it). */
  settings(conn: Http2Connection): void;
  /** The peer's GOAWAY: no new streams; streams above `lastStreamId` were never processed. */
  goaway(conn: Http2Connection, code: number, lastStreamId: number): void;
  /** A stream closed (before its own `close` event goes to its owner): its slot is free. */
  streamClosed(conn: Http2Connection, stream: Http2Stream): void;
  /** The socket is gone; every stream was closed before. */
  close(conn: Http2Connection): void;
}

export interface Http2ConnectionOptions {
  /** SETTINGS_MAX_CONCURRENT_STREAMS announced to the peer (server role). */
  maxConcurrentStreams?: number;
}

// Windows this side grants: large enough that one stream of a fast peer is not held back by round trips,
// small enough that a paused reader bounds memory (a stream's queue never exceeds its window).
const STREAM_WINDOW = 1 << 20;
const CONNECTION_WINDOW = 16 << 20;
// Limits this side enforces on what it receives.
const MAX_HEADER_BLOCK = 256 * 1024;
const MAX_HEADER_LIST_SIZE = 64 * 1024;
// Rapid-reset guard, Envoy's defaults: once the peer opened this many streams, it may reset at most half of them early.
const PREMATURE_RESET_MIN_STREAMS = 500;
// Control-frame answers queued to a peer that does not read them, at most (Envoy's max_outbound_control_frames is 1000 per
// flush; this counts from the last time the socket emptied, so a legitimate slow reader's keepalive PINGs stay far below).
const MAX_QUEUED_ANSWERS = 10_000;
// Closed streams remembered to tell late frames (ignored after our reset) from protocol errors.
const RECENTLY_CLOSED = 128;
// Socket buffer above which writers are told to wait for `drain`.
const SOCKET_HIGH_WATER = 256 * 1024;

const kConn = Symbol('jibe.http2.connection');
type TaggedSocket = Socket & { [kConn]?: Http2Connection };

export class Http2Connection {
  readonly socket: TaggedSocket;
  readonly server: boolean;
  readonly handler: Http2ConnectionHandler;
  owner: unknown = undefined;
  readonly streams = new Map<number, Http2Stream>();

  /** The peer's SETTINGS_MAX_CONCURRENT_STREAMS (unlimited until it says). */
  peerMaxStreams = Number.MAX_SAFE_INTEGER;
  gotSettings = false;
  /** GOAWAY sent or received: no new streams. */
  goingAway = false;
  goawayReceived = false;
  closed = false;
  /** Highest stream id the peer opened. */
  lastPeerStreamId = 0;
  /** Streams the peer opened, and those of them it reset before their response was complete. */
  private peerStreams = 0;
  private prematureResets = 0;
  /** Answers to the peer's control frames queued since the socket last emptied (pushAnswer). */
  private queuedAnswers = 0;

  private readonly decoder = new HpackDecoder();
  private readonly encoder = new HpackEncoder();
  private readonly maxConcurrentStreams: number;
  private nextStreamId: number;
  private peerMaxFrameSize = DEFAULT_MAX_FRAME_SIZE;
  private peerInitialWindow = DEFAULT_WINDOW;
  private sendWindow = DEFAULT_WINDOW;
  private recvWindow = CONNECTION_WINDOW;
  private unacked = 0;
  private prefaceLeft: number;
  private pending: Buffer | undefined = undefined;
  // A header block spread over HEADERS + CONTINUATION frames.
  private blockStream = 0;
  private blockParts: Buffer[] = [];
  private blockSize = 0;
  private blockEndStream = false;
  private blockSelfDependent = false;
  /** Streams whose queued data waits for window, in the order they blocked. */
  private readonly blocked = new Set<Http2Stream>();
  /** Streams waiting for the socket to take more. */
  private readonly drainWaiters = new Set<Http2Stream>();
  /** Recently closed stream id → whether this side reset it (late frames on it are then ignored). */
  private readonly recentlyClosed = new Map<number, boolean>();
  private corked = false;
  private readonly uncork = (): void => {
    this.corked = false;
    this.socket.uncork();
  };

  constructor(socket: Socket, server: boolean, handler: Http2ConnectionHandler, options: Http2ConnectionOptions = {}) {
    this.socket = socket as TaggedSocket;
    this.server = server;
    this.handler = handler;
    this.maxConcurrentStreams = options.maxConcurrentStreams ?? 1000;
    this.nextStreamId = server ? 2 : 1;
    this.prefaceLeft = server ? PREFACE.length : 0;
    this.socket[kConn] = this;
    socket.on('data', onSocketData);
    socket.on('end', onSocketEnd);
    socket.on('error', onSocketError);
    socket.on('close', onSocketClose);
    socket.on('drain', onSocketDrain);
    if (!server) this.push(PREFACE);
    this.push(
      settingsFrame(
        server
          ? [Setting.MAX_CONCURRENT_STREAMS, this.maxConcurrentStreams, Setting.INITIAL_WINDOW_SIZE, STREAM_WINDOW]
          : [Setting.ENABLE_PUSH, 0, Setting.INITIAL_WINDOW_SIZE, STREAM_WINDOW],
      ),
    );
    this.push(windowUpdateFrame(0, CONNECTION_WINDOW - DEFAULT_WINDOW));
  }

  /** Streams open now. */
  get activeStreams(): number {
    return this.streams.size;
  }

  /** Client role: opens a stream with a request head; undefined when the connection takes no new streams. */
  request(fields: readonly string[], endStream: boolean, events: Http2StreamEvents, owner: unknown): Http2Stream | undefined {
    if (this.goingAway || this.closed || this.nextStreamId > 0x7fffffff) return undefined;
    const id = this.nextStreamId;
    this.nextStreamId += 2;
    const stream = new Http2Stream(this, id, events, this.peerInitialWindow, STREAM_WINDOW);
    stream.owner = owner;
    this.streams.set(id, stream);
    this.sendHeaders(stream, fields, endStream);
    return stream;
  }

  /** Feeds bytes read from the socket before the connection took it (a sniffed preface). */
  receive(chunk: Buffer): void {
    if (this.closed) return;
    const buf = this.pending === undefined ? chunk : Buffer.concat([this.pending, chunk]);
    this.pending = undefined;
    let off = 0;
    if (this.prefaceLeft > 0) {
      const start = PREFACE.length - this.prefaceLeft;
      const n = Math.min(this.prefaceLeft, buf.length);
      for (let i = 0; i < n; i++) {
        if (buf[i] !== PREFACE[start + i]) {
          this.connectionError(H2_PROTOCOL_ERROR, 'invalid connection preface');
          return;
        }
      }
      this.prefaceLeft -= n;
      off = n;
    }
    const maxFrame = DEFAULT_MAX_FRAME_SIZE;
    while (buf.length - off >= FRAME_HEADER_LENGTH) {
      const length = (buf[off] << 16) | (buf[off + 1] << 8) | buf[off + 2];
      if (length > maxFrame) {
        this.connectionError(H2_FRAME_SIZE_ERROR, 'frame larger than SETTINGS_MAX_FRAME_SIZE');
        return;
      }
      const end = off + FRAME_HEADER_LENGTH + length;
      if (end > buf.length) break;
      const type = buf[off + 3];
      const flags = buf[off + 4];
      const id = ((buf[off + 5] & 0x7f) << 24) | (buf[off + 6] << 16) | (buf[off + 7] << 8) | buf[off + 8];
      const payload = buf.subarray(off + FRAME_HEADER_LENGTH, end);
      off = end;
      this.frame(type, flags, id, payload);
      if (this.closed) return;
    }
    if (off < buf.length) this.pending = off === 0 ? buf : buf.subarray(off);
  }

  private frame(type: number, flags: number, id: number, p: Buffer): void {
    if (this.blockStream !== 0 && type !== FrameType.CONTINUATION) return this.connectionError(H2_PROTOCOL_ERROR, 'header block interrupted');
    if (!this.gotSettings && type !== FrameType.SETTINGS) return this.connectionError(H2_PROTOCOL_ERROR, 'first frame is not SETTINGS');
    switch (type) {
      case FrameType.DATA:
        return this.onData(flags, id, p);
      case FrameType.HEADERS:
        return this.onHeaders(flags, id, p);
      case FrameType.PRIORITY:
        return this.onPriority(id, p);
      case FrameType.RST_STREAM:
        return this.onRstStream(id, p);
      case FrameType.SETTINGS:
        return this.onSettings(flags, id, p);
      case FrameType.PUSH_PROMISE:
        return this.connectionError(H2_PROTOCOL_ERROR, 'PUSH_PROMISE is not accepted');
      case FrameType.PING:
        return this.onPing(flags, id, p);
      case FrameType.GOAWAY:
        return this.onGoaway(id, p);
      case FrameType.WINDOW_UPDATE:
        return this.onWindowUpdate(id, p);
      case FrameType.CONTINUATION:
        return this.onContinuation(flags, id, p);
      default:
      // Unknown frame types are ignored (RFC 9113 §5.5).
    }
  }

  /** Whether `id` names a stream that was never opened (and is not a closed one). */
  private isIdle(id: number): boolean {
    const peerOwned = (id & 1) === (this.server ? 1 : 0);
    return peerOwned ? id > this.lastPeerStreamId : id >= this.nextStreamId;
  }

  private onData(flags: number, id: number, p: Buffer): void {
    if (id === 0) return this.connectionError(H2_PROTOCOL_ERROR, 'DATA on stream 0');
    let data = p;
    if ((flags & Flag.PADDED) !== 0) {
      if (p.length < 1 || p[0] >= p.length) return this.connectionError(H2_PROTOCOL_ERROR, 'padding longer than the frame');
      data = p.subarray(1, p.length - p[0]);
    }
    const length = p.length;
    this.recvWindow -= length;
    if (this.recvWindow < 0) return this.connectionError(H2_FLOW_CONTROL_ERROR, 'connection window exceeded');
    const stream = this.streams.get(id);
    if (stream === undefined) {
      // Nobody takes it: its window comes back at once.
      this.consumed(undefined, length);
      if (this.isIdle(id)) return this.connectionError(H2_PROTOCOL_ERROR, 'DATA on an idle stream');
      if (this.recentlyClosed.get(id) === true) return;
      return this.sendReset(id, H2_STREAM_CLOSED);
    }
    if (stream.remoteEnded || !stream.headReceived) {
      this.consumed(undefined, length);
      return this.streamError(stream, stream.remoteEnded ? H2_STREAM_CLOSED : H2_PROTOCOL_ERROR);
    }
    stream.recvWindow -= length;
    if (stream.recvWindow < 0) {
      this.consumed(undefined, length);
      return this.streamError(stream, H2_FLOW_CONTROL_ERROR);
    }
    // Padding is nobody's data: returned at once.
    if (length !== data.length) this.consumed(stream, length - data.length);
    const endStream = (flags & Flag.END_STREAM) !== 0;
    stream.receivedLength += data.length;
    if (stream.expectedLength >= 0 && (stream.receivedLength > stream.expectedLength || (endStream && stream.receivedLength !== stream.expectedLength))) {
      this.consumed(undefined, data.length);
      return this.streamError(stream, H2_PROTOCOL_ERROR);
    }
    if (endStream) stream.remoteEnded = true;
    if (data.length > 0 && !stream.hold(data)) this.deliverData(stream, data);
    if (endStream && !stream.closed && !stream.hold(STREAM_END)) this.deliverEnd(stream);
  }

  /** Hands a DATA payload to the stream's owner; its window is returned as it is taken. */
  deliverData(stream: Http2Stream, data: Buffer): void {
    this.consumed(stream, data.length);
    stream.events.data(stream, data);
  }

  deliverEnd(stream: Http2Stream): void {
    const trailers = stream.inboundTrailers;
    if (trailers !== undefined) {
      stream.inboundTrailers = undefined;
      stream.events.trailers(stream, trailers);
      if (stream.closed) return;
    }
    stream.events.end(stream);
    if (stream.localEnded && !stream.closed) this.closeStream(stream, -1, false);
  }

  /** Returns window for `n` bytes taken (or dropped), in WINDOW_UPDATEs of at least half a window. */
  private consumed(stream: Http2Stream | undefined, n: number): void {
    if (n === 0 || this.closed) return;
    this.unacked += n;
    if (this.unacked >= CONNECTION_WINDOW / 2) {
      this.push(windowUpdateFrame(0, this.unacked));
      this.recvWindow += this.unacked;
      this.unacked = 0;
    }
    if (stream === undefined || stream.remoteEnded || stream.closed) return;
    stream.unacked += n;
    if (stream.unacked >= STREAM_WINDOW / 2) {
      this.push(windowUpdateFrame(stream.id, stream.unacked));
      stream.recvWindow += stream.unacked;
      stream.unacked = 0;
    }
  }

  private onHeaders(flags: number, id: number, p: Buffer): void {
    if (id === 0) return this.connectionError(H2_PROTOCOL_ERROR, 'HEADERS on stream 0');
    let off = 0;
    let pad = 0;
    if ((flags & Flag.PADDED) !== 0) {
      if (p.length < 1) return this.connectionError(H2_FRAME_SIZE_ERROR, 'HEADERS too short');
      pad = p[0];
      off = 1;
    }
    let selfDependent = false;
    if ((flags & Flag.PRIORITY) !== 0) {
      if (p.length < off + 5) return this.connectionError(H2_FRAME_SIZE_ERROR, 'HEADERS too short');
      selfDependent = (p.readUInt32BE(off) & 0x7fffffff) === id;
      off += 5;
    }
    if (pad > p.length - off) return this.connectionError(H2_PROTOCOL_ERROR, 'padding longer than the frame');
    const fragment = p.subarray(off, p.length - pad);
    const endStream = (flags & Flag.END_STREAM) !== 0;
    if ((flags & Flag.END_HEADERS) !== 0) return this.headerBlock(id, fragment, endStream, selfDependent);
    this.blockStream = id;
    this.blockParts = [fragment];
    this.blockSize = fragment.length;
    this.blockEndStream = endStream;
    this.blockSelfDependent = selfDependent;
  }

  private onContinuation(flags: number, id: number, p: Buffer): void {
    if (this.blockStream === 0 || id !== this.blockStream) return this.connectionError(H2_PROTOCOL_ERROR, 'CONTINUATION without a header block');
    this.blockParts.push(p);
    this.blockSize += p.length;
    if (this.blockSize > MAX_HEADER_BLOCK) return this.connectionError(H2_PROTOCOL_ERROR, 'header block too large');
    if ((flags & Flag.END_HEADERS) === 0) return;
    const block = Buffer.concat(this.blockParts, this.blockSize);
    this.blockStream = 0;
    this.blockParts = [];
    this.headerBlock(id, block, this.blockEndStream, this.blockSelfDependent);
  }

  private headerBlock(id: number, block: Buffer, endStream: boolean, selfDependent: boolean): void {
    const fields: string[] = [];
    let listSize: number;
    try {
      // Decoded whatever happens next: the HPACK table must follow every block.
      listSize = this.decoder.decode(block, fields, MAX_HEADER_LIST_SIZE);
    } catch (err) {
      if (err instanceof HpackError) return this.connectionError(H2_COMPRESSION_ERROR, err.message);
      throw err;
    }
    const stream = this.streams.get(id);
    if (stream !== undefined) {
      if (selfDependent) return this.streamError(stream, H2_PROTOCOL_ERROR);
      if (stream.remoteEnded) return this.streamError(stream, H2_STREAM_CLOSED);
      if (!this.server && !stream.headReceived) return this.responseHead(stream, fields, endStream, listSize);
      return this.trailerBlock(stream, fields, endStream);
    }
    if (!this.isIdle(id)) {
      // A closed stream: late frames after our reset are ignored; anything else is the peer's error.
      const resetByUs = this.recentlyClosed.get(id);
      if (resetByUs === true) return;
      return this.connectionError(resetByUs === false ? H2_STREAM_CLOSED : H2_PROTOCOL_ERROR, 'HEADERS on a closed stream');
    }
    if (!this.server || (id & 1) === 0) return this.connectionError(H2_PROTOCOL_ERROR, 'HEADERS opening a stream the peer may not open');
    this.lastPeerStreamId = id;
    this.peerStreams++;
    if (selfDependent) return this.sendReset(id, H2_PROTOCOL_ERROR);
    if (this.goingAway) return this.sendReset(id, H2_REFUSED_STREAM);
    if (this.streams.size >= this.maxConcurrentStreams) return this.sendReset(id, H2_REFUSED_STREAM);
    const opened = new Http2Stream(this, id, NO_EVENTS, this.peerInitialWindow, STREAM_WINDOW);
    this.streams.set(id, opened);
    opened.headReceived = true;
    if (listSize > MAX_HEADER_LIST_SIZE) {
      opened.remoteEnded = endStream;
      // Too large to serve: 431, as HTTP/1.1 answers (the request's body, if any, is dropped with the reset).
      this.sendHeaders(opened, [':status', '431', 'content-length', '0'], true);
      if (!opened.closed) this.resetStream(opened, H2_NO_ERROR);
      return;
    }
    if (!validRequest(opened, fields)) return this.streamError(opened, H2_PROTOCOL_ERROR);
    if (endStream) {
      opened.remoteEnded = true;
      if (opened.expectedLength > 0) return this.streamError(opened, H2_PROTOCOL_ERROR);
    }
    this.handler.stream(this, opened, fields, endStream);
  }

  private responseHead(stream: Http2Stream, fields: string[], endStream: boolean, listSize: number): void {
    if (listSize > MAX_HEADER_LIST_SIZE || !validResponse(stream, fields)) return this.streamError(stream, H2_PROTOCOL_ERROR);
    const status = stream.status;
    if (status < 200) {
      // Interim (100 Continue, 103 Early Hints): the final head follows; one that ends the stream is malformed.
      if (endStream) this.streamError(stream, H2_PROTOCOL_ERROR);
      return;
    }
    stream.headReceived = true;
    if (endStream) {
      stream.remoteEnded = true;
      if (stream.expectedLength > 0 && status !== 304) stream.expectedLength = -1;
    }
    stream.events.headers(stream, fields, endStream);
    if (endStream && !stream.closed && !stream.hold(STREAM_END)) this.deliverEnd(stream);
  }

  private trailerBlock(stream: Http2Stream, fields: string[], endStream: boolean): void {
    if (!endStream) return this.streamError(stream, H2_PROTOCOL_ERROR);
    for (let i = 0; i < fields.length; i += 2) {
      if (fields[i].charCodeAt(0) === 58 /* : */ || !validName(fields[i]) || INVALID_VALUE.test(fields[i + 1])) return this.streamError(stream, H2_PROTOCOL_ERROR);
    }
    if (stream.expectedLength >= 0 && stream.receivedLength !== stream.expectedLength) return this.streamError(stream, H2_PROTOCOL_ERROR);
    stream.remoteEnded = true;
    stream.inboundTrailers = fields;
    if (!stream.hold(STREAM_END)) this.deliverEnd(stream);
  }

  private onPriority(id: number, p: Buffer): void {
    if (id === 0) return this.connectionError(H2_PROTOCOL_ERROR, 'PRIORITY on stream 0');
    if (p.length !== 5) return this.sendReset(id, H2_FRAME_SIZE_ERROR, this.streams.get(id));
    // Priorities are not acted on (RFC 9113 §5.3.2); only a stream depending on itself is an error.
    if ((p.readUInt32BE(0) & 0x7fffffff) === id) this.sendReset(id, H2_PROTOCOL_ERROR, this.streams.get(id));
  }

  private onRstStream(id: number, p: Buffer): void {
    if (p.length !== 4) return this.connectionError(H2_FRAME_SIZE_ERROR, 'RST_STREAM of the wrong size');
    if (id === 0 || this.isIdle(id)) return this.connectionError(H2_PROTOCOL_ERROR, 'RST_STREAM on an idle stream');
    const stream = this.streams.get(id);
    if (stream === undefined) return;
    // Rapid reset (CVE-2023-44487): a client that cancels most of its streams before their answer makes the
    // proxy start upstream work it throws away; past a point the connection is refused, as Envoy does.
    const premature = this.server && !stream.localEnded;
    this.closeStream(stream, p.readUInt32BE(0), true);
    if (premature && ++this.prematureResets * 2 >= this.peerStreams && this.peerStreams >= PREMATURE_RESET_MIN_STREAMS) {
      this.connectionError(H2_ENHANCE_YOUR_CALM, 'too many streams reset before their response');
    }
  }

  private onSettings(flags: number, id: number, p: Buffer): void {
    if (id !== 0) return this.connectionError(H2_PROTOCOL_ERROR, 'SETTINGS on a stream');
    if ((flags & Flag.ACK) !== 0) {
      if (p.length !== 0) this.connectionError(H2_FRAME_SIZE_ERROR, 'SETTINGS ACK with a payload');
      return;
    }
    if (p.length % 6 !== 0) return this.connectionError(H2_FRAME_SIZE_ERROR, 'SETTINGS of the wrong size');
    for (let off = 0; off < p.length; off += 6) {
      const key = p.readUInt16BE(off);
      const value = p.readUInt32BE(off + 2);
      switch (key) {
        case Setting.HEADER_TABLE_SIZE:
          this.encoder.setMaxTableSize(value);
          break;
        case Setting.ENABLE_PUSH:
          if (value > 1) return this.connectionError(H2_PROTOCOL_ERROR, 'SETTINGS_ENABLE_PUSH above 1');
          break;
        case Setting.MAX_CONCURRENT_STREAMS:
          this.peerMaxStreams = value;
          break;
        case Setting.INITIAL_WINDOW_SIZE: {
          if (value > MAX_WINDOW) return this.connectionError(H2_FLOW_CONTROL_ERROR, 'SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1');
          const delta = value - this.peerInitialWindow;
          this.peerInitialWindow = value;
          for (const stream of this.streams.values()) {
            stream.sendWindow += delta;
            if (stream.sendWindow > MAX_WINDOW) return this.connectionError(H2_FLOW_CONTROL_ERROR, 'stream window above 2^31-1');
          }
          break;
        }
        case Setting.MAX_FRAME_SIZE:
          if (value < DEFAULT_MAX_FRAME_SIZE || value > MAX_FRAME_SIZE_LIMIT) return this.connectionError(H2_PROTOCOL_ERROR, 'SETTINGS_MAX_FRAME_SIZE out of range');
          this.peerMaxFrameSize = value;
          break;
        default:
        // MAX_HEADER_LIST_SIZE is advisory; unknown settings are ignored (RFC 9113 §6.5.2).
      }
    }
    if (!this.pushAnswer(SETTINGS_ACK)) return;
    this.gotSettings = true;
    this.flushBlocked();
    this.handler.settings(this);
  }

  private onPing(flags: number, id: number, p: Buffer): void {
    if (p.length !== 8) return this.connectionError(H2_FRAME_SIZE_ERROR, 'PING of the wrong size');
    if (id !== 0) return this.connectionError(H2_PROTOCOL_ERROR, 'PING on a stream');
    if ((flags & Flag.ACK) === 0) this.pushAnswer(pingFrame(p, true));
  }

  private onGoaway(id: number, p: Buffer): void {
    if (id !== 0) return this.connectionError(H2_PROTOCOL_ERROR, 'GOAWAY on a stream');
    if (p.length < 8) return this.connectionError(H2_FRAME_SIZE_ERROR, 'GOAWAY too short');
    const lastStreamId = p.readUInt32BE(0) & 0x7fffffff;
    const code = p.readUInt32BE(4);
    this.goingAway = true;
    this.goawayReceived = true;
    // Streams this side opened above the peer's last one never reached it: closed as refused, safe to send again.
    for (const stream of [...this.streams.values()]) {
      if (stream.id > lastStreamId && (stream.id & 1) === (this.server ? 0 : 1)) {
        stream.unprocessed = true;
        this.closeStream(stream, H2_REFUSED_STREAM, true);
      }
    }
    this.handler.goaway(this, code, lastStreamId);
    if (this.streams.size === 0) this.finish();
  }

  private onWindowUpdate(id: number, p: Buffer): void {
    if (p.length !== 4) return this.connectionError(H2_FRAME_SIZE_ERROR, 'WINDOW_UPDATE of the wrong size');
    const increment = p.readUInt32BE(0) & 0x7fffffff;
    if (id === 0) {
      if (increment === 0) return this.connectionError(H2_PROTOCOL_ERROR, 'WINDOW_UPDATE of 0');
      this.sendWindow += increment;
      if (this.sendWindow > MAX_WINDOW) return this.connectionError(H2_FLOW_CONTROL_ERROR, 'connection window above 2^31-1');
      this.flushBlocked();
      return;
    }
    if (this.isIdle(id)) return this.connectionError(H2_PROTOCOL_ERROR, 'WINDOW_UPDATE on an idle stream');
    const stream = this.streams.get(id);
    if (stream === undefined) return;
    if (increment === 0) return this.streamError(stream, H2_PROTOCOL_ERROR);
    stream.sendWindow += increment;
    if (stream.sendWindow > MAX_WINDOW) return this.streamError(stream, H2_FLOW_CONTROL_ERROR);
    if (stream.outbound !== undefined) this.flushBlocked();
  }

  // ---- sending ----

  sendHeaders(stream: Http2Stream, fields: readonly string[], endStream: boolean): void {
    if (stream.closed || stream.localEnded || this.closed) return;
    const block = this.encoder.encode(fields);
    const flags = endStream ? Flag.END_STREAM : 0;
    const max = this.peerMaxFrameSize;
    if (block.length <= max) {
      this.push(frameHeader(block.length, FrameType.HEADERS, flags | Flag.END_HEADERS, stream.id));
      this.push(block);
    } else {
      for (let off = 0; off < block.length; off += max) {
        const n = Math.min(max, block.length - off);
        const last = off + n >= block.length;
        this.push(frameHeader(n, off === 0 ? FrameType.HEADERS : FrameType.CONTINUATION, (off === 0 ? flags : 0) | (last ? Flag.END_HEADERS : 0), stream.id));
        this.push(block.subarray(off, off + n));
      }
    }
    if (endStream) this.localEnd(stream);
  }

  /** Sends body bytes (and the end of this side when `end`); false when some wait for window or the socket. */
  writeData(stream: Http2Stream, chunk: Buffer, end: boolean): boolean {
    if (stream.closed || stream.localEnded || this.closed) return true;
    if (stream.endAfterOutbound !== undefined) return false;
    if (stream.outbound !== undefined) {
      if (chunk.length > 0) stream.outbound.push(chunk);
      if (end) stream.endAfterOutbound = EMPTY_LIST;
      stream.needDrain = true;
      return false;
    }
    const sent = this.sendDataNow(stream, chunk, 0, end);
    if (sent < chunk.length) {
      stream.outbound = [sent === 0 ? chunk : chunk.subarray(sent)];
      if (end) stream.endAfterOutbound = EMPTY_LIST;
      stream.needDrain = true;
      this.blocked.add(stream);
      return false;
    }
    if (end) {
      this.localEnd(stream);
      return true;
    }
    if (this.socket.writableLength > SOCKET_HIGH_WATER) {
      stream.needDrain = true;
      this.drainWaiters.add(stream);
      return false;
    }
    return true;
  }

  /** Frames as much of `chunk` from `off` as the windows allow; returns where it stopped. An empty chunk with `end` is an empty END_STREAM frame. */
  private sendDataNow(stream: Http2Stream, chunk: Buffer, off: number, end: boolean): number {
    const length = chunk.length;
    if (length === 0) {
      if (end) this.push(frameHeader(0, FrameType.DATA, Flag.END_STREAM, stream.id));
      return 0;
    }
    while (off < length) {
      const room = Math.min(stream.sendWindow, this.sendWindow, this.peerMaxFrameSize);
      if (room <= 0) return off;
      const n = Math.min(room, length - off);
      const last = off + n === length;
      this.push(frameHeader(n, FrameType.DATA, last && end ? Flag.END_STREAM : 0, stream.id));
      this.push(off === 0 && last ? chunk : chunk.subarray(off, off + n));
      stream.sendWindow -= n;
      this.sendWindow -= n;
      off += n;
    }
    return off;
  }

  endWithTrailers(stream: Http2Stream, fields: string[]): void {
    if (stream.closed || stream.localEnded || this.closed || stream.endAfterOutbound !== undefined) return;
    if (stream.outbound !== undefined) {
      stream.endAfterOutbound = fields;
      return;
    }
    if (fields.length === 0) this.sendDataNow(stream, EMPTY, 0, true);
    else this.sendHeaders(stream, fields, true);
    if (!stream.localEnded) this.localEnd(stream);
  }

  /** Sends queued data of blocked streams as window allows, in the order they blocked. */
  private flushBlocked(): void {
    if (this.blocked.size === 0) return;
    for (const stream of this.blocked) {
      if (this.sendWindow <= 0) return;
      if (stream.sendWindow <= 0) continue;
      const queue = stream.outbound!;
      while (queue.length > 0) {
        const chunk = queue[0];
        const lastChunk = queue.length === 1;
        const ending = lastChunk && stream.endAfterOutbound !== undefined && stream.endAfterOutbound.length === 0;
        const sent = this.sendDataNow(stream, chunk, 0, ending);
        if (sent < chunk.length) {
          queue[0] = chunk.subarray(sent);
          break;
        }
        queue.shift();
      }
      if (queue.length > 0) continue;
      this.blocked.delete(stream);
      stream.outbound = undefined;
      const ending = stream.endAfterOutbound;
      if (ending !== undefined) {
        stream.endAfterOutbound = undefined;
        if (ending.length > 0) this.sendHeaders(stream, ending, true);
        else this.localEnd(stream);
      } else if (stream.needDrain) {
        stream.needDrain = false;
        stream.events.drain(stream);
      }
    }
  }

  private localEnd(stream: Http2Stream): void {
    stream.localEnded = true;
    if (stream.closed) return;
    // Server role: a request that came whole but is still held unread is dropped, not reset: both sides
    // sent END_STREAM, so the stream is closed and no RST_STREAM may follow on it (RFC 9113 §5.1).
    if (stream.remoteEnded && (stream.inbound === undefined || this.server)) this.closeStream(stream, -1, false);
    // A complete response to a request still coming: the rest of it is not wanted (RFC 9113 §8.1).
    else if (this.server) this.resetStream(stream, H2_NO_ERROR);
  }

  /** Resets `stream` from this side. */
  resetStream(stream: Http2Stream, code: number): void {
    if (stream.closed) return;
    if (!this.closed) this.push(rstStreamFrame(stream.id, code));
    this.closeStream(stream, code, false);
  }

  /** The peer broke a stream's rules: the reset answers its frame, so it counts against the flood guard. */
  private streamError(stream: Http2Stream, code: number): void {
    if (stream.closed) return;
    if (!this.closed && !this.pushAnswer(rstStreamFrame(stream.id, code))) return;
    this.closeStream(stream, code, false);
  }

  /** RST_STREAM answering the peer's frame on a stream that has no object (refused, idle, closed), or on `stream` when it has one. */
  private sendReset(id: number, code: number, stream?: Http2Stream): void {
    if (stream !== undefined) return this.streamError(stream, code);
    if (!this.pushAnswer(rstStreamFrame(id, code))) return;
    this.remember(id, true);
  }

  private closeStream(stream: Http2Stream, code: number, byPeer: boolean): void {
    if (stream.closed) return;
    stream.closed = true;
    stream.resetCode = code;
    stream.resetByPeer = byPeer;
    const held = stream.inbound;
    stream.inbound = undefined;
    // Data a paused stream held counts against the connection's window: dropped, it must come back or the connection stalls.
    if (held !== undefined) {
      let n = 0;
      for (const item of held) if (item !== STREAM_END) n += item.length;
      this.consumed(undefined, n);
    }
    stream.outbound = undefined;
    this.streams.delete(stream.id);
    this.blocked.delete(stream);
    this.drainWaiters.delete(stream);
    this.remember(stream.id, code >= 0 && !byPeer);
    this.handler.streamClosed(this, stream);
    stream.events.close(stream);
    if (this.goingAway && this.streams.size === 0) this.finish();
  }

  private remember(id: number, resetByUs: boolean): void {
    const closed = this.recentlyClosed;
    closed.set(id, resetByUs);
    if (closed.size > RECENTLY_CLOSED) closed.delete(closed.keys().next().value!);
  }

  /** Graceful close: GOAWAY with the last stream the peer opened; the socket ends once open streams are over. */
  close(code = H2_NO_ERROR): void {
    if (this.closed) return;
    if (!this.goingAway || this.goawayReceived) {
      this.goingAway = true;
      this.push(goawayFrame(this.lastPeerStreamId, code));
    }
    if (this.streams.size === 0) this.finish();
  }

  /** Ends the connection now: every open stream is closed (as cancelled), the socket destroyed. */
  destroy(code = H2_CANCEL): void {
    if (this.closed) return;
    this.closed = true;
    this.goingAway = true;
    this.closeAll(code);
    this.socket.destroy();
  }

  private connectionError(code: number, reason: string): void {
    if (this.closed) return;
    this.push(goawayFrame(this.lastPeerStreamId, code, reason));
    this.closed = true;
    this.goingAway = true;
    this.closeAll(code === H2_NO_ERROR ? H2_INTERNAL_ERROR : code);
    this.socket.end();
    // A peer that never closes its side must not hold the socket.
    setTimeout(destroySocket, 1000, this.socket).unref();
  }

  /** The peer ended its side of the socket: nothing more arrives, so ours ends too once queued frames are out. */
  peerEnded(): void {
    this.goingAway = true;
    this.finish();
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.end();
    setTimeout(destroySocket, 5000, this.socket).unref();
  }

  private closeAll(code: number): void {
    for (const stream of [...this.streams.values()]) this.closeStream(stream, code, false);
  }

  socketClosed(): void {
    this.closed = true;
    this.goingAway = true;
    // Cut streams: the connection's end is theirs (NO_ERROR when the peer just went away).
    for (const stream of [...this.streams.values()]) this.closeStream(stream, H2_NO_ERROR, true);
    this.handler.close(this);
  }

  socketDrained(): void {
    if (this.drainWaiters.size === 0) return;
    const waiting = [...this.drainWaiters];
    this.drainWaiters.clear();
    for (const stream of waiting) {
      if (stream.closed || !stream.needDrain || stream.outbound !== undefined) continue;
      stream.needDrain = false;
      stream.events.drain(stream);
    }
  }

  /**
   * Queues a frame the peer's own frame asked for (SETTINGS ACK, PING ACK, a
   * reset of a stream it may not use). A peer that sends such frames without
   * reading the answers would grow the socket's buffer without bound (the
   * PING, SETTINGS and reset floods of CVE-2019-9512/9515): past
   * MAX_QUEUED_ANSWERS queued while the socket never emptied, the connection
   * is dropped, as nghttp2 and Envoy do. False when it was.
   */
  private pushAnswer(buf: Buffer): boolean {
    if (this.socket.writableLength === 0) this.queuedAnswers = 0;
    if (++this.queuedAnswers > MAX_QUEUED_ANSWERS) {
      this.destroy(H2_ENHANCE_YOUR_CALM);
      return false;
    }
    this.push(buf);
    return true;
  }

  /** Queues bytes for the socket; everything queued in one event leaves in one writev. */
  private push(buf: Buffer): void {
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      queueMicrotask(this.uncork);
    }
    this.socket.write(buf);
  }
}

const EMPTY = Buffer.alloc(0);
const EMPTY_LIST: string[] = [];

function noop(): void {
  // A stream the owner has not taken yet (or one refused before it was handed over).
}
const NO_EVENTS: Http2StreamEvents = { headers: noop, data: noop, trailers: noop, end: noop, drain: noop, close: noop };

/** The connection a socket carries, if any. */
export function connectionOf(socket: Socket): Http2Connection | undefined {
  return (socket as TaggedSocket)[kConn];
}

function onSocketData(this: TaggedSocket, chunk: Buffer): void {
  this[kConn]!.receive(chunk);
}

function onSocketEnd(this: TaggedSocket): void {
  // The peer closed its side: nothing more will arrive; what we have queued still goes out.
  const conn = this[kConn]!;
  conn.peerEnded();
}

function onSocketError(): void {
  // 'close' follows and closes the streams.
}

function onSocketClose(this: TaggedSocket): void {
  this[kConn]!.socketClosed();
}

function onSocketDrain(this: TaggedSocket): void {
  this[kConn]!.socketDrained();
}

function destroySocket(socket: Socket): void {
  socket.destroy();
}
