import { test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { HpackDecoder, HpackEncoder, HpackError, writeHpackInteger } from '../../../proxy/http2/hpack.ts';
import {
  HUFFMAN_ERR_EOS,
  HUFFMAN_ERR_PADDING,
  huffmanDecode,
  huffmanEncode,
  huffmanEncodedLength,
  huffmanMaxDecodedLength,
} from '../../../proxy/http2/hpack-huffman.ts';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function decodeAll(decoder: HpackDecoder, block: Buffer): string[] {
  const out: string[] = [];
  decoder.decode(block, out);
  return out;
}

interface Step {
  block: string;
  fields: string[];
  table: Array<[string, string]>;
  size: number;
}

function runSeries(tableSize: number, steps: Step[]): void {
  const decoder = new HpackDecoder(tableSize);
  for (const [i, step] of steps.entries()) {
    assert.deepEqual(decodeAll(decoder, hex(step.block)), step.fields, `fields of block ${i + 1}`);
    assert.deepEqual(decoder.tableEntries(), step.table, `table after block ${i + 1}`);
    assert.equal(decoder.tableSize, step.size, `table size after block ${i + 1}`);
  }
}

// RFC 7541 C.3 / C.4 carry the same header lists; only the string coding differs.
const REQUEST_FIELDS = [
  [':method', 'GET', ':scheme', 'http', ':path', '/', ':authority', 'www.example.com'],
  [':method', 'GET', ':scheme', 'http', ':path', '/', ':authority', 'www.example.com', 'cache-control', 'no-cache'],
  [':method', 'GET', ':scheme', 'https', ':path', '/index.html', ':authority', 'www.example.com', 'custom-key', 'custom-value'],
];
const REQUEST_TABLES: Array<Array<[string, string]>> = [
  [[':authority', 'www.example.com']],
  [['cache-control', 'no-cache'], [':authority', 'www.example.com']],
  [['custom-key', 'custom-value'], ['cache-control', 'no-cache'], [':authority', 'www.example.com']],
];
const REQUEST_SIZES = [57, 110, 164];
const C3_BLOCKS = [
  '8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d',
  '8286 84be 5808 6e6f 2d63 6163 6865',
  '8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65',
];
const C4_BLOCKS = [
  '8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff',
  '8286 84be 5886 a8eb 1064 9cbf',
  '8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf',
];

const DATE1 = 'Mon, 21 Oct 2013 20:13:21 GMT';
const DATE2 = 'Mon, 21 Oct 2013 20:13:22 GMT';
const LOCATION = 'https://www.example.com';
const COOKIE = 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1';
const RESPONSE_FIELDS = [
  [':status', '302', 'cache-control', 'private', 'date', DATE1, 'location', LOCATION],
  [':status', '307', 'cache-control', 'private', 'date', DATE1, 'location', LOCATION],
  [':status', '200', 'cache-control', 'private', 'date', DATE2, 'location', LOCATION, 'content-encoding', 'gzip', 'set-cookie', COOKIE],
];
const RESPONSE_TABLES: Array<Array<[string, string]>> = [
  [['location', LOCATION], ['date', DATE1], ['cache-control', 'private'], [':status', '302']],
  [[':status', '307'], ['location', LOCATION], ['date', DATE1], ['cache-control', 'private']],
  [['set-cookie', COOKIE], ['content-encoding', 'gzip'], ['date', DATE2]],
];
const RESPONSE_SIZES = [222, 222, 215];

function steps(blocks: string[], fields: string[][], tables: Array<Array<[string, string]>>, sizes: number[]): Step[] {
  return blocks.map((block, i) => ({ block, fields: fields[i], table: tables[i], size: sizes[i] }));
}

test('RFC 7541 C.1: integer representation', () => {
  const buf = Buffer.alloc(8);
  assert.equal(writeHpackInteger(buf, 0, 5, 0, 10), 1);
  assert.deepEqual(buf.subarray(0, 1), hex('0a'));
  assert.equal(writeHpackInteger(buf, 0, 5, 0, 1337), 3);
  assert.deepEqual(buf.subarray(0, 3), hex('1f9a0a'));
  assert.equal(writeHpackInteger(buf, 0, 8, 0, 42), 1);
  assert.deepEqual(buf.subarray(0, 1), hex('2a'));

  // The decoder reads the same integers through a table size update (5-bit prefix).
  const decoder = new HpackDecoder();
  decoder.decode(hex('2a'), []);
  assert.equal(decoder.maxTableSize, 10);
  decoder.decode(hex('3f9a0a'), []);
  assert.equal(decoder.maxTableSize, 1337);
});

test('RFC 7541 C.2.1-C.2.4: single representations', () => {
  runSeries(4096, [{
    block: '400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572',
    fields: ['custom-key', 'custom-header'],
    table: [['custom-key', 'custom-header']],
    size: 55,
  }]);
  runSeries(4096, [{ block: '040c 2f73 616d 706c 652f 7061 7468', fields: [':path', '/sample/path'], table: [], size: 0 }]);
  runSeries(4096, [{ block: '1008 7061 7373 776f 7264 0673 6563 7265 74', fields: ['password', 'secret'], table: [], size: 0 }]);
  runSeries(4096, [{ block: '82', fields: [':method', 'GET'], table: [], size: 0 }]);
});

test('RFC 7541 C.3: requests without Huffman on one decoder', () => {
  runSeries(4096, steps(C3_BLOCKS, REQUEST_FIELDS, REQUEST_TABLES, REQUEST_SIZES));
});

test('RFC 7541 C.4: requests with Huffman on one decoder', () => {
  runSeries(4096, steps(C4_BLOCKS, REQUEST_FIELDS, REQUEST_TABLES, REQUEST_SIZES));
});

test('RFC 7541 C.5: responses without Huffman, 256-octet table, eviction', () => {
  runSeries(256, steps([
    `4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
     2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70
     6c65 2e63 6f6d`,
    '4803 3330 37c1 c0bf',
    `88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
     54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
     5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e
     3d31`,
  ], RESPONSE_FIELDS, RESPONSE_TABLES, RESPONSE_SIZES));
});

test('RFC 7541 C.6: responses with Huffman, 256-octet table, eviction', () => {
  runSeries(256, steps([
    `4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
     2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3`,
    '4883 640e ffc1 c0bf',
    `88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
     77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
     9587 3160 65c0 03ed 4ee5 b106 3d50 07`,
  ], RESPONSE_FIELDS, RESPONSE_TABLES, RESPONSE_SIZES));
});

test('encoder reproduces the RFC 7541 C.3 and C.4 blocks byte for byte', () => {
  for (const [huffman, blocks] of [[false, C3_BLOCKS], [true, C4_BLOCKS]] as const) {
    const encoder = new HpackEncoder({ huffman });
    for (const [i, fields] of REQUEST_FIELDS.entries()) {
      assert.equal(encoder.encode(fields).toString('hex'), hex(blocks[i]).toString('hex'), `huffman=${huffman} block ${i + 1}`);
    }
    assert.deepEqual(encoder.tableEntries(), REQUEST_TABLES[2]);
    assert.equal(encoder.tableSize, 164);
  }
});

test('decode returns the RFC header list size and stops appending past maxListSize, keeping the table in step', () => {
  const decoder = new HpackDecoder(256);
  const out: string[] = [];
  const first = hex(`4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
    2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d`);
  // 42 + 52 + 65 + 63 octets; the second field already passes 80.
  assert.equal(decoder.decode(first, out, 80), 222);
  assert.deepEqual(out, [':status', '302']);
  assert.deepEqual(decoder.tableEntries(), RESPONSE_TABLES[0]);
  const second: string[] = [];
  assert.equal(decoder.decode(hex('4803 3330 37c1 c0bf'), second), 222);
  assert.deepEqual(second, RESPONSE_FIELDS[1]);
});

test('encoder: never-indexed credentials, unindexed per-request values, indexed repeats', () => {
  const encoder = new HpackEncoder();
  const decoder = new HpackDecoder();
  const fields = [
    ':status', '201',
    'authorization', 'Bearer abc',
    'proxy-authorization', 'Basic xyz',
    'set-cookie', 'a=b',
    'cookie', 'short=1',
    ':path', '/a/b',
    'x-request-id', 'f00d',
    'content-length', '12',
  ];
  const block = encoder.encode(fields);
  assert.deepEqual(decodeAll(decoder, block), fields);
  assert.deepEqual(encoder.tableEntries(), [], 'nothing in the list may be indexed');
  // authorization is static name 23: never indexed with a 4-bit prefix is 0x1f 0x08.
  const at = block.indexOf('Bearer abc', 0, 'latin1');
  assert.deepEqual([...block.subarray(at - 3, at - 1)], [0x1f, 0x08]);
  // :status 201 is literal without indexing on static name 8.
  assert.equal(block[0], 0x08);

  const longCookie = 'session=0123456789abcdefghij';
  const again = ['cookie', longCookie, 'x-custom', 'v'];
  const a = encoder.encode(again);
  const b = encoder.encode(again);
  assert.ok(b.length < a.length);
  assert.deepEqual(b, hex('bfbe'), 'repeats are indexed from the dynamic table');
  assert.deepEqual(decodeAll(decoder, a), again);
  assert.deepEqual(decodeAll(decoder, b), again);
  assert.deepEqual(decoder.tableEntries(), encoder.tableEntries());
});

test('encoder signals the smallest then the final table size after several SETTINGS changes', () => {
  const encoder = new HpackEncoder();
  const decoder = new HpackDecoder();
  decodeAll(decoder, encoder.encode(['x-a', '1', 'x-b', '2']));
  encoder.setMaxTableSize(100);
  encoder.setMaxTableSize(0);
  encoder.setMaxTableSize(65536);
  const block = encoder.encode(['x-a', '1']);
  assert.deepEqual(block.subarray(0, 4), hex('20 3fe11f'), 'update to 0, then to min(65536, 4096)');
  assert.deepEqual(decodeAll(decoder, block), ['x-a', '1']);
  assert.deepEqual(decoder.tableEntries(), [['x-a', '1']]);
  assert.deepEqual(encoder.tableEntries(), [['x-a', '1']]);
  // No change pending: no update, and restating the current size is not one.
  encoder.setMaxTableSize(4096);
  assert.deepEqual(encoder.encode(['x-a', '1']), hex('be'));
});

test('encoder grows its buffer for long values and returns independent blocks', () => {
  const encoder = new HpackEncoder();
  const decoder = new HpackDecoder();
  const big = 'v'.repeat(20000);
  const first = encoder.encode(['x-big', big, 'x-small', 'a']);
  const second = encoder.encode(['x-small', 'b']);
  assert.deepEqual(decodeAll(decoder, first), ['x-big', big, 'x-small', 'a']);
  assert.deepEqual(decodeAll(decoder, second), ['x-small', 'b']);
  assert.deepEqual(encoder.tableEntries(), [['x-small', 'b'], ['x-small', 'a']], 'an oversized entry is not indexed');
});

// mulberry32: small, seeded, reproducible.
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), seed | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const NAMES = [
  ':method', ':path', ':authority', ':scheme', ':status', 'content-type', 'accept-encoding', 'user-agent',
  'cookie', 'set-cookie', 'authorization', 'date', 'x-request-id', 'traceparent', 'grpc-timeout', 'te',
  'x-custom-a', 'x-custom-b', 'x-forwarded-for', 'etag', 'location', 'via',
];

