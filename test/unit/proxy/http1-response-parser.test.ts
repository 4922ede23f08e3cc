import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  FRAMING_CHUNKED,
  FRAMING_CLOSE,
  FRAMING_LENGTH,
  FRAMING_NONE,
  Http1ResponseParser,
} from '../../../proxy/http1/http1-response-parser.ts';

interface Parsed {
  status: number;
  headers: string[];
  body: string;
  complete: boolean;
  heads: number;
  ok: boolean;
  error: string;
  keepAlive: boolean;
  framing: number;
  parser: Http1ResponseParser;
}

/** Feeds `pieces` one after another and records what the parser reported. */
function parse(pieces: readonly (string | Buffer)[], options: { head?: boolean; eof?: boolean } = {}): Parsed {
  const out = { status: 0, headers: [] as string[], body: [] as Buffer[], complete: false, heads: 0 };
  const parser = new Http1ResponseParser({
    onResponseHead(status, headers) {
      out.status = status;
      out.headers = headers;
      out.heads++;
    },
    onResponseBody(chunk) {
      assert.equal(out.complete, false, 'no body after the end');
      out.body.push(Buffer.from(chunk));
    },
    onResponseComplete() {
      assert.equal(out.complete, false, 'completes once');
      out.complete = true;
    },
  });
  parser.expect(options.head ?? false);
  let ok = true;
  for (const piece of pieces) {
    if (!parser.execute(typeof piece === 'string' ? Buffer.from(piece, 'latin1') : piece)) {
      ok = false;
      break;
    }
  }
  if (ok && options.eof) parser.finish();
  return {
    status: out.status,
    headers: out.headers,
    body: Buffer.concat(out.body).toString('latin1'),
    complete: out.complete,
    heads: out.heads,
    ok,
    error: parser.error,
    keepAlive: parser.keepAlive,
    framing: parser.framing,
    parser,
  };
}

/** Every way of cutting `text` in two, plus one byte at a time. */
function splits(text: string): string[][] {
  const out: string[][] = [];
  for (let i = 1; i < text.length; i++) out.push([text.slice(0, i), text.slice(i)]);
  out.push(text.split(''));
  return out;
}

const LENGTH_RESPONSE = 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\nX-Empty:\r\n\r\nhello world';
const CHUNKED_RESPONSE =
  'HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nTrailer: x-sum\r\n\r\n' +
  '5;name=value;quoted="a b"\r\nhello\r\n' +
  '1 \r\n \r\n' +
  'A\r\n0123456789\r\n' +
  '0;last\r\nx-sum: 42\r\nx-other:  y\r\n\r\n';

