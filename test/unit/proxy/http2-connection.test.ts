// The proxy's own HTTP/2 connection (proxy/http2/http2-connection.ts) in both
// roles against a real peer: node:http2 (nghttp2) as the client of our server
// role and as the server of our client role, plus a raw socket for traffic
// no real peer would send. Each case waits on events, never on time; every
// server, session and socket is closed so the process exits by itself.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import http2 from 'node:http2';
import type { ClientHttp2Session, ClientHttp2Stream, Http2Server, IncomingHttpHeaders, ServerHttp2Session, ServerHttp2Stream } from 'node:http2';
import net from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import { HpackEncoder } from '../../../proxy/http2/hpack.ts';
import { Http2Connection } from '../../../proxy/http2/http2-connection.ts';
import type { Http2ConnectionHandler } from '../../../proxy/http2/http2-connection.ts';
import { FRAME_HEADER_LENGTH, Flag, FrameType, PREFACE, frameHeader, settingsFrame } from '../../../proxy/http2/http2-frame.ts';
import type { Http2Stream, Http2StreamEvents } from '../../../proxy/http2/http2-stream.ts';
import { seededRandom } from './resilience/resilience-test-helpers.ts';

// What the connection grants per stream (STREAM_WINDOW in http2-connection.ts).
const STREAM_WINDOW = 1 << 20;
const { NGHTTP2_CANCEL } = http2.constants;

// ---- helpers ----

function noop(): void {
  // An event the case does not look at.
}

function connHandler(overrides: Partial<Http2ConnectionHandler> = {}): Http2ConnectionHandler {
  return { stream: noop, settings: noop, goaway: noop, streamClosed: noop, close: noop, ...overrides };
}

function streamEvents(overrides: Partial<Http2StreamEvents> = {}): Http2StreamEvents {
  return { headers: noop, data: noop, trailers: noop, end: noop, drain: noop, close: noop, ...overrides };
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
}

