// The proxy's hand-written protobuf codec against protobufjs, the codec the
// control plane (grpc-js + proto-loader) uses for the same discovery.proto: what
// one side writes, the other must read identically.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as protoLoader from '@grpc/proto-loader';
import { DISCOVERY_PROTO_PATH } from '../../../core/discovery/discovery-protocol.ts';
import type { WireDiscoveryRequest, WireDiscoveryResponse } from '../../../core/discovery/discovery-protocol.ts';
import { decodeDiscoveryResponse, encodeDiscoveryRequest } from '../../../proxy/discovery/discovery-protobuf.ts';

const definition = protoLoader.loadSync(DISCOVERY_PROTO_PATH, { keepCase: false, longs: String, enums: String, defaults: true, oneofs: true });
const method = (definition['jibe.discovery.v1.AggregatedDiscovery'] as protoLoader.ServiceDefinition).StreamResources;
const serverReads = (bytes: Buffer): WireDiscoveryRequest => method.requestDeserialize(bytes) as WireDiscoveryRequest;
const serverWrites = (response: WireDiscoveryResponse): Buffer => method.responseSerialize(response);

test('the first request carries the node, labels included, as the server decodes it', () => {
  const bytes = encodeDiscoveryRequest({
    node: { id: 'sidecar~reviews-v1.default', type: 'sidecar', namespace: 'default', workload: 'reviews-v1', platform: 'vm', labels: { app: 'reviews', version: 'v1', 'ünï': 'cödé ✓' }, version: '0.1.0' },
    versionInfo: '',
    responseNonce: '',
  });
  const decoded = serverReads(bytes);
  assert.deepEqual(decoded.node, {
    id: 'sidecar~reviews-v1.default', type: 'sidecar', namespace: 'default', workload: 'reviews-v1', platform: 'vm',
    labels: { app: 'reviews', version: 'v1', 'ünï': 'cödé ✓' }, version: '0.1.0',
  });
  assert.equal(decoded.versionInfo, '');
  assert.equal(decoded.errorDetail, null);
});

test('ACK and NACK requests: no node, the NACK carries its error detail', () => {
  const ack = serverReads(encodeDiscoveryRequest({ versionInfo: 'v7', responseNonce: 'abc-12' }));
  assert.equal(ack.node, null);
  assert.equal(ack.versionInfo, 'v7');
  assert.equal(ack.responseNonce, 'abc-12');
  assert.equal(ack.errorDetail, null);
  const message = 'resource cluster/b: body is not valid JSON ' + 'x'.repeat(300); // a length needing a 2-byte varint
  const nack = serverReads(encodeDiscoveryRequest({ versionInfo: 'v6', responseNonce: 'abc-13', errorDetail: { code: 3, message } }));
  assert.deepEqual(nack.errorDetail, { code: 3, message });
  const negative = serverReads(encodeDiscoveryRequest({ versionInfo: '', responseNonce: 'n', errorDetail: { code: -2, message: 'm' } }));
  assert.equal(negative.errorDetail?.code, -2, 'negative int32 is sign-extended to ten bytes');
});

test('a push written by the server decodes to the same fields, bodies byte for byte', () => {
  const big = Buffer.from(JSON.stringify({ type: 'cluster', name: 'big', filler: 'y'.repeat(200_000) }));
  const response: WireDiscoveryResponse = {
    versionInfo: '42',
    nonce: 'f00d-7',
    fullState: true,
    resources: [
      { type: 'cluster', name: 'outbound|9080||reviews.default.svc.cluster.local', version: 'h1', body: Buffer.from('{"type":"cluster"}') },
      { type: 'cluster', name: 'big', version: 'h2', body: big },
      { type: 'route', name: 'empty-body', version: '', body: Buffer.alloc(0) },
    ],
    removed: [{ type: 'endpoints', name: 'gone' }, { type: 'listener', name: 'ünïcode ✓' }],
  };
  const decoded = decodeDiscoveryResponse(serverWrites(response));
  assert.equal(decoded.versionInfo, '42');
  assert.equal(decoded.nonce, 'f00d-7');
  assert.equal(decoded.fullState, true);
  assert.deepEqual(decoded.resources.map((r) => [r.type, r.name, r.version, r.body.toString('utf8')]), response.resources.map((r) => [r.type, r.name, r.version, r.body.toString('utf8')]));
  assert.deepEqual(decoded.removed, response.removed);

  const defaults = decodeDiscoveryResponse(serverWrites({ versionInfo: '', nonce: '', fullState: false, resources: [], removed: [] }));
  assert.deepEqual(defaults, { versionInfo: '', nonce: '', fullState: false, resources: [], removed: [] });
});

test('unknown fields of every wire type are skipped, so a newer control plane still talks to this proxy', () => {
  const known = serverWrites({ versionInfo: 'v1', nonce: 'n1', fullState: false, resources: [], removed: [] });
  const unknown = Buffer.from([
    (9 << 3) | 0, 0x96, 0x01, // varint 150
    (10 << 3) | 1, 1, 2, 3, 4, 5, 6, 7, 8, // fixed64
    (11 << 3) | 2, 3, 0x61, 0x62, 0x63, // length-delimited "abc"
    (12 << 3) | 5, 1, 2, 3, 4, // fixed32
  ]);
  const decoded = decodeDiscoveryResponse(Buffer.concat([unknown, known]));
  assert.equal(decoded.versionInfo, 'v1');
  assert.equal(decoded.nonce, 'n1');
});

test('malformed pushes throw with what is wrong instead of reading past the message', () => {
  const good = serverWrites({ versionInfo: 'v1', nonce: 'n1', fullState: true, resources: [{ type: 'cluster', name: 'a', version: 'h', body: Buffer.from('{}') }], removed: [] });
  assert.throws(() => decodeDiscoveryResponse(good.subarray(0, good.length - 1)), /runs past the end/);
  assert.throws(() => decodeDiscoveryResponse(Buffer.from([(1 << 3) | 0, 1])), /version_info has wire type 0, expected 2/);
  assert.throws(() => decodeDiscoveryResponse(Buffer.from([(3 << 3) | 0, 0x80])), /truncated varint/);
  assert.throws(() => decodeDiscoveryResponse(Buffer.from([(7 << 3) | 3])), /unsupported wire type 3/);
});
