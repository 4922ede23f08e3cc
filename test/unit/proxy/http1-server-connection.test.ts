import assert from 'node:assert/strict';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Http1ServerConnection } from '../../../proxy/http1/http1-server-connection.ts';

interface Owner {
  path: string;
  body: string;
}

/** Answers every request with its path and body; `/stream` answers without a length (chunked). */
function serve(conn: Http1ServerConnection<Owner>): void {
  const owner = { path: conn.target, body: '' };
  conn.current = owner;
  conn.readBody();
}

function answer(conn: Http1ServerConnection<Owner>, owner: Owner): void {
  const text = `${owner.path}:${owner.body}`;
  if (owner.path === '/stream') {
    conn.writeHead(200, ['x-a', '1'], true);
    conn.write(Buffer.from(text));
    conn.end();
  } else {
    conn.writeHead(200, ['content-length', String(text.length)], true);
    conn.end(Buffer.from(text));
  }
}

describe('http1 server connection', () => {
  let server: net.Server;
  let port = 0;
  const done: string[] = [];

  before(async () => {
    server = net.createServer({ allowHalfOpen: true }, (socket) => {
      const conn: Http1ServerConnection<Owner> = new Http1ServerConnection<Owner>(socket, {
        request: serve,
        connect: () => {
          socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
          return true;
        },
        body: (owner, chunk) => {
          owner.body += chunk.toString();
        },
        bodyEnd: (owner) => answer(conn, owner),
        drain: () => {},
        done: (owner) => done.push(owner.path),
        clientError: () => {},
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });

  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  /** Writes `pieces` one by one and reads until the server closes. */
  function exchange(pieces: string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1');
      const chunks: Buffer[] = [];
      socket.on('data', (c: Buffer) => chunks.push(c));
      socket.on('end', () => resolve(Buffer.concat(chunks).toString('latin1')));
      socket.on('error', reject);
      socket.setNoDelay(true);
      let i = 0;
      const next = () => {
        if (i === pieces.length) return;
        socket.write(pieces[i++]);
        setTimeout(next, 2);
      };
      next();
    });
  }

  it('answers pipelined requests in order, body-less and with bodies', async () => {
    const out = await exchange([
      'GET /1 HTTP/1.1\r\nHost: h\r\n\r\nPOST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcPOST /3 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nxy\r\n0\r\nT: 1\r\n\r\nGET /4 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n',
    ]);
    const bodies = out.split(/HTTP\/1\.1 200 OK\r\n/).filter((s) => s !== '').map((s) => s.slice(s.indexOf('\r\n\r\n') + 4));
    assert.deepEqual(bodies, ['/1:', '/2:abc', '/3:xy', '/4:']);
    assert.match(out, /connection: close\r\n\r\n\/4:$/);
  });

  it('reads heads and bodies split across packets, and frames unsized answers as chunked', async () => {
    const out = await exchange(['PO', 'ST /stream HTTP/1.1\r\nHo', 'st: h\r\nContent-Length: 4\r\nConnection: close\r\n\r\nab', 'cd']);
    assert.match(out, /^HTTP\/1\.1 200 OK\r\nx-a: 1\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\nc\r\n\/stream:abcd\r\n0\r\n\r\n$/);
  });

  it('answers 100 Continue, keeps HTTP/1.0 keep-alive, and closes plain HTTP/1.0', async () => {
    const cont = await exchange(['POST /c HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\nConnection: close\r\n\r\n', 'z']);
    assert.match(cont, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n/);
    const ten = await exchange(['GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\n\r\n']);
    assert.match(ten, /connection: keep-alive\r\n\r\n\/a:HTTP\/1\.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\n\/b:$/);
  });

  it('reads the bytes after a CONNECT as requests, and answers malformed ones with 400', async () => {
    const tunnel = await exchange(['CONNECT h:80 HTTP/1.1\r\nHost: h:80\r\n\r\nGET /in HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n']);
    assert.match(tunnel, /^HTTP\/1\.1 200 Connection Established\r\n\r\nHTTP\/1\.1 200 OK\r\n[^]*\/in:$/);
    const bad = await exchange(['GET / HTTP/1.1\r\nHost: h\r\nBad Header: x\r\n\r\n']);
    assert.match(bad, /^HTTP\/1\.1 400 Bad Request\r\n[^]*connection: close/);
    const big = await exchange([`GET / HTTP/1.1\r\nHost: h\r\nx: ${'a'.repeat(20_000)}\r\n\r\n`]);
    assert.match(big, /^HTTP\/1\.1 431 /);
  });

  it('reports a request whose client left before the answer as done, unfinished', async () => {
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => {});
    socket.write('POST /gone HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nab');
    while (!done.includes('/gone')) {
      await new Promise((r) => setTimeout(r, 5));
      if (!socket.destroyed) socket.destroy();
    }
    assert.ok(done.includes('/gone'));
  });
});