function randomString(rand: () => number, maxLength: number, latin1: boolean): string {
  const length = rand() < 0.15 ? 0 : Math.floor(rand() * maxLength);
  let s = '';
  for (let i = 0; i < length; i++) s += String.fromCharCode(latin1 ? Math.floor(rand() * 256) : 0x20 + Math.floor(rand() * 95));
  return s;
}

for (const huffman of [false, true]) {
  test(`random encoder -> decoder round trips stay exact and in step (huffman=${huffman})`, () => {
    const rand = prng(huffman ? 7541 : 9113);
    const encoder = new HpackEncoder({ huffman });
    const decoder = new HpackDecoder();
    const recent: string[] = [];
    for (let round = 0; round < 400; round++) {
      if (rand() < 0.08) encoder.setMaxTableSize([0, 64, 256, 1000, 4096, 8192][Math.floor(rand() * 6)]);
      const fields: string[] = [];
      const count = Math.floor(rand() * 14);
      for (let i = 0; i < count; i++) {
        if (recent.length > 0 && rand() < 0.35) {
          const j = Math.floor(rand() * (recent.length / 2)) * 2;
          fields.push(recent[j], recent[j + 1]);
          continue;
        }
        const name = rand() < 0.7 ? NAMES[Math.floor(rand() * NAMES.length)] : 'x-' + randomString(rand, 12, false).toLowerCase();
        const r = rand();
        const value = r < 0.05 ? randomString(rand, 5000, true) : randomString(rand, 40, r < 0.3);
        fields.push(name, value);
        recent.push(name, value);
        if (recent.length > 40) recent.splice(0, 2);
      }
      const out: string[] = [];
      const size = decoder.decode(encoder.encode(fields), out);
      assert.deepEqual(out, fields, `round ${round}`);
      let expected = 0;
      for (let i = 0; i < fields.length; i += 2) expected += fields[i].length + fields[i + 1].length + 32;
      assert.equal(size, expected);
      assert.deepEqual(decoder.tableEntries(), encoder.tableEntries(), `tables after round ${round}`);
      assert.equal(decoder.tableSize, encoder.tableSize);
      assert.ok(decoder.tableSize <= decoder.maxTableSize);
    }
  });
}

