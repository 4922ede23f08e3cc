// HPACK micro-benchmark (not a test): ns per encode/decode of a typical gRPC unary exchange's
// header blocks on warmed (steady-state) tables, as the proxy sees them on a busy connection.
//
//   node_modules/.bin/node test/bench/hpack-micro.ts [iterations]
//
// Numbers are per block; the machine is shared, so compare runs made side by side.

import { HpackDecoder, HpackEncoder } from '../../proxy/http2/hpack.ts';
import { median } from './latency-percentiles.ts';

const REQUEST = [
  ':method', 'POST',
  ':scheme', 'http',
  ':path', '/grpc.testing.TestService/UnaryCall',
  ':authority', 'upstream:8080',
  'content-type', 'application/grpc',
  'te', 'trailers',
  'user-agent', 'grpc-go/1.85.0',
  'grpc-timeout', '99m',
];
const RESPONSE = [':status', '200', 'content-type', 'application/grpc'];
const TRAILERS = ['grpc-status', '0', 'grpc-message', ''];
const HEADS: Array<[string, readonly string[]]> = [['request', REQUEST], ['response', RESPONSE], ['trailers', TRAILERS]];

const iterations = Number(process.argv[2] ?? 200_000);
const ROUNDS = 5;

/** Median over ROUNDS of the ns one call of fn takes, after a warm-up round. */
function measure(fn: () => void): number {
  for (let i = 0; i < iterations; i++) fn();
  const samples: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) fn();
    samples.push(Number(process.hrtime.bigint() - start) / iterations);
  }
  return median(samples);
}

let sink = 0;
for (const huffman of [false, true]) {
  for (const [label, fields] of HEADS) {
    const encoder = new HpackEncoder({ huffman });
    const decoder = new HpackDecoder();
    // The first block fills the dynamic table; the steady-state block is what every later request sends.
    const first = encoder.encode(fields);
    decoder.decode(first, []);
    const steady = encoder.encode(fields);
    decoder.decode(steady, []);

    const encodeNs = measure(() => {
      sink += encoder.encode(fields).length;
    });
    const out: string[] = [];
    const decodeNs = measure(() => {
      out.length = 0;
      sink += decoder.decode(steady, out);
    });
    // A fresh connection's first block: literals (and Huffman, when on) instead of indices.
    const coldNs = measure(() => {
      sink += new HpackDecoder().decode(first, []);
    });
    console.log(
      `huffman=${huffman ? 'on ' : 'off'} ${label.padEnd(8)} first block ${String(first.length).padStart(3)} B, ` +
      `steady ${String(steady.length).padStart(3)} B | encode ${encodeNs.toFixed(0).padStart(5)} ns | ` +
      `decode ${decodeNs.toFixed(0).padStart(5)} ns | decode first block (new decoder) ${coldNs.toFixed(0).padStart(5)} ns`,
    );
  }
}
if (sink === 0) console.log('unreachable');
