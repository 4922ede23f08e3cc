// One HTTP/2 stream of the proxy's own connection (http2-connection.ts), in
// either role: a client's request on a listener, or a request the proxy sends
// upstream. Events go to one handler object per stream (`events`, with the
// stream's `owner`), never to EventEmitter listeners: a stream costs one
// object, as an HTTP/1.1 exchange does.
//
// Sending: write() frames what the peer's windows allow and queues the rest
// (returning false; `drain` follows once the queue is gone and the socket
// takes more). Receiving: pause() holds incoming DATA here and stops returning
// flow-control window for it, so a slow reader bounds what the sender may
// send to the window it was granted.
import type { Http2Connection } from './http2-connection.ts';

export interface Http2StreamEvents {
  /** Client role: the final response head (interim 1xx heads are skipped). */
  headers(stream: Http2Stream, fields: string[], endStream: boolean): void;
  data(stream: Http2Stream, chunk: Buffer): void;
  /** Trailer fields; `end` follows. */
  trailers(stream: Http2Stream, fields: string[]): void;
  /** The peer ended its side, after its data and trailers. */
  end(stream: Http2Stream): void;
  /** Room again after write() returned false. */
  drain(stream: Http2Stream): void;
  /** The stream is over: ended both ways (`resetCode` -1), reset by either side, or its connection is gone. */
  close(stream: Http2Stream): void;
}

/** Marks the end of the peer's side in a paused stream's inbound queue. */
const END = 1;

export class Http2Stream {
  readonly id: number;
  readonly conn: Http2Connection;
  events: Http2StreamEvents;
  owner: unknown = undefined;

  /** What the peer lets this side send on the stream (may go negative after a SETTINGS change). */
  sendWindow: number;
  /** What this side still lets the peer send before a WINDOW_UPDATE. */
  recvWindow: number;
  /** Bytes delivered to the owner and not yet returned to the peer as window. */
  unacked = 0;

  localEnded = false;
  remoteEnded = false;
  closed = false;
  /** RST_STREAM code sent or received, or the code of the connection's end; -1 while open and after a clean end. */
  resetCode = -1;
  resetByPeer = false;
  /** Client role: the peer's GOAWAY says it never processed this stream (safe to send again). */
  unprocessed = false;
  /** A request (server role) or final response (client role) head arrived. */
  headReceived = false;
  /** content-length of what the peer sends, -1 when none; checked against the DATA that arrives (RFC 9113 §8.1.1). */
  expectedLength = -1;
  receivedLength = 0;

  // Request pseudo-header fields (server role) and response status (client role), read by the connection's validation.
  method = '';
  scheme = '';
  authority: string | undefined = undefined;
  path = '';
  status = 0;

  paused = false;
  /** Inbound data (and END) held while paused. */
  inbound: (Buffer | typeof END)[] | undefined = undefined;
  inboundTrailers: string[] | undefined = undefined;

  /** Outbound data the windows did not let out yet. */
  outbound: Buffer[] | undefined = undefined;
  /** End the stream once `outbound` is sent: with these trailers, or an empty DATA frame when they are an empty list. */
  endAfterOutbound: string[] | undefined = undefined;
  needDrain = false;

  constructor(conn: Http2Connection, id: number, events: Http2StreamEvents, sendWindow: number, recvWindow: number) {
    this.conn = conn;
    this.id = id;
    this.events = events;
    this.sendWindow = sendWindow;
    this.recvWindow = recvWindow;
  }

  /** Sends a head (request, response, or trailers when `endStream` and a head was sent before). */
  sendHeaders(fields: readonly string[], endStream: boolean): void {
    this.conn.sendHeaders(this, fields, endStream);
  }

  /** Sends a slice of the body; false when it was queued (a `drain` follows). */
  write(chunk: Buffer): boolean {
    return this.conn.writeData(this, chunk, false);
  }

  /** Ends this side: after `chunk` if given, with an empty END_STREAM DATA frame otherwise. */
  end(chunk?: Buffer): void {
    this.conn.writeData(this, chunk ?? EMPTY, true);
  }

  /** Ends this side with trailer fields (an empty list ends it with an empty DATA frame). */
  endWithTrailers(fields: string[]): void {
    this.conn.endWithTrailers(this, fields);
  }

  /** Resets the stream (RST_STREAM `code`); its `close` event follows at once. */
  reset(code: number): void {
    this.conn.resetStream(this, code);
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    const queued = this.inbound;
    if (queued === undefined) return;
    this.inbound = undefined;
    for (let i = 0; i < queued.length; i++) {
      const item = queued[i];
      if (this.closed) return;
      if (this.paused) {
        // Paused again by the owner: keep the rest for the next resume.
        this.inbound = queued.slice(i);
        return;
      }
      if (item === END) this.conn.deliverEnd(this);
      else this.conn.deliverData(this, item);
    }
  }

  /** Holds inbound data (or the end) while paused; false when the stream is flowing. */
  hold(item: Buffer | typeof END): boolean {
    if (!this.paused && this.inbound === undefined) return false;
    (this.inbound ??= []).push(item);
    return true;
  }
}

export const STREAM_END = END;
const EMPTY = Buffer.alloc(0);