function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** Polls `condition` between event-loop turns; a hang guard fails with `what` instead of hanging. */
async function waitFor(condition: () => boolean, what: () => string): Promise<void> {
  for (let i = 0; i < 3000; i++) {
    if (condition()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`gave up waiting: ${what()}`);
}

/** Waits until `value()` has not changed for `polls` consecutive polls (the peer is stuck on flow control). */
async function waitStable(value: () => number, polls = 15): Promise<void> {
  let last = value();
  let same = 0;
  while (same < polls) {
    await new Promise((r) => setTimeout(r, 10));
    const now = value();
    same = now === last ? same + 1 : 0;
    last = now;
  }
}


function seededBytes(length: number, seed: number): Buffer {
  const next = seededRandom(seed);
  const b = Buffer.allocUnsafe((length + 3) & ~3);
  for (let i = 0; i < b.length; i += 4) b.writeUInt32LE((next() * 4294967296) >>> 0, i);
  return b.subarray(0, length);
}

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Bytes a paused stream holds (its inbound queue, without the END marker). */
function heldBytes(stream: Http2Stream | undefined): number {
  let n = 0;
  for (const item of stream?.inbound ?? []) if (typeof item !== 'number') n += item.length;
  return n;
}

function field(fields: readonly string[], name: string): string | undefined {
  for (let i = 0; i < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}

interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

/** Splits a byte stream into frames (after the client preface when `preface`). */
class FrameReader {
  readonly frames: Frame[] = [];
  private buf = Buffer.alloc(0);
  private skip: number;

  constructor(preface: boolean) {
    this.skip = preface ? PREFACE.length : 0;
  }

  feed(chunk: Buffer): void {
    this.buf = Buffer.concat([this.buf, chunk]);
    if (this.skip > 0) {
      const n = Math.min(this.skip, this.buf.length);
      this.buf = this.buf.subarray(n);
      this.skip -= n;
    }
    while (this.buf.length >= FRAME_HEADER_LENGTH) {
      const length = this.buf.readUIntBE(0, 3);
      if (this.buf.length < FRAME_HEADER_LENGTH + length) return;
      const payload = Buffer.from(this.buf.subarray(FRAME_HEADER_LENGTH, FRAME_HEADER_LENGTH + length));
      this.frames.push({ type: this.buf[3], flags: this.buf[4], streamId: this.buf.readUInt32BE(5) & 0x7fffffff, payload });
      this.buf = this.buf.subarray(FRAME_HEADER_LENGTH + length);
    }
  }
}

/** Records the frames `socket` sends (writes are taken apart as they are queued). */
function tapWrites(socket: Socket, preface: boolean): FrameReader {
  const reader = new FrameReader(preface);
  const write = socket.write.bind(socket) as (chunk: Buffer, ...rest: unknown[]) => boolean;
  socket.write = ((chunk: Buffer, ...rest: unknown[]) => {
    reader.feed(chunk);
    return write(chunk, ...rest);
  }) as typeof socket.write;
  return reader;
}

/** Records the frames `socket` receives (a second 'data' listener beside the connection's). */
function tapReads(socket: Socket, preface: boolean): FrameReader {
  const reader = new FrameReader(preface);
  socket.on('data', (chunk: Buffer) => reader.feed(chunk));
  return reader;
}

/** Frame types of one stream's header block, in order. */
function headerFrameTypes(reader: FrameReader, streamId: number): number[] {
  return reader.frames.filter((f) => f.streamId === streamId && (f.type === FrameType.HEADERS || f.type === FrameType.CONTINUATION)).map((f) => f.type);
}

interface OurServer {
  url: string;
  port: number;
  /** Connections whose socket is gone (handler.close was called). */
  closedCount(): number;
  accepted(): number;
}

/** Our connection in the server role behind a net server on an ephemeral port. */
async function startOurServer(t: TestContext, handler: Http2ConnectionHandler, tap?: (socket: Socket) => void): Promise<OurServer> {
  const open = new Set<Http2Connection>();
  let accepted = 0;
  let closed = 0;
  const wrapped: Http2ConnectionHandler = {
    ...handler,
    close(conn) {
      open.delete(conn);
      closed++;
      handler.close(conn);
    },
  };
  const server = net.createServer((socket) => {
    accepted++;
    tap?.(socket);
    open.add(new Http2Connection(socket, true, wrapped));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(async () => {
    for (const conn of open) conn.destroy();
    server.close();
    await once(server, 'close');
  });
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, port, closedCount: () => closed, accepted: () => accepted };
}

function nodeClient(t: TestContext, url: string): ClientHttp2Session {
  const client = http2.connect(url);
  client.on('error', noop);
  t.after(() => {
    client.destroy();
  });
  return client;
}

interface NodeServer {
  server: Http2Server;
  port: number;
  sessions: Set<ServerHttp2Session>;
}

/** A node:http2 (h2c) server on an ephemeral port. */
async function startNodeServer(t: TestContext, options: http2.ServerOptions, onStream: (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => void): Promise<NodeServer> {
  const server = http2.createServer(options);
  const sessions = new Set<ServerHttp2Session>();
  server.on('session', (session: ServerHttp2Session) => {
    sessions.add(session);
    session.on('error', noop);
    session.on('close', () => sessions.delete(session));
  });
  server.on('stream', (stream, headers) => {
    stream.on('error', noop);
    onStream(stream, headers);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(async () => {
    for (const session of sessions) session.destroy();
    server.close();
    await once(server, 'close');
  });
  return { server, port: (server.address() as AddressInfo).port, sessions };
}

/** Our connection in the client role to 127.0.0.1:`port`; destroyed when the test ends. */
function ourClient(t: TestContext, port: number, handler: Http2ConnectionHandler, tap?: (socket: Socket) => void): Http2Connection {
  const socket = net.connect(port, '127.0.0.1');
  tap?.(socket);
  const conn = new Http2Connection(socket, false, handler);
  t.after(() => conn.destroy());
  return conn;
}

function requestHead(port: number, method: string, path: string, extra: string[] = []): string[] {
  return [':method', method, ':scheme', 'http', ':authority', `127.0.0.1:${port}`, ':path', path, ...extra];
}

/** What our client role saw on one stream. */
interface Exchange {
  events: Http2StreamEvents;
  order: string[];
  head: string[];
  trailers: string[];
  body: Buffer[];
  closed: Promise<Http2Stream>;
}

function exchange(overrides: Partial<Http2StreamEvents> = {}): Exchange {
  const closed = deferred<Http2Stream>();
  const ex: Exchange = {
    order: [],
    head: [],
    trailers: [],
    body: [],
    closed: closed.promise,
    events: streamEvents({
      headers(s, fields) {
        ex.order.push('headers');
        ex.head = fields;
      },
      data(s, chunk) {
        ex.order.push('data');
        ex.body.push(Buffer.from(chunk));
      },
      trailers(s, fields) {
        ex.order.push('trailers');
        ex.trailers = fields;
      },
      end() {
        ex.order.push('end');
      },
      close(s) {
        ex.order.push('close');
        closed.resolve(s);
      },
      ...overrides,
    }),
  };
  return ex;
}

/** Reads a node:http2 client request to its close: status, headers, body, trailers, rstCode. */
async function nodeResponse(req: ClientHttp2Stream): Promise<{ headers: IncomingHttpHeaders; body: Buffer; trailers: IncomingHttpHeaders; rstCode: number }> {
  req.on('error', noop);
  let headers: IncomingHttpHeaders = {};
  let trailers: IncomingHttpHeaders = {};
  const body: Buffer[] = [];
  req.on('response', (h) => (headers = h));
  req.on('trailers', (h) => (trailers = h));
  req.on('data', (c: Buffer) => body.push(c));
  // Not events.once: it rejects on the 'error' that a reset with a code emits before 'close'.
  await new Promise((resolve) => req.on('close', resolve));
  return { headers, body: Buffer.concat(body), trailers, rstCode: req.rstCode ?? 0 };
}

// ---- cases ----

describe('Http2Connection, server role, node:http2 client', { timeout: 60_000 }, () => {
  it('parses a GET and sends head, body and trailers the client reads back', async (t) => {
    let seen: { method: string; path: string; authority: string | undefined; scheme: string; custom: string | undefined; endStream: boolean } | undefined;
    const server = await startOurServer(
      t,
      connHandler({
        stream(conn, stream, fields, endStream) {
          seen = { method: stream.method, path: stream.path, authority: stream.authority, scheme: stream.scheme, custom: field(fields, 'x-custom'), endStream };
          stream.sendHeaders([':status', '200', 'content-type', 'text/plain'], false);
          stream.write(Buffer.from('hello, '));
          stream.write(Buffer.from('world'));
          stream.endWithTrailers(['x-checksum', 'abc123']);
        },
      }),
    );
    const client = nodeClient(t, server.url);
    const res = await nodeResponse(client.request({ ':path': '/greet?who=all', 'x-custom': 'v1' }, { endStream: true }));
    assert.deepEqual(seen, { method: 'GET', path: '/greet?who=all', authority: `127.0.0.1:${server.port}`, scheme: 'http', custom: 'v1', endStream: true });
    assert.equal(res.rstCode, 0);
    assert.equal(res.headers[':status'], 200);
    assert.equal(res.headers['content-type'], 'text/plain');
    assert.equal(res.body.toString(), 'hello, world');
    assert.equal(res.trailers['x-checksum'], 'abc123');
  });

  it('holds a paused request body to the window it granted, then delivers all 8 MiB in order', async (t) => {
    const total = 8 << 20;
    const body = seededBytes(total, 2);
    let ours: Http2Stream | undefined;
    const hash = createHash('sha256');
    let delivered = 0;
    const server = await startOurServer(
      t,
      connHandler({
        stream(conn, stream) {
          ours = stream;
          stream.pause();
          stream.events = streamEvents({
            data(s, chunk) {
              hash.update(chunk);
              delivered += chunk.length;
            },
            end(s) {
              s.sendHeaders([':status', '200', 'x-received', String(delivered)], true);
            },
          });
        },
      }),
    );
    const client = nodeClient(t, server.url);
    const req = client.request({ ':method': 'POST', ':path': '/upload' });
    const response = nodeResponse(req);
    let written = 0;
    for (let off = 0; off < total; off += 64 * 1024) {
      const chunk = body.subarray(off, off + 64 * 1024);
      req.write(chunk, () => (written += chunk.length));
    }
    req.end();

    // nghttp2 sends all the window allows at once; then neither side moves until we resume.
    await waitFor(() => heldBytes(ours) >= STREAM_WINDOW, () => `paused stream holds ${heldBytes(ours)} bytes`);
    await waitStable(() => heldBytes(ours) + written);
    assert.ok(heldBytes(ours) <= STREAM_WINDOW + 64 * 1024, `a paused stream took ${heldBytes(ours)} bytes, beyond its window`);
    assert.equal(delivered, 0);
    assert.ok(written < total, 'the client was never held back');
    assert.ok(ours!.recvWindow >= 0);

    ours!.resume();
    const res = await response;
    assert.equal(res.rstCode, 0);
    assert.equal(res.headers['x-received'], String(total));
    assert.equal(delivered, total);
    assert.equal(hash.digest('hex'), sha256(body));
  });

  it('reports a client CANCEL as a reset by the peer', async (t) => {
    const closed = deferred<Http2Stream>();
    const opened = deferred();
    const server = await startOurServer(
      t,
      connHandler({
        stream(conn, stream) {
          stream.events = streamEvents({ close: (s) => closed.resolve(s) });
          opened.resolve();
        },
      }),
    );
    const client = nodeClient(t, server.url);
    const req = client.request({ ':method': 'POST', ':path': '/slow' });
    req.on('error', noop);
    req.write('partial');
    await opened.promise;
    req.close(NGHTTP2_CANCEL);
    const stream = await closed.promise;
    assert.equal(stream.resetCode, 8);
    assert.equal(stream.resetByPeer, true);
    assert.equal(stream.closed, true);
  });

  it("sends its own reset's code to the client", async (t) => {
    const server = await startOurServer(
      t,
      connHandler({
        stream(conn, stream) {
          stream.reset(7);
        },
      }),
    );
    const client = nodeClient(t, server.url);
    const res = await nodeResponse(client.request({ ':method': 'POST', ':path': '/refused' }));
    assert.equal(res.rstCode, 7);
  });

  it('answers a complete request it holds paused without resetting the closed stream', async (t) => {
    let ours: Http2Stream | undefined;
    let writes: FrameReader | undefined;
    const closed = deferred<Http2Stream>();
    const server = await startOurServer(
      t,
      connHandler({
        stream(conn, stream) {
          ours = stream;
          stream.pause();
          stream.events = streamEvents({ close: (s) => closed.resolve(s) });
        },
      }),
      (socket) => (writes = tapWrites(socket, false)),
    );
    const client = nodeClient(t, server.url);
    const req = client.request({ ':method': 'POST', ':path': '/denied' });
    const res = nodeResponse(req);
    req.end(Buffer.from('abc'));
    // The whole request is in (END_STREAM received) but the owner never read it: a local reply, as a 403.
    await waitFor(() => ours?.remoteEnded === true, () => 'the request body never ended');
    ours!.sendHeaders([':status', '403'], true);
    const stream = await closed.promise;
    assert.equal((await res).headers[':status'], 403);
    assert.equal(stream.resetCode, -1);
    // Both sides sent END_STREAM: the stream is closed, and no frame but PRIORITY may follow on it (RFC 9113 §5.1).
    assert.deepEqual(writes!.frames.filter((f) => f.streamId === stream.id && f.type === FrameType.RST_STREAM), []);
  });

  it('resets a request whose body is shorter than its content-length with PROTOCOL_ERROR', async (t) => {
    const closed = deferred<Http2Stream>();
    let got = 0;
    const server = await startOurServer(
      t,
      connHandler({
        stream(conn, stream) {
          stream.events = streamEvents({
            data: (s, c) => (got += c.length),
            // Reached only if the short body were accepted.
            end: (s) => s.sendHeaders([':status', '200'], true),
            close: (s) => closed.resolve(s),
          });
        },
      }),
    );
    const client = nodeClient(t, server.url);
    const req = client.request({ ':method': 'POST', ':path': '/short', 'content-length': '5' });
    const res = nodeResponse(req);
    req.end(Buffer.from('abc'));
    assert.equal((await res).rstCode, 1);
    const stream = await closed.promise;
    assert.equal(stream.resetCode, 1);
    assert.equal(stream.resetByPeer, false);
    assert.ok(got <= 3);
  });
});

describe('Http2Connection, client role, node:http2 server', { timeout: 60_000 }, () => {
  it('queues writes beyond a 16 KiB stream window and signals drain; 1 MiB arrives in order', async (t) => {
    const total = 1 << 20;
    const body = seededBytes(total, 3);
    const release = deferred();
    const node = await startNodeServer(t, { settings: { initialWindowSize: 16384 } }, (stream) => {
      const hash = createHash('sha256');
      let n = 0;
      stream.on('data', (c: Buffer) => {
        hash.update(c);
        n += c.length;
      });
      stream.pause();
      // Slow at first: nothing is read until our client has been told to wait.
      void release.promise.then(() => stream.resume());
      stream.on('end', () => stream.respond({ ':status': 200, 'x-sha256': hash.digest('hex'), 'x-bytes': String(n) }, { endStream: true }));
    });
    let drained: Deferred<void> | undefined;
    const ex = exchange({ drain: () => drained?.resolve() });
    const conn = ourClient(t, node.port, connHandler());
    const stream = conn.request(requestHead(node.port, 'POST', '/upload'), false, ex.events, undefined);
    assert.ok(stream !== undefined);
    let refused = 0;
    for (let off = 0; off < total; off += 64 * 1024) {
      if (stream.write(body.subarray(off, off + 64 * 1024))) continue;
      refused++;
      assert.ok(stream.outbound !== undefined || stream.needDrain);
      drained = deferred();
      release.resolve();
      // A stream the server reset (a flow-control violation) never drains: fail on its close instead of hanging.
      await Promise.race([drained.promise, ex.closed]);
      assert.equal(stream.closed, false, `stream closed while waiting for drain, code ${stream.resetCode}`);
    }
    stream.end();
    const closed = await ex.closed;
    assert.ok(refused > 0, 'write() never returned false against a 16 KiB window');
    assert.equal(closed.resetCode, -1);
    assert.equal(field(ex.head, ':status'), '200');
    assert.equal(field(ex.head, 'x-bytes'), String(total));
    assert.equal(field(ex.head, 'x-sha256'), sha256(body));
  });

  it("learns the server's SETTINGS_MAX_CONCURRENT_STREAMS", async (t) => {
    const node = await startNodeServer(t, { settings: { maxConcurrentStreams: 5 } }, noop);
    const settings = deferred<number>();
    ourClient(t, node.port, connHandler({ settings: (conn) => settings.resolve(conn.peerMaxStreams) }));
    assert.equal(await settings.promise, 5);
  });

  it('reads a 4 MiB response paused after its first chunk, resumed once the window is full', async (t) => {
    const total = 4 << 20;
    const body = seededBytes(total, 5);
    const node = await startNodeServer(t, {}, (stream) => {
      stream.respond({ ':status': 200 });
      stream.end(body);
    });
    let delivered = 0;
    const hash = createHash('sha256');
    const ex = exchange({
      data(s, chunk) {
        if (delivered === 0) s.pause();
        delivered += chunk.length;
        hash.update(chunk);
      },
    });
    const conn = ourClient(t, node.port, connHandler());
    const ours = conn.request(requestHead(node.port, 'GET', '/big'), true, ex.events, undefined);
    await waitFor(() => delivered + heldBytes(ours) >= STREAM_WINDOW, () => `received ${delivered + heldBytes(ours)} bytes`);
    await waitStable(() => heldBytes(ours));
    assert.ok(ours!.paused);
    assert.ok(delivered + heldBytes(ours) <= STREAM_WINDOW + 64 * 1024, `paused stream took ${delivered + heldBytes(ours)} bytes`);
    assert.ok(delivered < total);
    ours!.resume();
    const closed = await ex.closed;
    assert.equal(closed.resetCode, -1);
    assert.equal(delivered, total);
    assert.equal(hash.digest('hex'), sha256(body));
  });

  it('sends request trailers and delivers response trailers before end', async (t) => {
    let requestTrailers: IncomingHttpHeaders | undefined;
    let requestBody = '';
    const node = await startNodeServer(t, {}, (stream) => {
      stream.setEncoding('latin1');
      stream.on('data', (c: string) => (requestBody += c));
      stream.on('trailers', (h) => (requestTrailers = h));
      stream.on('end', () => {
        stream.respond({ ':status': 200 }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'x-resp-trailer': 't2', 'grpc-status': '0' }));
        stream.end('response body');
      });
    });
    const ex = exchange();
    const conn = ourClient(t, node.port, connHandler());
    const stream = conn.request(requestHead(node.port, 'POST', '/trailers'), false, ex.events, undefined)!;
    stream.write(Buffer.from('request body'));
    stream.endWithTrailers(['x-req-trailer', 't1']);
    const closed = await ex.closed;
    assert.equal(closed.resetCode, -1);
    assert.equal(requestBody, 'request body');
    assert.equal(requestTrailers?.['x-req-trailer'], 't1');
    assert.equal(Buffer.concat(ex.body).toString(), 'response body');
    assert.deepEqual(ex.trailers, ['x-resp-trailer', 't2', 'grpc-status', '0']);
    assert.deepEqual(ex.order.filter((e) => e !== 'data'), ['headers', 'trailers', 'end', 'close']);
  });

  it('closes streams above a GOAWAY last-stream-id as unprocessed and opens no more', async (t) => {
    const arrived: ServerHttp2Stream[] = [];
    const bothArrived = deferred();
    const node = await startNodeServer(t, {}, (stream) => {
      arrived.push(stream);
      if (arrived.length === 2) bothArrived.resolve();
    });
    let goaway: { code: number; lastStreamId: number } | undefined;
    const goawaySeen = deferred();
    const conn = ourClient(
      t,
      node.port,
      connHandler({
        goaway(c, code, lastStreamId) {
          goaway = { code, lastStreamId };
          goawaySeen.resolve();
        },
      }),
    );
    const first = exchange();
    const second = exchange();
    const s1 = conn.request(requestHead(node.port, 'GET', '/one'), true, first.events, undefined)!;
    const s3 = conn.request(requestHead(node.port, 'GET', '/three'), true, second.events, undefined)!;
    assert.deepEqual([s1.id, s3.id], [1, 3]);
    await bothArrived.promise;
    arrived[0].session!.goaway(0, 1);
    await goawaySeen.promise;
    const refused = await second.closed;
    assert.equal(refused.resetCode, 7);
    assert.equal(refused.unprocessed, true);
    assert.equal(refused.resetByPeer, true);
    assert.deepEqual(goaway, { code: 0, lastStreamId: 1 });
    assert.equal(s1.closed, false);
    assert.equal(s1.unprocessed, false);
    assert.equal(conn.request(requestHead(node.port, 'GET', '/late'), true, exchange().events, undefined), undefined);
    // Stream 1 was accepted: it still completes.
    arrived[0].respond({ ':status': 204 }, { endStream: true });
    const done = await first.closed;
    assert.equal(done.resetCode, -1);
    assert.equal(done.unprocessed, false);
    assert.equal(field(first.head, ':status'), '204');
  });
});

describe('Http2Connection, connection window of data dropped with its stream', { timeout: 120_000 }, () => {
  // 20 streams each holding a full 1 MiB stream window when they are reset: 20 MiB, more than the
  // 16 MiB connection window. Held data the reset drops must come back to the connection, or the
  // peer can send nothing more on it, on any stream.
  const rounds = 20;

  it('server role: requests reset while their paused body is held leave the connection able to carry more', async (t) => {
    const body = seededBytes(STREAM_WINDOW + 64 * 1024, 11);
    let current: Http2Stream | undefined;
    let delivered = 0;
    const server = await startOurServer(
      t,
      connHandler({
        stream(conn, stream) {
          current = stream;
          stream.pause();
          stream.events = streamEvents({
            data: (s, chunk) => (delivered += chunk.length),
            end: (s) => s.sendHeaders([':status', '200'], true),
          });
        },
      }),
    );
    const client = nodeClient(t, server.url);
    for (let i = 0; i < rounds; i++) {
      current = undefined;
      const req = client.request({ ':method': 'POST', ':path': `/held/${i}` });
      const res = nodeResponse(req);
      req.end(body);
      await waitFor(() => heldBytes(current) >= STREAM_WINDOW, () => `round ${i}: the paused stream holds ${heldBytes(current)} bytes`);
      current!.reset(8);
      assert.equal((await res).rstCode, 8);
    }
    current = undefined;
    const req = client.request({ ':method': 'POST', ':path': '/last' });
    const res = nodeResponse(req);
    req.end(body);
    await waitFor(() => current !== undefined, () => 'the last request never arrived');
    current!.resume();
    assert.equal((await res).headers[':status'], 200);
    assert.equal(delivered, body.length);
  });

  it('client role: responses reset while paused leave the connection able to carry more', async (t) => {
    const body = seededBytes(2 * STREAM_WINDOW, 12);
    // nghttp2 keeps counting the unsent rest of a reset response against maxSessionMemory (10 MB by default) and would refuse round 10 with ENHANCE_YOUR_CALM.
    const node = await startNodeServer(t, { maxSessionMemory: 100 }, (stream) => {
      stream.respond({ ':status': 200 });
      stream.end(body);
    });
    const conn = ourClient(t, node.port, connHandler());
    for (let i = 0; i < rounds; i++) {
      let delivered = 0;
      const ex = exchange({
        data(s, chunk) {
          s.pause();
          delivered += chunk.length;
        },
      });
      const stream = conn.request(requestHead(node.port, 'GET', `/held/${i}`), true, ex.events, undefined)!;
      await waitFor(() => delivered + heldBytes(stream) >= STREAM_WINDOW, () => `round ${i}: the paused stream took ${delivered + heldBytes(stream)} bytes (closed ${stream.closed}, code ${stream.resetCode}, sessions ${node.sessions.size})`);
      stream.reset(8);
      assert.equal((await ex.closed).resetCode, 8);
    }
    const ex = exchange();
    conn.request(requestHead(node.port, 'GET', '/last'), true, ex.events, undefined);
    assert.equal((await ex.closed).resetCode, -1);
    assert.equal(Buffer.concat(ex.body).length, body.length);
  });
});

describe('Http2Connection, large header blocks', { timeout: 60_000 }, () => {
  // Random letters and digits: Huffman cannot squeeze 40 KiB of them into one 16 KiB frame.
  const big = seededBytes(40 * 1024, 9).toString('base64').replace(/[+/=]/g, 'x').slice(0, 40 * 1024);

  it('server role: a 40 KiB field arrives over HEADERS + CONTINUATION and goes back the same way', async (t) => {
    let received: string | undefined;
    const taps: { reads?: FrameReader; writes?: FrameReader } = {};
    const server = await startOurServer(
      t,
      connHandler({
        stream(conn, stream, fields) {
          received = field(fields, 'x-big');
          stream.sendHeaders([':status', '200', 'x-big', big], true);
        },
      }),
      (socket) => {
        taps.reads = tapReads(socket, true);
        taps.writes = tapWrites(socket, false);
      },
    );
    const client = nodeClient(t, server.url);
    const res = await nodeResponse(client.request({ ':path': '/big', 'x-big': big }, { endStream: true }));
    assert.equal(res.rstCode, 0);
    assert.equal(received, big);
    assert.equal(res.headers['x-big'], big);
    assert.deepEqual(headerFrameTypes(taps.reads!, 1).slice(0, 2), [FrameType.HEADERS, FrameType.CONTINUATION]);
    assert.deepEqual(headerFrameTypes(taps.writes!, 1).slice(0, 2), [FrameType.HEADERS, FrameType.CONTINUATION]);
  });

  it('client role: a 40 KiB field goes out over HEADERS + CONTINUATION and comes back the same way', async (t) => {
    let received: string | undefined;
    const node = await startNodeServer(t, {}, (stream, headers) => {
      received = headers['x-big'] as string;
      stream.respond({ ':status': 200, 'x-big': big }, { endStream: true });
    });
    const taps: { reads?: FrameReader; writes?: FrameReader } = {};
    const conn = ourClient(t, node.port, connHandler(), (socket) => {
      taps.reads = tapReads(socket, false);
      taps.writes = tapWrites(socket, true);
    });
    const ex = exchange();
    conn.request(requestHead(node.port, 'GET', '/big', ['x-big', big]), true, ex.events, undefined);
    const closed = await ex.closed;
    assert.equal(closed.resetCode, -1);
    assert.equal(received, big);
    assert.equal(field(ex.head, 'x-big'), big);
    assert.deepEqual(headerFrameTypes(taps.writes!, 1).slice(0, 2), [FrameType.HEADERS, FrameType.CONTINUATION]);
    assert.deepEqual(headerFrameTypes(taps.reads!, 1).slice(0, 2), [FrameType.HEADERS, FrameType.CONTINUATION]);
  });
});

describe('Http2Connection, malformed traffic on the server role', { timeout: 120_000 }, () => {
  /** Sends `bytes` after the preface and an empty SETTINGS, ends, and returns every frame read back until close. */
  async function rawExchange(port: number, bytes: Buffer[]): Promise<Frame[]> {
    const socket = net.connect(port, '127.0.0.1');
    const reader = tapReads(socket, false);
    socket.on('error', noop);
    socket.end(Buffer.concat([PREFACE, settingsFrame([]), ...bytes]));
    await once(socket, 'close');
    return reader.frames;
  }

  function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
    return Buffer.concat([frameHeader(payload.length, type, flags, streamId), payload]);
  }

  function goawayCode(frames: Frame[]): number | undefined {
    const goaway = frames.find((f) => f.type === FrameType.GOAWAY);
    return goaway?.payload.readUInt32BE(4);
  }

  it('refuses a connection that resets most of its streams before their answer (rapid reset)', async (t) => {
    let opened = 0;
    const server = await startOurServer(
      t,
      connHandler({
        stream(conn, stream) {
          opened++;
          stream.events = streamEvents();
        },
      }),
    );
    const encoder = new HpackEncoder();
    const rstCancel = Buffer.from([0, 0, 0, 8]);
    const attack = (count: number): Buffer[] => {
      const out: Buffer[] = [];
      // HEADERS then RST_STREAM, stream after stream (CVE-2023-44487).
      for (let i = 0; i < count; i++) {
        const id = 1 + 2 * i;
        out.push(frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, id, encoder.encode([':method', 'GET', ':scheme', 'http', ':path', `/r${i}`, ':authority', 'x'])));
        out.push(frame(FrameType.RST_STREAM, 0, id, rstCancel));
      }
      return out;
    };
    assert.equal(goawayCode(await rawExchange(server.port, attack(600))), 11, 'GOAWAY ENHANCE_YOUR_CALM');
    assert.equal(opened, 500, 'the guard lets the first 500 streams through');
  });

  it('drops a connection that floods PINGs without reading the answers, and answers a reading one', async (t) => {
    const server = await startOurServer(t, connHandler({}));
    const ping = frame(FrameType.PING, 0, 0, Buffer.alloc(8));
    // A reader gets every answer.
    const answered = await rawExchange(server.port, Array.from({ length: 200 }, () => ping));
    assert.equal(answered.filter((f) => f.type === FrameType.PING && (f.flags & Flag.ACK) !== 0).length, 200);
    // A peer that never reads: its socket fills, the answers pile up, and the connection is dropped.
    const flooder = net.connect(server.port, '127.0.0.1');
    flooder.on('error', noop);
    flooder.pause();
    t.after(() => flooder.destroy());
    const burst = Buffer.concat([PREFACE, settingsFrame([]), ...Array.from({ length: 4096 }, () => ping)]);
    const closedBefore = server.closedCount();
    for (let i = 0; i < 200 && server.closedCount() === closedBefore && !flooder.destroyed; i++) {
      // The server dropping the connection shows here as ECONNRESET: that is the outcome wanted.
      if (!flooder.write(i === 0 ? burst : burst.subarray(PREFACE.length + FRAME_HEADER_LENGTH))) await once(flooder, 'drain').catch(noop);
    }
    await waitFor(() => server.closedCount() > closedBefore, () => 'the flooding connection is still open');
  });

  it('survives seeded random frames, answers crafted ones with the right GOAWAY, and still serves', async (t) => {
    const server = await startOurServer(
      t,
      connHandler({
        stream(conn, stream) {
          stream.events = streamEvents();
          stream.sendHeaders([':status', '200'], false);
          stream.end(Buffer.from('ok'));
        },
      }),
    );
    const next = seededRandom(0x5eed);
    const int = (n: number): number => Math.floor(next() * n);
    const iterations = 300;
    for (let i = 0; i < iterations; i++) {
      const encoder = new HpackEncoder();
      const frames: Buffer[] = [];
      const count = 1 + int(6);
      for (let k = 0; k < count; k++) {
        const type = int(13);
        const streamId = int(4) === 0 ? int(0x80000000) : int(8);
        const flags = int(256);
        // A valid request now and then, so streams open and the random frames after it meet them.
        if ((k === 0 || type === FrameType.HEADERS) && int(2) === 0) {
          const block = encoder.encode([':method', 'POST', ':scheme', 'http', ':path', '/fuzz', ':authority', 'x']);
          frames.push(frame(FrameType.HEADERS, (flags & Flag.END_STREAM) | Flag.END_HEADERS, 2 * k + 1, block));
          continue;
        }
        frames.push(frame(type, flags, streamId, seededBytes(int(101), int(0xffffffff))));
      }
      await rawExchange(server.port, frames);
    }

    // A frame longer than the 16 KiB SETTINGS_MAX_FRAME_SIZE: its header alone is enough to refuse it.
    const oversized = frameHeader(20_000, FrameType.DATA, 0, 1);
    assert.equal(goawayCode(await rawExchange(server.port, [oversized])), 6);
    assert.equal(goawayCode(await rawExchange(server.port, [frame(FrameType.DATA, Flag.END_STREAM, 0, Buffer.from('data'))])), 1);

    await waitFor(() => server.closedCount() === server.accepted(), () => `${server.accepted() - server.closedCount()} connections still open`);
    assert.equal(server.accepted(), iterations + 2);
    const client = nodeClient(t, server.url);
    const res = await nodeResponse(client.request({ ':path': '/after' }, { endStream: true }));
    assert.equal(res.headers[':status'], 200);
    assert.equal(res.body.toString(), 'ok');
  });
});
