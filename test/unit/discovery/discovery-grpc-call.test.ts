// The proxy's own gRPC call over node:http2, against raw HTTP/2 servers that
// misbehave the ways real servers and middleboxes do: answers that are not gRPC,
// trailers-only errors, resets, messages split across DATA frames, oversized and
// compressed messages. (Against grpc-js's real server it is covered by
// discovery-client.test.ts.)
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { GrpcBidiCall } from '../../../proxy/discovery/discovery-grpc-call.ts';
import type { GrpcStatus } from '../../../proxy/discovery/discovery-grpc-call.ts';

const PATH = '/jibe.discovery.v1.AggregatedDiscovery/StreamResources';

function frame(payload: Buffer, flag = 0): Buffer {
  const header = Buffer.alloc(5);
  header[0] = flag;
  header.writeUInt32BE(payload.length, 1);
  return Buffer.concat([header, payload]);
}

async function server(t: TestContext, onStream: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void): Promise<string> {
  const s = http2.createServer();
  s.on('stream', (stream, headers) => {
    stream.on('error', () => {}); // resets the tests provoke
    onStream(stream, headers);
  });
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => s.close(() => resolve())));
  const address = s.address();
  assert.ok(address && typeof address === 'object');
  return `127.0.0.1:${address.port}`;
}

function call(address: string, maxReceiveBytes = 1024): { call: GrpcBidiCall; messages: string[]; status: Promise<GrpcStatus> } {
  const messages: string[] = [];
  let resolveStatus: (status: GrpcStatus) => void = () => {};
  const status = new Promise<GrpcStatus>((resolve) => (resolveStatus = resolve));
  const c = new GrpcBidiCall({
    address,
    path: PATH,
    maxReceiveBytes,
    keepaliveMs: 0,
    keepaliveTimeoutMs: 1000,
    connectTimeoutMs: 5000,
    userAgent: 'test',
    onMessage: (m) => messages.push(m.toString()),
    onStatus: resolveStatus,
  });
  return { call: c, messages, status };
}

test('sends a standard gRPC request and reads messages split and coalesced across DATA frames', async (t) => {
  let seen: http2.IncomingHttpHeaders | undefined;
  const received: Buffer[] = [];
  const address = await server(t, (stream, headers) => {
    seen = headers;
    stream.on('data', (chunk: Buffer) => {
      received.push(chunk);
      if (Buffer.concat(received).length < 8) return;
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      const all = Buffer.concat([frame(Buffer.from('first')), frame(Buffer.alloc(0)), frame(Buffer.from('second message'))]);
      // One byte at a time for the first 9 bytes, the rest in one write.
      for (let i = 0; i < 9; i++) stream.write(all.subarray(i, i + 1));
      stream.end(all.subarray(9));
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'grpc-message': '' }));
    });
  });
  const c = call(address);
  c.call.write(Buffer.from('abc'));
  const status = await c.status;
  assert.deepEqual(status, { code: 0, details: '' });
  assert.deepEqual(c.messages, ['first', '', 'second message']);
  assert.equal(seen?.[':method'], 'POST');
  assert.equal(seen?.[':path'], PATH);
  assert.equal(seen?.te, 'trailers');
  assert.match(String(seen?.['content-type']), /^application\/grpc/);
  assert.deepEqual(Buffer.concat(received), frame(Buffer.from('abc')));
});

test('a trailers-only error answer gives its status and percent-decoded message', async (t) => {
  const address = await server(t, (stream) => {
    stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '8', 'grpc-message': 'queue%20full%3A%20resubscribe' }, { endStream: true });
  });
  assert.deepEqual(await call(address).status, { code: 8, details: 'queue full: resubscribe' });
});

test('an answer that is not gRPC maps to the gRPC code for its HTTP status', async (t) => {
  const address = await server(t, (stream, headers) => {
    const code = headers[':path'] === PATH ? 503 : 404;
    stream.respond({ ':status': code, 'content-type': 'text/html' });
    stream.end('<html>busy</html>');
  });
  const status = await call(address).status;
  assert.equal(status.code, 14);
  assert.match(status.details, /HTTP 503/);
});

test('a reset stream, a refused connection, an oversized and a compressed message each end the call once', async (t) => {
  const reset = await server(t, (stream) => {
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
    stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
  });
  const resetStatus = await call(reset).status;
  assert.equal(resetStatus.code, 13);
  assert.match(resetStatus.details, /without a gRPC status/);

  const big = await server(t, (stream) => {
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
    stream.write(frame(Buffer.alloc(2048)));
  });
  const bigCall = call(big);
  const bigStatus = await bigCall.status;
  assert.equal(bigStatus.code, 8);
  assert.match(bigStatus.details, /larger than max \(2048 vs\. 1024\)/);
  assert.deepEqual(bigCall.messages, []);

  const compressed = await server(t, (stream) => {
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
    stream.write(frame(Buffer.from('zz'), 1));
  });
  assert.match((await call(compressed).status).details, /compressed/);

  // A port that was just free: nothing listens there any more.
  const s = http2.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const freed = (s.address() as { port: number }).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  const refused = await call(`127.0.0.1:${freed}`).status;
  assert.equal(refused.code, 14);
  assert.match(refused.details, /ECONNREFUSED/);
});

test('cancel() resets the stream and reports nothing', async (t) => {
  let serverSawClose: () => void = () => {};
  const closed = new Promise<void>((resolve) => (serverSawClose = resolve));
  const address = await server(t, (stream) => {
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
    stream.write(frame(Buffer.from('hello')));
    stream.on('close', () => serverSawClose());
  });
  const c = call(address);
  let ended = false;
  void c.status.then(() => (ended = true));
  while (c.messages.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
  c.call.cancel();
  await closed;
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(ended, false);
  assert.deepEqual(c.messages, ['hello']);
});
