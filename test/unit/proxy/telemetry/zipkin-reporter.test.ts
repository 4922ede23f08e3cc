import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ZipkinReporter } from '../../../../proxy/telemetry/zipkin-reporter.ts';
import type { ZipkinSpan } from '../../../../proxy/telemetry/zipkin-reporter.ts';

function span(id: string): ZipkinSpan {
  return { traceId: '0'.repeat(31) + '1', id, name: 'reviews:9080/*', timestamp: 1, duration: 1, localEndpoint: { serviceName: 'productpage.default' }, tags: {} };
}

describe('ZipkinReporter', () => {
  it('posts queued spans as one Zipkin v2 JSON batch and counts them sent', async () => {
    const received: Array<{ path: string | undefined; type: string | undefined; spans: ZipkinSpan[] }> = [];
    const collector = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push({ path: req.url, type: req.headers['content-type'], spans: JSON.parse(Buffer.concat(chunks).toString()) as ZipkinSpan[] });
        res.writeHead(202).end();
      });
    });
    await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
    const reporter = new ZipkinReporter({ address: `127.0.0.1:${(collector.address() as AddressInfo).port}`, flushIntervalMs: 60_000 });
    try {
      reporter.report(span('a'.repeat(16)));
      reporter.report(span('b'.repeat(16)));
      await reporter.flush();
      assert.equal(received.length, 1);
      assert.equal(received[0].path, '/api/v2/spans');
      assert.equal(received[0].type, 'application/json');
      assert.deepEqual(received[0].spans.map((s) => s.id), ['a'.repeat(16), 'b'.repeat(16)]);
      assert.equal(reporter.sent, 2);
      assert.equal(reporter.dropped, 0);
    } finally {
      await reporter.close();
      await new Promise<void>((resolve) => collector.close(() => resolve()));
    }
  });

  it('drops a batch the collector refuses and reports why', async () => {
    const collector = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(500).end());
    });
    await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
    const errors: Error[] = [];
    const reporter = new ZipkinReporter({ address: `http://127.0.0.1:${(collector.address() as AddressInfo).port}`, flushIntervalMs: 60_000, onError: (e) => errors.push(e) });
    try {
      reporter.report(span('c'.repeat(16)));
      await reporter.flush();
      assert.equal(reporter.sent, 0);
      assert.equal(reporter.dropped, 1);
      assert.equal(errors.length, 1);
      assert.match(errors[0].message, /answered 500/);
    } finally {
      await reporter.close();
      await new Promise<void>((resolve) => collector.close(() => resolve()));
    }
  });
});
