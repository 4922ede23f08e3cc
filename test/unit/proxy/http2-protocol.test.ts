// Pure parts of the HTTP/2 and gRPC support: preface sniffing, grpc-timeout
// parsing, grpc-message encoding, which reset codes are relayed, and that an
// HTTP/1.1-only proxy's request path does not load node:http2.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { parseGrpcTimeout } from '../../../proxy/http/exchange.ts';
import { encodeGrpcMessage } from '../../../proxy/http/local-reply.ts';
import { H2_CANCEL, H2_INTERNAL_ERROR, PREFACE as H2_PREFACE, H2_REFUSED_STREAM, relayedResetCode, sniffHttp2 } from '../../../proxy/http2/http2-frame.ts';

describe('sniffHttp2', () => {
  it('recognises the whole preface, waits on a prefix of it, refuses anything else', () => {
    assert.equal(sniffHttp2(H2_PREFACE), 1);
    assert.equal(sniffHttp2(Buffer.concat([H2_PREFACE, Buffer.from([0, 0, 0, 4])])), 1);
    assert.equal(sniffHttp2(H2_PREFACE.subarray(0, 5)), -1);
    assert.equal(sniffHttp2(Buffer.from('PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n')), 0);
    assert.equal(sniffHttp2(Buffer.from('GET / HTTP/1.1\r\n')), 0);
    assert.equal(sniffHttp2(Buffer.from('P')), -1);
  });
});

describe('parseGrpcTimeout', () => {
  it('converts every unit to milliseconds, at least 1', () => {
    assert.equal(parseGrpcTimeout('1H'), 3_600_000);
    assert.equal(parseGrpcTimeout('2M'), 120_000);
    assert.equal(parseGrpcTimeout('3S'), 3000);
    assert.equal(parseGrpcTimeout('250m'), 250);
    assert.equal(parseGrpcTimeout('1500u'), 2);
    assert.equal(parseGrpcTimeout('5n'), 1);
  });

  it('refuses malformed values and caps what a timer cannot hold', () => {
    assert.equal(parseGrpcTimeout(''), -1);
    assert.equal(parseGrpcTimeout('10'), -1);
    assert.equal(parseGrpcTimeout('123456789S'), -1);
    assert.equal(parseGrpcTimeout('1.5S'), -1);
    assert.equal(parseGrpcTimeout('99999999H'), 2_147_483_647);
  });
});

describe('encodeGrpcMessage', () => {
  it('percent-encodes non-printable bytes and % only', () => {
    assert.equal(encodeGrpcMessage('no healthy upstream'), 'no healthy upstream');
    assert.equal(encodeGrpcMessage('50% off'), '50%25 off');
    assert.equal(encodeGrpcMessage('line\nbreak é'), 'line%0Abreak %C3%A9');
  });
});

describe('relayedResetCode', () => {
  it('keeps codes that mean something to the other side and hides connection-level ones', () => {
    assert.equal(relayedResetCode(H2_CANCEL), H2_CANCEL);
    assert.equal(relayedResetCode(H2_REFUSED_STREAM), H2_REFUSED_STREAM);
    assert.equal(relayedResetCode(1 /* PROTOCOL_ERROR */), H2_INTERNAL_ERROR);
    assert.equal(relayedResetCode(3 /* FLOW_CONTROL_ERROR */), H2_INTERNAL_ERROR);
  });
});

describe('memory: node:http2 loads lazily', () => {
  it('the HTTP/1.1 request path (listener, forwarding, pools) does not load it', () => {
    const modules = ['../../../proxy/listeners/listener-http.ts', '../../../proxy/http/forward-request.ts', '../../../proxy/cluster/upstream-pool.ts'].map((m) =>
      fileURLToPath(new URL(m, import.meta.url)),
    );
    const script = `for (const m of ${JSON.stringify(modules)}) await import(m); process.stdout.write(String(process.moduleLoadList.some((m) => m.endsWith(' http2'))));`;
    const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stdout, 'false');
  });
});