test('Huffman: known vector and every byte value round trip', () => {
  const buf = Buffer.alloc(64);
  const n = huffmanEncode('www.example.com', buf, 0);
  assert.equal(buf.subarray(0, n).toString('hex'), 'f1e3c2e5f23a6ba0ab90f4ff');
  assert.equal(huffmanEncodedLength('www.example.com'), 12);

  let all = '';
  for (let b = 0; b < 256; b++) all += String.fromCharCode(b);
  const inputs = [all, all.split('').reverse().join(''), ...all.split('')];
  for (const s of inputs) {
    const encoded = Buffer.alloc(huffmanEncodedLength(s));
    assert.equal(huffmanEncode(s, encoded, 0), encoded.length);
    const decoded = Buffer.alloc(huffmanMaxDecodedLength(encoded.length));
    const m = huffmanDecode(encoded, 0, encoded.length, decoded);
    assert.equal(decoded.toString('latin1', 0, m), s);
  }
  assert.equal(huffmanDecode(hex(''), 0, 0, Buffer.alloc(0)), 0);
  assert.equal(huffmanDecode(hex('ffffffff'), 0, 4, Buffer.alloc(8)), HUFFMAN_ERR_EOS);
  assert.equal(huffmanDecode(hex('ff'), 0, 1, Buffer.alloc(8)), HUFFMAN_ERR_PADDING);
});

