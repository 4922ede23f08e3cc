// Forwarding: header handling (hop-by-hop, x-forwarded-*, x-request-id),
// keep-alive reuse, streaming without buffering, upstream failures and their
// response flags, client aborts, timeouts, malformed requests.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import type { RunningProxy } from '../../../proxy/proxy.ts';
import type { RouteConfigResource } from '../../../core/model/proxy-config.ts';
import {
  cluster,
  deltaUpdate,
  endpoints,
  freePort,
  fullUpdate,
  rawRequest,
  request,
  route,
  routeConfig,
  startSidecar,
  startUpstream,
  toCluster,
  vhost,
} from './proxy-test-helpers.ts';
import type { Upstream } from './proxy-test-helpers.ts';

const MB = 1024 * 1024;

describe('proxy forwarding', () => {
  let proxy: RunningProxy;
  let port: number;
  let echo: Upstream;
  let sink: Upstream;
  let hold: Upstream;
  let reset: Upstream;
  let heldClosed = 0;
  let bad: net.Server;
  const logs: Array<Record<string, unknown>> = [];
  const firstChunk: { resolve?: () => void } = {};

  before(async () => {
    echo = await startUpstream('echo', (req, res) => {
      res.setHeader('keep-alive', 'timeout=30');
      res.setHeader('connection', 'x-resp-hop');
      res.setHeader('x-resp-hop', 'secret');
      res.setHeader('x-upstream', 'echo');
      req.resume();
      req.on('end', () => res.end('echo'));
    });
    // Counts and hashes a streamed body; tells the test when the first bytes arrived.
    sink = await startUpstream('sink', (req, res) => {
      const hash = createHash('sha256');
      let bytes = 0;
      req.on('data', (c: Buffer) => {
        if (bytes === 0) firstChunk.resolve?.();
        bytes += c.length;
        hash.update(c);
      });
      req.on('end', () => {
        if (req.url === '/big-response') {
          const chunk = Buffer.alloc(MB, 7);
          let sent = 0;
          const pump = () => {
            while (sent < 20) {
              sent++;
              if (!res.write(chunk)) return void res.once('drain', pump);
            }
            res.end();
          };
          return pump();
        }
        res.end(JSON.stringify({ bytes, sha256: hash.digest('hex') }));
      });
    });
    hold = await startUpstream('hold', (req) => {
      req.socket.on('close', () => heldClosed++);
    });
    reset = await startUpstream('reset', (req) => req.socket.destroy());
    bad = net.createServer((socket) => {
      socket.once('data', () => socket.end('HTTP/1.1 200 OK\r\nx-bad\u0001: value\r\ncontent-length: 2\r\n\r\nok'));
    });
    await new Promise<void>((resolve) => bad.listen(0, '127.0.0.1', resolve));
    const badPort = (bad.address() as net.AddressInfo).port;
    const closedPort = await freePort();

    const logger = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line)) });
    proxy = await startSidecar({ logger });
    port = proxy.ports.outbound!;
    await proxy.apply(
      fullUpdate([
        routeConfig('outbound', [
          vhost('echo', ['echo'], [route('all', [], toCluster('echo'))]),
          vhost('sink', ['sink'], [route('all', [], toCluster('sink'))]),
          vhost('hold', ['hold'], [route('slow', [{ uri: { prefix: '/timeout' } }], toCluster('hold', { timeoutMs: 50 })), route('all', [], toCluster('hold'))]),
          vhost('reset', ['reset'], [route('all', [], toCluster('reset'))]),
          vhost('bad', ['bad'], [route('all', [], toCluster('bad'))]),
          vhost('down', ['down'], [route('all', [], toCluster('down'))]),
          vhost('unhealthy', ['unhealthy'], [route('all', [], toCluster('unhealthy'))]),
        ]),
        ...['echo', 'sink', 'hold', 'reset', 'bad', 'down', 'unhealthy'].map((n) => cluster(n)),
        endpoints('unhealthy', [{ port: echo.port, healthy: false }]),
        endpoints('echo', [echo.port]),
        endpoints('sink', [sink.port]),
        endpoints('hold', [hold.port]),
        endpoints('reset', [reset.port]),
        endpoints('bad', [badPort]),
        endpoints('down', [closedPort]),
      ]),
    );
  });

  after(async () => {
    await proxy.close();
    for (const u of [echo, sink, hold, reset]) await u.close();
    await new Promise<void>((resolve) => bad.close(() => resolve()));
  });

  const currentVirtualHosts = () =>
    (proxy.state().resources.find((r) => r.type === 'route' && r.name === 'outbound') as RouteConfigResource).virtualHosts;
  const lastLog = () => logs.filter((l) => l.msg === 'request').at(-1)!;

  it('strips hop-by-hop headers both ways, including those named in Connection', async () => {
    const reply = await rawRequest(
      port,
      'GET /h HTTP/1.1\r\nHost: echo\r\nConnection: close, X-Custom-Hop\r\nX-Custom-Hop: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Authorization: Basic eA==\r\nX-End-To-End: kept\r\n\r\n',
    );
    const seen = echo.requests.at(-1)!;
    for (const name of ['x-custom-hop', 'keep-alive', 'te', 'proxy-authorization']) assert.equal(seen.headers[name], undefined, name);
    assert.equal(seen.headers['x-end-to-end'], 'kept');
    const head = reply.slice(0, reply.indexOf('\r\n\r\n')).toLowerCase();
    assert.doesNotMatch(head, /x-resp-hop/);
    assert.doesNotMatch(head, /keep-alive: timeout=30/);
    assert.match(head, /x-upstream: echo/);
  });

  it('drops a header named in Connection even when it comes before x-forwarded-for', async () => {
    await rawRequest(port, 'GET /n HTTP/1.1\r\nHost: echo\r\nX-Hop: 1\r\nX-Forwarded-For: 10.9.9.9\r\nConnection: x-hop, close\r\n\r\n');
    const seen = echo.requests.at(-1)!;
    assert.equal(seen.headers['x-hop'], undefined);
    assert.equal(seen.headers['x-forwarded-for'], '10.9.9.9, 127.0.0.1');
  });

  it('keeps the downstream connection alive after a local reply', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const before = proxy.stats.downstream_cx_total;
    try {
      for (let i = 0; i < 3; i++) assert.equal((await request(port, { headers: { host: 'nowhere' }, agent })).status, 404);
      assert.equal((await request(port, { headers: { host: 'echo' }, agent })).status, 200);
    } finally {
      agent.destroy();
    }
    assert.equal(proxy.stats.downstream_cx_total - before, 1);
  });

  it('generates x-request-id when absent and keeps it when present', async () => {
    await request(port, { headers: { host: 'echo' } });
    const generated = echo.requests.at(-1)!.headers['x-request-id'];
    assert.match(String(generated), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    await request(port, { headers: { host: 'echo', 'x-request-id': 'abc-123' } });
    assert.equal(echo.requests.at(-1)!.headers['x-request-id'], 'abc-123');
    assert.equal(lastLog().requestId, 'abc-123');
  });

  it('appends the client to x-forwarded-for and sets x-forwarded-proto and x-forwarded-host', async () => {
    await request(port, { headers: { host: 'echo', 'x-forwarded-for': '10.1.2.3' } });
    const seen = echo.requests.at(-1)!;
    assert.equal(seen.headers['x-forwarded-for'], '10.1.2.3, 127.0.0.1');
    assert.equal(seen.headers['x-forwarded-proto'], 'http');
    assert.equal(seen.headers['x-forwarded-host'], 'echo');
    await request(port, { headers: { host: 'echo' } });
    assert.equal(echo.requests.at(-1)!.headers['x-forwarded-for'], '127.0.0.1');
  });

  it('reuses keep-alive upstream connections across downstream connections', async () => {
    const before = echo.connections;
    for (let i = 0; i < 20; i++) assert.equal((await request(port, { headers: { host: 'echo' } })).status, 200);
    assert.ok(echo.connections - before <= 1, `opened ${echo.connections - before} upstream connections for 20 sequential requests`);
  });

  it('streams a 20 MB request body: the upstream sees the first bytes before the client has sent the rest', async () => {
    const arrived = new Promise<void>((resolve) => (firstChunk.resolve = resolve));
    const expected = createHash('sha256');
    const reply = new Promise<string>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/upload', headers: { host: 'sink' }, agent: false }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve(body));
      });
      req.on('error', reject);
      let i = 0;
      const writeNext = () => {
        const chunk = Buffer.alloc(MB, i % 251);
        expected.update(chunk);
        req.write(chunk);
        i++;
      };
      writeNext();
      // The rest is written only once the upstream has the first megabyte: a
      // proxy that buffered the body would never let it arrive.
      void arrived.then(() => {
        while (i < 20) writeNext();
        req.end();
      });
    });
    const result = JSON.parse(await reply) as { bytes: number; sha256: string };
    firstChunk.resolve = undefined;
    assert.equal(result.bytes, 20 * MB);
    assert.equal(result.sha256, expected.digest('hex'));
  });

  it('streams a 20 MB response body', async () => {
    let bytes = 0;
    await new Promise<void>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port, path: '/big-response', headers: { host: 'sink' }, agent: false }, (res) => {
          res.on('data', (c: Buffer) => (bytes += c.length));
          res.on('end', resolve);
        })
        .on('error', reject);
    });
    assert.equal(bytes, 20 * MB);
  });

  it('applies backpressure: a client that stops reading stops the upstream', async () => {
    const state = { written: 0, blockedAt: 0, finished: false, resume: () => {} };
    const gush = await startUpstream('gush', (_req, res) => {
      const chunk = Buffer.alloc(MB, 1);
      const pump = () => {
        while (state.written < 64 * MB) {
          state.written += MB;
          if (!res.write(chunk)) {
            state.blockedAt = state.written;
            return void res.once('drain', pump);
          }
        }
        state.finished = true;
        res.end();
      };
      pump();
    });
    await proxy.apply(
      deltaUpdate([
        routeConfig('outbound', [...currentVirtualHosts(), vhost('gush', ['gush'], [route('all', [], toCluster('gush'))])]),
        cluster('gush'),
        endpoints('gush', [gush.port]),
      ]),
    );
    try {
      let received = 0;
      const done = new Promise<void>((resolve, reject) => {
        http
          .get({ host: '127.0.0.1', port, path: '/', headers: { host: 'gush' }, agent: false }, (res) => {
            res.pause();
            state.resume = () => {
              res.on('data', (c: Buffer) => (received += c.length));
              res.resume();
            };
            res.on('end', resolve);
          })
          .on('error', reject);
      });
      // Wait until the upstream is held back (blocked with no progress) or has sent everything.
      let last = -1;
      while (!state.finished && !(state.blockedAt > 0 && state.written === last)) {
        last = state.written;
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.equal(state.finished, false, 'the upstream sent all 64 MB to a client that read nothing');
      assert.ok(state.written < 48 * MB, `${state.written / MB} MB in flight`);
      state.resume();
      await done;
      assert.equal(received, 64 * MB);
    } finally {
      await gush.close();
    }
  });

  it('answers 503 with UF when the upstream refuses connections', async () => {
    const reply = await request(port, { headers: { host: 'down' } });
    assert.equal(reply.status, 503);
    assert.match(reply.body, /^upstream connect error or disconnect\/reset before headers/);
    assert.equal(reply.headers.server, 'jibe');
    assert.equal(lastLog().flags, 'UF');
  });

  it('answers 503 with UC when the upstream resets before answering', async () => {
    const reply = await request(port, { headers: { host: 'reset' } });
    assert.equal(reply.status, 503);
    assert.match(reply.body, /connection termination/);
    assert.equal(lastLog().flags, 'UC');
  });

  it('answers 502 when the upstream sends a header with invalid characters', async () => {
    const reply = await request(port, { headers: { host: 'bad' } });
    assert.equal(reply.status, 502);
    assert.equal(lastLog().flags, 'UPE');
  });

  it('records the NR flag with a 404 and the UH flag with a 503', async () => {
    await request(port, { headers: { host: 'nowhere' } });
    assert.equal(lastLog().flags, 'NR');
    assert.equal(lastLog().status, 404);
    const reply = await request(port, { headers: { host: 'unhealthy' } });
    assert.equal(reply.status, 503);
    assert.equal(reply.body, 'no healthy upstream');
    assert.equal(lastLog().flags, 'UH');
  });

  it('answers 504 with UT when the route timeout passes', async () => {
    const reply = await request(port, { path: '/timeout', headers: { host: 'hold' } });
    assert.equal(reply.status, 504);
    assert.equal(reply.body, 'upstream request timeout');
    assert.equal(lastLog().flags, 'UT');
  });

  it('resets the upstream request when the client goes away (DC)', async () => {
    const closedBefore = heldClosed;
    const seenBefore = hold.requests.length;
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => {});
    socket.write('GET /wait HTTP/1.1\r\nHost: hold\r\n\r\n');
    while (hold.requests.length === seenBefore) await new Promise((r) => setTimeout(r, 5));
    socket.destroy();
    while (heldClosed === closedBefore) await new Promise((r) => setTimeout(r, 5));
    while (lastLog().path !== '/wait') await new Promise((r) => setTimeout(r, 5));
    assert.equal(lastLog().flags, 'DC');
  });

  it('answers a malformed request line with 400 and keeps serving', async () => {
    const reply = await rawRequest(port, 'THIS IS NOT HTTP\r\n\r\n');
    assert.match(reply, /^HTTP\/1.1 400 Bad Request/);
    const headerOverflow = await rawRequest(port, `GET / HTTP/1.1\r\nHost: echo\r\nx-big: ${'a'.repeat(20000)}\r\n\r\n`);
    assert.match(headerOverflow, /^HTTP\/1.1 431/);
    const spaceInHeader = await rawRequest(port, 'GET / HTTP/1.1\r\nHost: echo\r\nBad Header: x\r\n\r\n');
    assert.match(spaceInHeader, /^HTTP\/1.1 400/);
    assert.equal((await request(port, { headers: { host: 'echo' } })).status, 200);
  });

  it('survives hostile traffic and keeps serving', async () => {
    const nasty = [
      // The HTTP/2 preface followed by bytes that are not a SETTINGS frame: GOAWAY and close.
      'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nthis is not an HTTP/2 frame at all\r\n\r\n',
      // Almost the preface: not HTTP/2, and PRI is no HTTP/1.1 method either.
      'PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n',
      'GET / HTTP/1.1\r\nHost: echo\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      'POST / HTTP/1.1\r\nHost: echo\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\nnot a chunk\r\n',
      'GET / HTTP/1.1\r\nHost: echo\r\nX-Nul: a\u0000b\r\n\r\n',
      `GET /${'x'.repeat(70000)} HTTP/1.1\r\nHost: echo\r\n\r\n`,
      'GET http:///nohost HTTP/1.1\r\nHost: echo\r\nConnection: close\r\n\r\n',
      'GET https://echo/ HTTP/1.1\r\nHost: echo\r\nConnection: close\r\n\r\n',
      'CONNECT not-an-authority HTTP/1.1\r\nHost: x\r\n\r\n',
      'BREW / HTTP/1.1\r\nHost: echo\r\n\r\n',
      '\u0016\u0003\u0001\u0002\u0000\u0001\u0000\u0001\u00fc\u0003\u0003',
    ];
    for (const payload of nasty) {
      const reply = await rawRequest(port, payload).catch(() => '');
      assert.doesNotMatch(reply, /^HTTP\/1.1 [23]/, `accepted: ${JSON.stringify(payload.slice(0, 40))}`);
    }
    // A client that promises a body and leaves halfway.
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => {});
    socket.write('POST /upload HTTP/1.1\r\nHost: sink\r\nContent-Length: 1000000\r\n\r\npartial');
    await new Promise((r) => setTimeout(r, 20));
    socket.destroy();
    assert.equal((await request(port, { headers: { host: 'echo' } })).status, 200);
  });

  it('keeps counters for /stats', () => {
    const s = proxy.stats;
    assert.ok(s.downstream_rq_total > 0);
    assert.ok(s.downstream_rq_2xx > 0);
    assert.ok(s.downstream_rq_4xx > 0);
    assert.ok(s.downstream_rq_5xx > 0);
    assert.ok(s.cluster('echo').upstream_cx_total >= 1);
    assert.ok(s.cluster('down').upstream_cx_connect_fail >= 1);
  });
});
