// HTTP/2 through the proxy against real node:http2 peers: HTTP/1.1 ↔ HTTP/2
// translation both ways, trailers, streams multiplexed on one upstream
// session, gRPC-shaped local replies and grpc-timeout, resets both ways,
// REFUSED_STREAM and GOAWAY, a slow reader that must not make the proxy
// buffer without bound, and a WebSocket upgrade relayed as raw bytes.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import http2 from 'node:http2';
import type { ClientHttp2Session, IncomingHttpHeaders, ServerHttp2Session, ServerHttp2Stream } from 'node:http2';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { RunningProxy } from '../../../proxy/proxy.ts';
import type { Upstream } from '../../unit/proxy/proxy-test-helpers.ts';
import { cluster, endpoints, freePort, fullUpdate, request, route, routeConfig, startSidecar, startUpstream, toCluster, vhost } from '../../unit/proxy/proxy-test-helpers.ts';

type StreamHandler = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, session: ServerHttp2Session) => void;

interface H2Upstream {
  port: number;
  sessions: ServerHttp2Session[];
  streams: number;
  close(): Promise<void>;
}

async function startH2Upstream(handler: StreamHandler): Promise<H2Upstream> {
  const server = http2.createServer();
  const up: H2Upstream = {
    port: 0,
    sessions: [],
    streams: 0,
    close: async () => {
      for (const s of up.sessions) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  server.on('session', (s) => {
    up.sessions.push(s);
    s.on('error', () => {});
  });
  server.on('stream', (stream, headers) => {
    up.streams++;
    stream.on('error', () => {});
    handler(stream, headers, stream.session as ServerHttp2Session);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  up.port = (server.address() as net.AddressInfo).port;
  return up;
}

/** Reads a request body, then answers `echo <method> <path> <authority> <body length>` with a trailer. */
const echoH2: StreamHandler = (stream, headers) => {
  let length = 0;
  stream.on('data', (c: Buffer) => (length += c.length));
  stream.on('end', () => {
    if (stream.destroyed) return;
    stream.respond({ ':status': 200, 'x-upstream': 'h2' }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'x-checksum': String(length) }));
    stream.end(`echo ${headers[':method']} ${headers[':path']} ${headers[':authority']} ${length}`);
  });
};

interface H2Reply {
  headers: IncomingHttpHeaders;
  trailers: IncomingHttpHeaders | undefined;
  body: string;
  rstCode: number | undefined;
}

function h2request(client: ClientHttp2Session, headers: Record<string, string>, body?: string): Promise<H2Reply> {
  return new Promise((resolve) => {
    const req = client.request({ ':method': body === undefined ? 'GET' : 'POST', ':path': '/', ...headers }, { endStream: body === undefined });
    let responseHeaders: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders | undefined;
    let text = '';
    req.on('response', (h) => (responseHeaders = h));
    req.on('trailers', (t) => (trailers = t));
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('error', () => {});
    req.on('close', () => resolve({ headers: responseHeaders, trailers, body: text, rstCode: req.rstCode }));
    if (body !== undefined) req.end(body);
  });
}

describe('HTTP/2 through the proxy', () => {
  let proxy: RunningProxy;
  let port: number;
  let h2echo: H2Upstream;
  let h1echo: Upstream;
  let resetter: H2Upstream;
  let refuser: H2Upstream;
  let goaway: H2Upstream;
  let silent: H2Upstream;
  let firehose: H2Upstream;
  let wsServer: http.Server;
  let client: ClientHttp2Session;
  /** Bytes the firehose upstream managed to write, per request. */
  const firehoseSent: Array<{ bytes: number }> = [];
  const FIREHOSE_TOTAL = 64 << 20;
  const resets: number[] = [];

  before(async () => {
    h2echo = await startH2Upstream(echoH2);
    h1echo = await startUpstream('h1');
    // Answers headers then resets with CANCEL (path /after-headers), or waits and records the client's reset (/hang).
    resetter = await startH2Upstream((stream, headers) => {
      if (headers[':path'] === '/grpc-stall') {
        // One whole gRPC message, then nothing: the client's deadline passes mid-call.
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.write(Buffer.from([0, 0, 0, 0, 2, 8, 1]));
        return;
      }
      if (headers[':path'] === '/after-headers') {
        // waitForTrailers: node's close() would otherwise end the stream cleanly before resetting it.
        stream.respond({ ':status': 200 }, { waitForTrailers: true });
        stream.write('partial');
        setImmediate(() => stream.close(http2.constants.NGHTTP2_CANCEL));
      } else {
        stream.on('close', () => resets.push(stream.rstCode ?? -1));
      }
    });
    let refused = 0;
    refuser = await startH2Upstream((stream, headers) => {
      if (refused++ === 0) stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      else echoH2(stream, headers, stream.session as ServerHttp2Session);
    });
    goaway = await startH2Upstream((stream, headers, session) => {
      echoH2(stream, headers, session);
      // Graceful GOAWAY after the first stream of each session: the next request needs a new session.
      stream.on('close', () => {
        if (!session.closed) session.goaway(http2.constants.NGHTTP2_NO_ERROR, stream.id!);
      });
    });
    silent = await startH2Upstream(() => {});
    firehose = await startH2Upstream((stream) => {
      const sent = { bytes: 0 };
      firehoseSent.push(sent);
      stream.respond({ ':status': 200, 'content-length': String(FIREHOSE_TOTAL) });
      const chunk = Buffer.alloc(64 << 10, 120);
      const pump = (): void => {
        while (sent.bytes < FIREHOSE_TOTAL && !stream.destroyed) {
          sent.bytes += chunk.length;
          const last = sent.bytes >= FIREHOSE_TOTAL;
          const ok = last ? (stream.end(chunk), true) : stream.write(chunk);
          if (!ok) return void stream.once('drain', pump);
        }
      };
      pump();
    });
    wsServer = http.createServer((_req, res) => res.end('not an upgrade'));
    wsServer.on('upgrade', (req, socket: net.Socket) => {
      const accept = createHash('sha1').update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
      // Echo each (masked) client frame back unmasked: a minimal RFC 6455 server for short text frames.
      socket.on('data', (frame: Buffer) => {
        const length = frame[1] & 0x7f;
        const mask = frame.subarray(2, 6);
        const payload = Buffer.from(frame.subarray(6, 6 + length).map((b, i) => b ^ mask[i % 4]));
        socket.write(Buffer.concat([Buffer.from([0x81, length]), payload]));
      });
      socket.on('error', () => {});
      // The server is half-open (http's default): end this side when the proxy ends its.
      socket.on('end', () => socket.end());
    });
    await new Promise<void>((resolve) => wsServer.listen(0, '127.0.0.1', resolve));

    const closedPort = await freePort();
    proxy = await startSidecar();
    port = proxy.ports.outbound!;
    const h2 = { protocol: 'http2' as const };
    const target = (name: string, p: number, extra = {}) => [cluster(name, 'ROUND_ROBIN', extra), endpoints(name, [p])];
    await proxy.apply(
      fullUpdate([
        routeConfig('outbound', [
          vhost('h2echo', ['h2echo'], [route('all', [], toCluster('h2echo'))]),
          vhost('h1echo', ['h1echo'], [route('all', [], toCluster('h1echo'))]),
          vhost('resetter', ['resetter'], [route('all', [], toCluster('resetter'))]),
          vhost('refuser', ['refuser'], [route('all', [], toCluster('refuser'))]),
          vhost('goaway', ['goaway'], [route('all', [], toCluster('goaway'))]),
          vhost('silent', ['silent'], [route('all', [], toCluster('silent', { timeoutMs: 30_000 }))]),
          vhost('firehose', ['firehose'], [route('all', [], toCluster('firehose'))]),
          vhost('ws', ['ws'], [route('all', [], toCluster('ws', { timeoutMs: 30_000 }))]),
          vhost('refused', ['refused'], [route('all', [], toCluster('refused'))]),
        ]),
        ...target('h2echo', h2echo.port, h2),
        ...target('h1echo', h1echo.port),
        ...target('resetter', resetter.port, h2),
        ...target('refuser', refuser.port, h2),
        ...target('goaway', goaway.port, h2),
        ...target('silent', silent.port, h2),
        ...target('firehose', firehose.port, h2),
        ...target('ws', (wsServer.address() as net.AddressInfo).port),
        ...target('refused', closedPort, h2),
      ]),
    );
    client = http2.connect(`http://127.0.0.1:${port}`);
    client.on('error', () => {});
  });

  after(async () => {
    client?.destroy();
    await proxy?.close();
    await Promise.all([h2echo, resetter, refuser, goaway, silent, firehose].map((u) => u?.close()));
    await h1echo?.close();
    await new Promise<void>((resolve) => wsServer.close(() => resolve()));
  });

  it('translates an HTTP/1.1 client to an HTTP/2 upstream, trailers included when the client takes them', async () => {
    const reply = await new Promise<{ status: number; body: string; trailers: NodeJS.Dict<string> }>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/up?q=1', headers: { host: 'h2echo', te: 'trailers', connection: 'keep-alive, x-hop', 'x-hop': 'dropped' }, agent: false }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, trailers: res.trailers }));
      });
      req.on('error', reject);
      req.end('hello');
    });
    assert.equal(reply.status, 200);
    assert.equal(reply.body, 'echo POST /up?q=1 h2echo 5');
    assert.equal(reply.trailers['x-checksum'], '5');
  });

  it('translates an HTTP/2 client to an HTTP/1.1 upstream (:authority as Host, body without a length)', async () => {
    const reply = await h2request(client, { ':authority': 'h1echo', ':path': '/down' }, 'abc');
    assert.equal(reply.headers[':status'], 200);
    assert.equal(reply.body, 'h1 POST /down');
    const seen = h1echo.requests.at(-1)!;
    assert.equal(seen.headers.host, 'h1echo');
    assert.equal(seen.headers['transfer-encoding'], 'chunked');
    assert.equal(seen.body.toString(), 'abc');
  });

  it('multiplexes concurrent HTTP/2 requests on one upstream session and relays trailers', async () => {
    const before = h2echo.sessions.length;
    const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => h2request(client, { ':authority': 'h2echo', ':path': `/m${i}`, te: 'trailers' }, 'x'.repeat(i))));
    replies.forEach((r, i) => {
      assert.equal(r.body, `echo POST /m${i} h2echo ${i}`);
      assert.equal(r.trailers?.['x-checksum'], String(i));
    });
    assert.ok(h2echo.sessions.length - before <= 1, `opened ${h2echo.sessions.length - before} sessions`);
  });

  it('answers gRPC requests it cannot route with a trailers-only gRPC status', async () => {
    const reply = await h2request(client, { ':authority': 'nowhere', ':path': '/pkg.Svc/Method', 'content-type': 'application/grpc', te: 'trailers' }, '');
    assert.equal(reply.headers[':status'], 200);
    assert.equal(reply.headers['grpc-status'], '12');
    assert.equal(reply.trailers, undefined);
  });

  it('answers 503 UF when no HTTP/2 session can be opened, UNAVAILABLE to gRPC', async () => {
    const plain = await request(port, { headers: { host: 'refused' } });
    assert.equal(plain.status, 503);
    assert.equal(plain.headers['x-jibe-response-flags'], 'UF');
    const grpc = await h2request(client, { ':authority': 'refused', ':path': '/pkg.Svc/M', 'content-type': 'application/grpc+proto', te: 'trailers' }, '');
    assert.equal(grpc.headers[':status'], 200);
    assert.equal(grpc.headers['grpc-status'], '14');
    assert.match(String(grpc.headers['grpc-message']), /connection failure/);
  });

  it('honours grpc-timeout below the route timeout with DEADLINE_EXCEEDED', async () => {
    const reply = await h2request(client, { ':authority': 'silent', ':path': '/pkg.Svc/Slow', 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '50m' }, '');
    assert.equal(reply.headers[':status'], 200);
    assert.equal(reply.headers['grpc-status'], '4');
  });

  it('ends a gRPC call whose deadline passes after its answer started with DEADLINE_EXCEEDED in trailers', async () => {
    const reply = await h2request(client, { ':authority': 'resetter', ':path': '/grpc-stall', 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '100m' }, '');
    assert.equal(reply.headers[':status'], 200);
    assert.equal(reply.body.length, 7, 'the whole message that came before the deadline is delivered');
    assert.equal(reply.trailers?.['grpc-status'], '4');
    assert.equal(reply.rstCode, http2.constants.NGHTTP2_NO_ERROR);
  });

  it('relays an upstream reset after the response started as a reset of the client stream (same code)', async () => {
    const reply = await h2request(client, { ':authority': 'resetter', ':path': '/after-headers' });
    assert.equal(reply.rstCode, http2.constants.NGHTTP2_CANCEL);
  });

  it('cancels the upstream stream when the client resets its own', async () => {
    const count = resets.length;
    const req = client.request({ ':method': 'GET', ':path': '/hang', ':authority': 'resetter' });
    req.on('error', () => {});
    await new Promise<void>((resolve) => {
      const poll = setInterval(() => {
        if (resetter.streams > 0) {
          clearInterval(poll);
          resolve();
        }
      }, 5);
    });
    req.close(http2.constants.NGHTTP2_CANCEL);
    await new Promise<void>((resolve) => {
      const poll = setInterval(() => {
        if (resets.length > count) {
          clearInterval(poll);
          resolve();
        }
      }, 5);
    });
    assert.equal(resets.at(-1), http2.constants.NGHTTP2_CANCEL);
  });

  it('retries a stream the upstream refused (REFUSED_STREAM never reached the application)', async () => {
    const reply = await h2request(client, { ':authority': 'refuser', ':path': '/r' });
    assert.equal(reply.headers[':status'], 200);
    assert.equal(reply.body, 'echo GET /r refuser 0');
    assert.equal(refuser.streams, 2);
  });

  it('opens a new session after the upstream sends GOAWAY', async () => {
    for (let i = 0; i < 3; i++) {
      const reply = await h2request(client, { ':authority': 'goaway', ':path': `/g${i}` });
      assert.equal(reply.body, `echo GET /g${i} goaway 0`);
    }
    assert.equal(goaway.sessions.length, 3);
  });

  /** Resolves once the upstream has stopped writing (its flow-control window and the proxy's buffers are full). */
  async function stalled(sent: { bytes: number }): Promise<void> {
    let last = -1;
    let still = 0;
    while (still < 10) {
      await new Promise((r) => setTimeout(r, 20));
      still = sent.bytes === last ? still + 1 : 0;
      last = sent.bytes;
    }
  }

  async function nextFirehose(count: number): Promise<{ bytes: number }> {
    while (firehoseSent.length <= count) await new Promise((r) => setTimeout(r, 5));
    return firehoseSent[count];
  }

  it('keeps buffering bounded when an HTTP/2 client stops reading', async () => {
    const count = firehoseSent.length;
    const req = client.request({ ':method': 'GET', ':path': '/big', ':authority': 'firehose' });
    req.on('error', () => {});
    req.pause();
    const sent = await nextFirehose(count);
    await stalled(sent);
    assert.ok(sent.bytes < FIREHOSE_TOTAL / 2, `upstream wrote ${sent.bytes} bytes to a client that reads nothing`);
    let received = 0;
    req.on('data', (c: Buffer) => (received += c.length));
    const ended = new Promise<void>((resolve) => req.on('end', () => resolve()));
    req.resume();
    await ended;
    assert.equal(received, FIREHOSE_TOTAL);
  });

  it('keeps buffering bounded when an HTTP/1.1 client stops reading an HTTP/2 response', async () => {
    const count = firehoseSent.length;
    const socket = net.connect(port, '127.0.0.1');
    socket.write('GET /big HTTP/1.1\r\nhost: firehose\r\n\r\n');
    socket.pause();
    const sent = await nextFirehose(count);
    await stalled(sent);
    assert.ok(sent.bytes < FIREHOSE_TOTAL / 2, `upstream wrote ${sent.bytes} bytes to a client that reads nothing`);
    let received = 0;
    socket.on('data', (c: Buffer) => (received += c.length));
    socket.resume();
    await new Promise<void>((resolve) => {
      const poll = setInterval(() => {
        if (received >= FIREHOSE_TOTAL) {
          clearInterval(poll);
          resolve();
        }
      }, 10);
    });
    socket.destroy();
    assert.equal(sent.bytes, FIREHOSE_TOTAL);
  });

  it('passes a WebSocket upgrade through and relays frames both ways', async () => {
    const socket = net.connect(port, '127.0.0.1');
    socket.write('GET /chat HTTP/1.1\r\nhost: ws\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n');
    let data = Buffer.alloc(0);
    const waitFor = (test: () => boolean) =>
      new Promise<void>((resolve, reject) => {
        const check = (): void => {
          if (test()) {
            socket.removeListener('data', onData);
            resolve();
          }
        };
        const onData = (c: Buffer): void => {
          data = Buffer.concat([data, c]);
          check();
        };
        socket.on('data', onData);
        socket.once('error', reject);
        check();
      });
    await waitFor(() => data.includes('\r\n\r\n'));
    const head = data.subarray(0, data.indexOf('\r\n\r\n') + 4).toString();
    assert.match(head, /^HTTP\/1\.1 101 /);
    assert.match(head, /\r\nupgrade: websocket\r\n/i);
    assert.match(head, /\r\nsec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r\n/i);
    data = data.subarray(head.length);
    const payload = Buffer.from('hello through jibe');
    const mask = Buffer.from([1, 2, 3, 4]);
    socket.write(Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, Buffer.from(payload.map((b, i) => b ^ mask[i % 4]))]));
    await waitFor(() => data.length >= 2 + payload.length);
    assert.equal(data[0], 0x81);
    assert.equal(data.subarray(2, 2 + payload.length).toString(), 'hello through jibe');
    socket.destroy();
  });

  it('answers a non-101 reply to an upgrade as a normal response', async () => {
    const reply = await request(port, { headers: { host: 'h1echo', upgrade: 'websocket', connection: 'upgrade' } });
    assert.equal(reply.status, 200);
    assert.equal(h1echo.requests.at(-1)!.headers.upgrade, 'websocket');
  });
});
