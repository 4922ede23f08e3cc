import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Http1RequestParser } from '../../../proxy/http1/http1-request-parser.ts';
import type { Http1RequestHead } from '../../../proxy/http1/http1-request-parser.ts';

interface Message {
  head: Http1RequestHead;
  body: string;
  complete: boolean;
}

interface Run {
  messages: Message[];
  error: string;
  status: number;
}

/** Feeds `pieces` in order, resetting after each complete message as the server connection does. */
function run(pieces: readonly (string | Buffer)[]): Run {
  const messages: Message[] = [];
  let current: Message | undefined;
  const parser = new Http1RequestParser({
    onRequestHead(head) {
      current = { head, body: '', complete: false };
      messages.push(current);
    },
    onRequestBody(chunk) {
      assert.ok(current !== undefined && !current.complete, 'body only inside a message');
      current.body += chunk.toString('latin1');
    },
    onRequestComplete() {
      assert.ok(current !== undefined && !current.complete, 'completes once');
      current.complete = true;
    },
  });
  for (const piece of pieces) {
    const chunk = typeof piece === 'string' ? Buffer.from(piece, 'latin1') : piece;
    let pos = 0;
    while (pos < chunk.length) {
      if (parser.complete) parser.reset();
      pos = parser.execute(chunk, pos);
      if (pos < 0) return { messages, error: parser.error, status: parser.errorStatus };
    }
  }
  return { messages, error: '', status: 0 };
}

/** Every way of cutting `text` in two. */
function everySplit(text: string, check: (r: Run) => void): void {
  for (let i = 0; i <= text.length; i++) check(run([text.slice(0, i), text.slice(i)]));
}

const GET = 'GET /a?b=c HTTP/1.1\r\nHost: reviews:9080\r\nX-Multi: 1\r\nx-multi: 2\r\n\r\n';
const CHUNKED = 'POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\nY: u\r\n\r\n';

describe('http1 request parser', () => {
  it('parses a head split at every byte', () => {
    everySplit(GET, (r) => {
      assert.equal(r.error, '');
      assert.equal(r.messages.length, 1);
      const { head, complete } = r.messages[0];
      assert.equal(head.method, 'GET');
      assert.equal(head.target, '/a?b=c');
      assert.equal(head.minor, 1);
      assert.deepEqual(head.headers, ['Host', 'reviews:9080', 'X-Multi', '1', 'x-multi', '2']);
      assert.equal(head.keepAlive, true);
      assert.equal(head.hasBody, false);
      assert.equal(complete, true);
    });
  });

  it('de-frames a chunked body with extensions and trailers, split at every byte', () => {
    everySplit(CHUNKED, (r) => {
      assert.equal(r.error, '');
      assert.equal(r.messages.length, 1);
      assert.equal(r.messages[0].head.chunked, true);
      assert.equal(r.messages[0].body, 'hello world');
      assert.equal(r.messages[0].complete, true);
    });
    const bytes = run(CHUNKED.split(''));
    assert.equal(bytes.messages[0].body, 'hello world');
  });

  it('reads a content-length body and stops at its end', () => {
    const text = 'PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nabcdeGET / HTTP/1.1\r\nHost: h\r\n\r\n';
    everySplit(text, (r) => {
      assert.equal(r.error, '');
      assert.equal(r.messages.length, 2);
      assert.equal(r.messages[0].body, 'abcde');
      assert.equal(r.messages[1].head.method, 'GET');
      assert.equal(r.messages[1].body, '');
    });
  });

  it('keeps pipelined requests in order and stops at each message end', () => {
    const parser = new Http1RequestParser({ onRequestHead() {}, onRequestBody() {}, onRequestComplete() {} });
    const chunk = Buffer.from(GET + CHUNKED + GET, 'latin1');
    const first = parser.execute(chunk, 0);
    assert.equal(first, GET.length, 'stops after the first message');
    assert.equal(parser.complete, true);
    assert.equal(parser.execute(chunk, first), first, 'reads nothing until reset');
    parser.reset();
    assert.equal(parser.execute(chunk, first), GET.length + CHUNKED.length);
    const r = run([GET + CHUNKED + GET]);
    assert.deepEqual(r.messages.map((m) => m.head.method), ['GET', 'POST', 'GET']);
  });

  it('decides keep-alive by version and connection header; sees expect: 100-continue', () => {
    assert.equal(run(['GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n']).messages[0].head.keepAlive, false);
    assert.equal(run(['GET / HTTP/1.0\r\n\r\n']).messages[0].head.keepAlive, false);
    assert.equal(run(['GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n']).messages[0].head.keepAlive, true);
    const expect = run(['POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n']).messages[0].head;
    assert.equal(expect.expectContinue, true);
    assert.equal(expect.hasBody, true);
  });

  it('accepts absolute-form, asterisk-form and authority-form for CONNECT', () => {
    assert.equal(run(['GET http://reviews:9080/x HTTP/1.1\r\nHost: reviews\r\n\r\n']).messages[0].head.target, 'http://reviews:9080/x');
    assert.equal(run(['OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n']).messages[0].head.target, '*');
    const connect = run(['CONNECT reviews:9080 HTTP/1.1\r\n\r\n']).messages[0];
    assert.equal(connect.head.target, 'reviews:9080');
    assert.equal(connect.complete, true);
  });

  it('answers oversized heads and too many headers with 431', () => {
    const big = run([`GET / HTTP/1.1\r\nHost: h\r\nx: ${'a'.repeat(20_000)}\r\n\r\n`]);
    assert.equal(big.status, 431);
    const unterminated = run(['GET / HTTP/1.1\r\n', ...Array.from({ length: 40 }, () => `x: ${'a'.repeat(1000)}\r\n`)]);
    assert.equal(unterminated.status, 431);
    let many = 'GET / HTTP/1.1\r\nHost: h\r\n';
    for (let i = 0; i < 100; i++) many += `h${i}: v\r\n`;
    assert.equal(run([many + '\r\n']).status, 431);
  });

  it('refuses malformed requests with 400', () => {
    const bad = [
      'THIS IS NOT HTTP\r\n\r\n',
      'PRI * HTTP/2.0\r\n\r\n',
      'BREW / HTTP/1.1\r\nHost: h\r\n\r\n',
      'GET / HTTP/1.1\r\n\r\n',
      'GET /a b HTTP/1.1\r\nHost: h\r\n\r\n',
      'GET / HTTP/1.1\r\nHost: h\r\nBad Header: x\r\n\r\n',
      'GET / HTTP/1.1\r\nHost: h\r\nX: a\u0000b\r\n\r\n',
      'GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n',
      'GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n folded\r\n\r\n',
      'GET / HTTP/1.1\r\nHost: h\r\nHost: i\r\n\r\n',
      'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n',
      'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n',
      'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n',
      'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n',
      'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\n',
      'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n',
      'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\nabc',
      'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: \u0001\r\n\r\n',
      '\u0016\u0003\u0001\u0002\u0000\u0001',
    ];
    for (const text of bad) {
      const r = run([text]);
      assert.equal(r.status, 400, JSON.stringify(text));
      assert.notEqual(r.error, '');
    }
  });

  it('accepts equal repeated content-lengths and skips empty lines before a request', () => {
    const r = run(['\r\nPOST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2, 2\r\n\r\nok']);
    assert.equal(r.error, '');
    assert.equal(r.messages[0].body, 'ok');
  });
});
