import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { FAIL_CONNECT, Http1Pool } from '../../../proxy/http1/http1-connection-pool.ts';
import type { Http1Handler } from '../../../proxy/http1/http1-connection-pool.ts';
import { ClusterStats } from '../../../proxy/stats/proxy-stats.ts';
import type { UpstreamTlsDial } from '../../../proxy/tls/tls-upstream.ts';

test('a dial that outlives connectTimeoutMs counts as a connect timeout and a connect failure', async () => {
  // A TCP server that accepts and never answers: a TLS dial never completes its handshake, so it is never "connected".
  const sockets: net.Socket[] = [];
  const server = net.createServer((s) => sockets.push(s));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  const dialErrors: string[] = [];
  const dial: UpstreamTlsDial = {
    kind: 'tls',
    options: () => ({ rejectUnauthorized: false }),
    failed: (err) => dialErrors.push((err as Error & { code?: string }).code ?? err.message),
    connected: () => assert.fail('the silent server must not complete a handshake'),
  };
  const stats = new ClusterStats();
  const pool = new Http1Pool<string>('127.0.0.1', port, { maxConnections: 1, maxIdle: 1, connectTimeoutMs: 50, idleTimeoutMs: 0 }, stats, dial);
  let failed: ((kind: number) => void) | undefined;
  const failure = new Promise<number>((resolve) => (failed = resolve));
  const handler: Http1Handler<string> = {
    start: () => true,
    head: () => assert.fail('no response expected'),
    body: () => assert.fail('no response expected'),
    complete: () => assert.fail('no response expected'),
    drain: () => {},
    fail: (_owner, kind) => failed!(kind),
  };
  try {
    pool.request('rq', handler);
    assert.equal(await failure, FAIL_CONNECT);
    assert.equal(stats.upstream_cx_connect_timeout, 1);
    assert.equal(stats.upstream_cx_connect_fail, 1);
    assert.equal(stats.upstream_cx_active, 0);
  } finally {
    pool.destroy();
    for (const s of sockets) s.destroy();
    server.close();
  }
});