describe('Http1ResponseParser', () => {
  it('parses a content-length response split at every byte boundary', () => {
    for (const pieces of splits(LENGTH_RESPONSE)) {
      const r = parse(pieces);
      assert.equal(r.ok, true, r.error);
      assert.equal(r.status, 200);
      assert.deepEqual(r.headers, ['Content-Type', 'text/plain', 'Content-Length', '11', 'X-Empty', '']);
      assert.equal(r.body, 'hello world');
      assert.equal(r.complete, true);
      assert.equal(r.keepAlive, true);
      assert.equal(r.framing, FRAMING_LENGTH);
    }
  });

  it('parses chunked bodies with extensions and trailers split at every byte boundary', () => {
    for (const pieces of splits(CHUNKED_RESPONSE)) {
      const r = parse(pieces);
      assert.equal(r.ok, true, `${r.error} at ${JSON.stringify(pieces[0])}`);
      assert.equal(r.status, 201);
      assert.equal(r.body, 'hello 0123456789');
      assert.equal(r.complete, true);
      assert.equal(r.framing, FRAMING_CHUNKED);
      assert.equal(r.keepAlive, true);
    }
  });

  it('reads until close when the response has no framing, and never reuses that connection', () => {
    const r = parse(['HTTP/1.1 200 OK\r\nServer: x\r\n\r\nsome', ' bytes'], { eof: true });
    assert.equal(r.ok, true);
    assert.equal(r.body, 'some bytes');
    assert.equal(r.complete, true);
    assert.equal(r.framing, FRAMING_CLOSE);
    assert.equal(r.keepAlive, false);
    const cut = parse(['HTTP/1.1 200 OK\r\n\r\npartial']);
    assert.equal(cut.complete, false, 'not complete until the connection ends');
  });

  it('skips 1xx interim responses and parses the final one', () => {
    for (const pieces of splits('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\nA: b\r\n\r\n')) {
      const r = parse(pieces);
      assert.equal(r.ok, true, r.error);
      assert.equal(r.heads, 1);
      assert.equal(r.status, 204);
      assert.deepEqual(r.headers, ['A', 'b']);
      assert.equal(r.complete, true);
    }
    assert.equal(parse(['HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n']).ok, false);
  });

  it('completes HEAD, 204 and 304 responses at the end of the head, whatever length they announce', () => {
    const head = parse(['HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n'], { head: true });
    assert.equal(head.complete, true);
    assert.equal(head.framing, FRAMING_NONE);
    assert.equal(head.keepAlive, true);
    assert.equal(parse(['HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n']).complete, true);
    assert.equal(parse(['HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n']).complete, true);
    assert.equal(parse(['HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n']).complete, true);
  });

  it('decides connection reuse from the version and Connection', () => {
    assert.equal(parse(['HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n']).keepAlive, false);
    assert.equal(parse(['HTTP/1.1 200 OK\r\nConnection: Upgrade, Close\r\nContent-Length: 0\r\n\r\n']).keepAlive, false);
    assert.equal(parse(['HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n']).keepAlive, false);
    assert.equal(parse(['HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n']).keepAlive, true);
    // Both framings: chunked wins, and the connection is not trusted afterwards.
    const both = parse(['HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n']);
    assert.equal(both.body, 'abc');
    assert.equal(both.keepAlive, false);
  });

  it('accepts repeated equal content-lengths and rejects conflicting or malformed ones', () => {
    assert.equal(parse(['HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok']).body, 'ok');
    assert.equal(parse(['HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok']).body, 'ok');
    for (const value of ['2\r\nContent-Length: 3', '-1', '1e3', '0x10', '', '2, 3', '99999999999999999']) {
      assert.equal(parse([`HTTP/1.1 200 OK\r\nContent-Length: ${value}\r\n\r\n`]).ok, false, value);
    }
  });

  it('rejects malformed heads', () => {
    const bad = [
      'HTTP/1.1 200 OK\r\nX-Folded: a\r\n  b\r\n\r\n', // obs-fold
      'HTTP/1.1 200 OK\r\nX-Bad: a\u0001b\r\n\r\n',
      'HTTP/1.1 200 OK\r\nX-Nul: a\u0000b\r\n\r\n',
      'HTTP/1.1 200 OK\r\nX-Bare: a\rb\r\n\r\n',
      'HTTP/1.1 200 OK\r\nX-Lf: a\nb: c\r\n\r\n',
      'HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n',
      'HTTP/1.1 200 OK\r\nName : x\r\n\r\n',
      'HTTP/1.1 200 OK\r\n: x\r\n\r\n',
      'HTTP/1.1 200 OK\r\nno colon\r\n\r\n',
      'HTTP/2.0 200 OK\r\n\r\n',
      'HTTP/1.1 20 OK\r\n\r\n',
      'HTTP/1.1 2000 OK\r\n\r\n',
      'HTTP/1.1 099 Odd\r\n\r\n',
      'HTTP/1.1 600 Odd\r\n\r\n',
      'HTTP/1.1 200 O\u0007K\r\n\r\n',
      'HTTP/1.1\r\n\r\n',
      'SSH-2.0-OpenSSH\r\n\r\n',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n',
    ];
    for (const head of bad) {
      for (const pieces of [[head], head.split('')]) {
        const r = parse(pieces);
        assert.equal(r.ok, false, JSON.stringify(head));
        assert.notEqual(r.error, '');
        assert.equal(r.heads, 0);
      }
    }
  });

  it('rejects malformed chunk framing', () => {
    const bad = [
      'zz\r\n',
      '\r\n',
      '5\nhello\r\n0\r\n\r\n',
      '5\r\nhelloXX0\r\n\r\n',
      '5\r\nhello\r\n0\r\nx-t: a\u0001\r\n\r\n',
      '5\r\nhello\r\n0\r\n folded\r\n\r\n',
      '5\r\nhello\r\n0\r\nx: y\n\r\n',
      '5;ext\u0000\r\nhello\r\n',
      'fffffffffffffff\r\n',
      '5\r\x01',
    ];
    for (const body of bad) {
      const r = parse(['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n' + body]);
      assert.equal(r.ok, false, JSON.stringify(body));
      assert.equal(r.complete, false);
    }
  });

  it('limits the head to 64 KiB and 100 headers, and trailers to 64 KiB', () => {
    const big = 'HTTP/1.1 200 OK\r\nX-Big: ' + 'a'.repeat(64 * 1024) + '\r\n\r\n';
    assert.equal(parse([big]).ok, false);
    const pieces: string[] = [];
    for (let i = 0; i < big.length; i += 1000) pieces.push(big.slice(i, i + 1000));
    const r = parse(pieces);
    assert.equal(r.ok, false);
    assert.match(r.error, /64 KiB/);
    // Refused before the end of the head arrives: a peer that never ends its head is not buffered forever.
    assert.equal(parse(['HTTP/1.1 200 OK\r\nX-Big: ' + 'a'.repeat(70 * 1024)]).ok, false);
    let many = 'HTTP/1.1 200 OK\r\n';
    for (let i = 0; i < 100; i++) many += `h${i}: v\r\n`;
    assert.equal(parse([many + 'Content-Length: 0\r\n\r\n']).ok, false);
    assert.equal(parse([many + '\r\n'], { head: true }).ok, true, 'exactly 100 is allowed');
    const trailers = 'x: ' + 'b'.repeat(64 * 1024) + '\r\n\r\n';
    assert.equal(parse(['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n', trailers]).ok, false);
  });

  it('refuses bytes after the end of a response (they would poison a pooled connection)', () => {
    const r = parse(['HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA']);
    assert.equal(r.complete, true);
    assert.equal(r.ok, false);
  });

  it('passes body bytes through without copying a single-chunk body', () => {
    const chunk = Buffer.from('body');
    const seen: Buffer[] = [];
    const parser = new Http1ResponseParser({ onResponseHead() {}, onResponseBody: (c) => seen.push(c), onResponseComplete() {} });
    parser.expect(false);
    assert.equal(parser.execute(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n')), true);
    assert.equal(parser.execute(chunk), true);
    assert.equal(seen[0], chunk);
    assert.equal(parser.complete, false);
  });

  it('is reusable for the next response after expect()', () => {
    const statuses: number[] = [];
    let completions = 0;
    const parser = new Http1ResponseParser({ onResponseHead: (status) => statuses.push(status), onResponseBody() {}, onResponseComplete: () => completions++ });
    parser.expect(false);
    assert.equal(parser.execute(Buffer.from(LENGTH_RESPONSE)), true);
    parser.expect(false);
    assert.equal(parser.execute(Buffer.from('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n')), true);
    assert.deepEqual(statuses, [200, 404]);
    assert.equal(completions, 2);
    assert.equal(parser.complete, true);
  });
});