test('every malformed block throws HpackError', () => {
  const tooBig = Buffer.alloc(8);
  const tooBigEnd = writeHpackInteger(tooBig, 0, 5, 0x20, 4097);
  const cases: Array<[string, Buffer]> = [
    ['indexed field with index 0', hex('80')],
    ['index beyond the static table with an empty dynamic table', hex('be')],
    ['index far beyond both tables', hex('ff 80 01')],
    ['literal name index beyond the dynamic table', hex('7e 01 61')],
    ['never-indexed name index beyond the tables', hex('1f 30 01 61')],
    ['integer above 2^31-1', hex('ff ff ff ff ff 0f')],
    ['integer with more than 5 continuation bytes', hex('ff 80 80 80 80 80 00')],
    ['integer truncated by the end of the block', hex('ff 80')],
    ['prefix all ones with nothing after', hex('ff')],
    ['string length overruns the block', hex('00 01 61 05 61 62')],
    ['string missing at the end of the block', hex('00 01 61')],
    ['name string missing', hex('40')],
    ['size update after a field', hex('82 20')],
    ['size update at the end of a block', hex('82 84 3f e1 1f')],
    ['size update above the advertised size', tooBig.subarray(0, tooBigEnd)],
    ['Huffman padding longer than 7 bits', hex('00 01 61 82 1f ff')],
    ['Huffman padding of a whole byte of ones alone', hex('00 01 61 81 ff')],
    ['Huffman padding not all ones', hex('00 01 61 81 18')],
    ['Huffman string containing EOS', hex('00 01 61 84 ff ff ff ff')],
    ['Huffman EOS after a symbol', hex('00 01 61 85 1f ff ff ff fc')],
    ['Huffman name with bad padding', hex('40 81 18 01 61')],
  ];
  for (const [what, block] of cases) {
    assert.throws(() => new HpackDecoder().decode(block, []), HpackError, what);
  }
  // Valid neighbours of the cases above, so they fail for the stated reason only.
  assert.deepEqual(decodeAll(new HpackDecoder(), hex('00 01 61 81 1f')), ['a', 'a']);
  assert.deepEqual(decodeAll(new HpackDecoder(), hex('20 3f e1 1f 82')), [':method', 'GET'], 'two size updates at the start');
  assert.deepEqual(decodeAll(new HpackDecoder(), hex('3f e1 1f')), [], 'an update to exactly the advertised size');
  assert.deepEqual(decodeAll(new HpackDecoder(), Buffer.alloc(0)), [], 'an empty block');
  assert.throws(() => new HpackDecoder(0).decode(hex('21'), []), HpackError, 'size update above an advertised 0');
});

