// The raw-socket upstream path (proxy/http1) against a scripted upstream that
// writes exact bytes: chunked bodies with extensions and trailers, interim
// 1xx responses, read-until-close bodies, protocol errors, and when a
// connection may be reused.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import type { RunningProxy } from '../../../proxy/proxy.ts';
import { cluster, endpoints, fullUpdate, request, route, routeConfig, startSidecar, toCluster, vhost } from './proxy-test-helpers.ts';

/** Each answer is a list of writes; `null` ends the connection after them. */
const SCRIPTS: Record<string, Array<string | null>> = {
  '/chunked': ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-sum\r\n\r\n5;a=b\r\nhel', 'lo\r\n6\r\n world\r\n0\r\nx-sum: 1\r\n\r\n'],
  '/continue': ['HTTP/1.1 100 Continue\r\n\r\n', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nafter'],
  '/until-close': ['HTTP/1.1 200 OK\r\nX-Framing: none\r\n\r\nread ', 'until close', null],
  '/fold': ['HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 0\r\n\r\n'],
  '/keep': ['HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nkeep'],
  '/close': ['HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nclose'],
  '/truncated': ['HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc', null],
  '/head': ['HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n'],
  '/extra': ['HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA'],
};

describe('raw HTTP/1.1 upstream connections', () => {
  let proxy: RunningProxy;
  let port: number;
  let upstream: net.Server;
  let connections = 0;
  const logs: Array<Record<string, unknown>> = [];
  const lastLog = () => logs.filter((l) => l.msg === 'request').at(-1)!;

  before(async () => {
    upstream = net.createServer((socket) => {
      connections++;
      let pending = '';
      socket.on('error', () => {});
      socket.on('data', (chunk: Buffer) => {
        pending += chunk.toString('latin1');
        let end: number;
        while ((end = pending.indexOf('\r\n\r\n')) >= 0) {
          const path = pending.slice(0, pending.indexOf('\r\n')).split(' ')[1];
          pending = pending.slice(end + 4);
          for (const write of SCRIPTS[path] ?? ['HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n']) {
            if (write === null) socket.end();
            else socket.write(write);
          }
        }
      });
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const logger = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line)) });
    proxy = await startSidecar({ logger });
    port = proxy.ports.outbound!;
    await proxy.apply(
      fullUpdate([
        routeConfig('outbound', [vhost('raw', ['raw'], [route('all', [], toCluster('raw'))])]),
        cluster('raw'),
        endpoints('raw', [(upstream.address() as net.AddressInfo).port]),
      ]),
    );
  });

  after(async () => {
    await proxy.close();
    await new Promise<void>((resolve) => upstream.close(() => resolve()));
  });

  const get = (path: string, method = 'GET') => request(port, { path, method, headers: { host: 'raw' } });

  it('removes chunk framing, extensions and trailers and re-frames for the client', async () => {
    const reply = await get('/chunked');
    assert.equal(reply.status, 200);
    assert.equal(reply.body, 'hello world');
    assert.equal(reply.headers.trailer, undefined);
    assert.equal(reply.headers['x-sum'], undefined);
  });

  it('skips 100 Continue and forwards the final response', async () => {
    const reply = await get('/continue');
    assert.equal(reply.status, 200);
    assert.equal(reply.body, 'after');
  });

  it('forwards a body that ends with the connection', async () => {
    const reply = await get('/until-close');
    assert.equal(reply.status, 200);
    assert.equal(reply.body, 'read until close');
    assert.equal(reply.headers['x-framing'], 'none');
  });

  it('answers 502 UPE for obs-fold in an upstream head', async () => {
    const reply = await get('/fold');
    assert.equal(reply.status, 502);
    assert.equal(lastLog().flags, 'UPE');
  });

  it('cuts the client off when the upstream ends a body short (UC)', async () => {
    await assert.rejects(get('/truncated'));
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(lastLog().flags, 'UC,DC');
  });

  it('does not wait for a body after HEAD', async () => {
    const reply = await get('/head', 'HEAD');
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['content-length'], '100');
    assert.equal(reply.body, '');
  });

  it('delivers a complete response followed by stray bytes, then drops that connection', async () => {
    await get('/keep');
    const before = connections;
    const reply = await get('/extra');
    assert.equal(reply.status, 200);
    assert.equal(reply.body, 'ok');
    assert.equal(lastLog().flags, '-');
    assert.equal((await get('/keep')).body, 'keep');
    assert.equal(connections, before + 1, 'the connection that carried stray bytes is not reused');
  });

  it('reuses a connection after a framed response and not after connection: close', async () => {
    await get('/keep');
    const before = connections;
    for (let i = 0; i < 5; i++) assert.equal((await get('/keep')).body, 'keep');
    assert.equal(connections, before, 'framed responses keep the connection');
    for (let i = 0; i < 3; i++) assert.equal((await get('/close')).body, 'close');
    assert.equal((await get('/keep')).body, 'keep');
    assert.equal(connections, before + 3, 'each connection: close answer costs its connection');
  });
});