test('a size update evicts at once and an entry larger than the table empties it', () => {
  const decoder = new HpackDecoder(256);
  decodeAll(decoder, hex('40 01 61 01 62 40 01 63 01 64'));
  assert.equal(decoder.tableSize, 68);
  decodeAll(decoder, hex('3f 15'));
  assert.equal(decoder.maxTableSize, 52);
  assert.deepEqual(decoder.tableEntries(), [['c', 'd']]);
  const long = 'x'.repeat(40);
  assert.deepEqual(decodeAll(decoder, Buffer.concat([hex('40 01 61 28'), Buffer.from(long, 'latin1')])), ['a', long]);
  assert.deepEqual(decoder.tableEntries(), []);
  assert.equal(decoder.tableSize, 0);
  assert.throws(() => decoder.decode(hex('be'), []), HpackError);
});

// Interop with a real peer: nghttp2 (inside node:http2) decodes our blocks and encodes the
// blocks we decode, over a raw HTTP/2 connection whose frames this test writes by hand.
test('interop with nghttp2: requests encoded here, responses decoded here, both tables shrunk by SETTINGS', async () => {
  const received: Array<{ headers: Record<string, unknown>; sensitive: string[] }> = [];
  const server = http2.createServer({ settings: { headerTableSize: 256 } });
  server.on('stream', (stream, headers) => {
    // node:http2 lists the fields nghttp2 saw as never indexed under this symbol.
    const sensitive = (headers as unknown as Record<symbol, string[] | undefined>)[http2.sensitiveHeaders] ?? [];
    received.push({ headers: { ...headers }, sensitive: [...sensitive] });
    stream.respond({
      ':status': 200,
      'content-type': 'application/grpc',
      'x-echo': String(headers['x-value']),
      'set-cookie': 'id=42',
    }, { endStream: true });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const socket = net.connect(port, '127.0.0.1');
  try {
    const encoder = new HpackEncoder({ huffman: true });
    const decoder = new HpackDecoder(256);
    const responses: string[][] = [];
    const requests = [0, 1, 2].map((i) => [
      ':method', 'POST', ':scheme', 'http', ':path', `/svc/Method${i}`, ':authority', 'upstream:8080',
      'content-type', 'application/grpc', 'te', 'trailers', 'authorization', 'Bearer secret',
      'x-value', 'v'.repeat(i * 100), 'x-latin1', 'caf\u00e9',
    ]);
    const frame = (type: number, flags: number, streamId: number, payload: Buffer): Buffer => {
      const head = Buffer.alloc(9);
      head.writeUIntBE(payload.length, 0, 3);
      head[3] = type;
      head[4] = flags;
      head.writeUInt32BE(streamId, 5);
      return Buffer.concat([head, payload]);
    };
    // Our SETTINGS: a 256-octet decoder table, so nghttp2's encoder must shrink and signal it.
    const settings = Buffer.alloc(6);
    settings.writeUInt16BE(0x1, 0);
    settings.writeUInt32BE(256, 2);
    socket.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'), frame(4, 0, 0, settings)]));

    await new Promise<void>((resolve, reject) => {
      let pending = Buffer.alloc(0);
      let sentRequests = false;
      socket.on('error', reject);
      socket.on('close', () => reject(new Error(`connection closed after ${responses.length} responses`)));
      socket.on('data', (chunk: Buffer) => {
        pending = Buffer.concat([pending, chunk]);
        while (pending.length >= 9) {
          const length = pending.readUIntBE(0, 3);
          if (pending.length < 9 + length) break;
          const [type, flags, streamId] = [pending[3], pending[4], pending.readUInt32BE(5) & 0x7fffffff];
          let payload = pending.subarray(9, 9 + length);
          pending = pending.subarray(9 + length);
          if (type === 7) return reject(new Error(`GOAWAY error code ${payload.readUInt32BE(4)}`));
          if (type === 3) return reject(new Error(`RST_STREAM ${streamId} code ${payload.readUInt32BE(0)}`));
          if (type === 4 && (flags & 1) === 0) {
            for (let at = 0; at + 6 <= payload.length; at += 6) {
              if (payload.readUInt16BE(at) === 0x1) encoder.setMaxTableSize(payload.readUInt32BE(at + 2));
            }
            socket.write(frame(4, 1, 0, Buffer.alloc(0)));
            if (!sentRequests) {
              sentRequests = true;
              for (const [i, fields] of requests.entries()) socket.write(frame(1, 0x5, 1 + 2 * i, encoder.encode(fields)));
            }
          } else if (type === 1) {
            assert.equal(flags & 0x4, 0x4, 'responses fit one HEADERS frame');
            if ((flags & 0x8) !== 0) payload = payload.subarray(1, payload.length - payload[0]);
            if ((flags & 0x20) !== 0) payload = payload.subarray(5);
            const out: string[] = [];
            decoder.decode(payload, out);
            responses.push(out);
            if (responses.length === requests.length) resolve();
          }
        }
      });
    });

    assert.equal(received.length, 3);
    for (const [i, { headers, sensitive }] of received.entries()) {
      const fields = requests[i];
      for (let f = 0; f < fields.length; f += 2) assert.equal(headers[fields[f]], fields[f + 1], `request ${i} ${fields[f]}`);
      assert.ok(sensitive.includes('authorization'), 'authorization arrives never-indexed');
    }
    assert.ok(encoder.tableSize <= 256);
    for (const [i, out] of responses.entries()) {
      const fields = new Map<string, string>();
      for (let f = 0; f < out.length; f += 2) fields.set(out[f], out[f + 1]);
      assert.equal(fields.get(':status'), '200');
      assert.equal(fields.get('content-type'), 'application/grpc');
      assert.equal(fields.get('x-echo'), 'v'.repeat(i * 100));
      assert.equal(fields.get('set-cookie'), 'id=42');
      assert.ok(fields.has('date'));
    }
    assert.ok(decoder.tableSize <= 256 && decoder.maxTableSize === 256);
  } finally {
    socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

test('a decoder advertising a large table grows its ring and keeps indices right', () => {
  const decoder = new HpackDecoder(1 << 16);
  const model: Array<[string, string]> = [];
  const rand = prng(42);
  let modelSize = 0;
  const evictTo = (max: number): void => {
    while (modelSize > max) {
      const [n, v] = model.pop()!;
      modelSize -= n.length + v.length + 32;
    }
  };
  for (let i = 0; i < 3000; i++) {
    const name = `n${i % 37}`;
    const value = 'x'.repeat(Math.floor(rand() * 300));
    const block = Buffer.alloc(16 + name.length + value.length);
    let off = writeHpackInteger(block, 0, 6, 0x40, 0);
    off = writeHpackInteger(block, off, 7, 0, name.length);
    off += block.write(name, off, 'latin1');
    off = writeHpackInteger(block, off, 7, 0, value.length);
    off += block.write(value, off, 'latin1');
    decoder.decode(block.subarray(0, off), []);
    model.unshift([name, value]);
    modelSize += name.length + value.length + 32;
    evictTo(1 << 16);
    if (i % 500 === 499) {
      assert.deepEqual(decoder.tableEntries(), model);
      assert.equal(decoder.tableSize, modelSize);
      for (let k = 0; k < 20; k++) {
        const at = Math.floor(rand() * model.length);
        const index = Buffer.alloc(8);
        const out: string[] = [];
        decoder.decode(index.subarray(0, writeHpackInteger(index, 0, 7, 0x80, 62 + at)), out);
        assert.deepEqual(out, model[at]);
      }
    }
  }
  assert.ok(model.length > 128, 'the table outgrew the initial ring');
  const update = Buffer.alloc(8);
  decoder.decode(update.subarray(0, writeHpackInteger(update, 0, 5, 0x20, 1000)), []);
  evictTo(1000);
  assert.deepEqual(decoder.tableEntries(), model);
});
