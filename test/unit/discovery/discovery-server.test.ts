// The discovery stream end to end over real gRPC on 127.0.0.1: the server's
// snapshots, diffs, ACK/NACK bookkeeping, debouncing and slow-proxy protection.
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { DiscoveryServer } from '../../../core/discovery/discovery-server.ts';
import type { DiscoveryServerOptions, ProxyStatus } from '../../../core/discovery/discovery-server.ts';
import { MapConfigSource, RecordingProxy, SilentProxy, cluster, sidecar, waitFor } from './discovery-fixtures.ts';

async function startServer(t: TestContext, source: MapConfigSource, options: Partial<DiscoveryServerOptions> = {}) {
  const server = new DiscoveryServer({ source, ...options });
  const port = await server.listen('127.0.0.1', 0);
  t.after(() => server.close());
  return { server, address: `127.0.0.1:${port}` };
}

function connect(t: TestContext, address: string, id: string): RecordingProxy {
  const proxy = new RecordingProxy(address, sidecar(id));
  t.after(() => proxy.stop());
  return proxy;
}

function statusOf(server: DiscoveryServer, id: string): ProxyStatus | undefined {
  return server.status().find((s) => s.id === id);
}

test('a new stream gets the full config of its node, and the ACK shows in status()', async (t) => {
  const source = new MapConfigSource([cluster('a'), cluster('b'), cluster('c')]);
  const { server, address } = await startServer(t, source);
  const proxy = connect(t, address, 'reviews-v1');

  await waitFor('first push applied', () => proxy.applied.length === 1);
  const first = proxy.applied[0];
  assert.equal(first.full, true);
  assert.equal(first.version, '1');
  assert.deepEqual(first.upserts.map((r) => r.name).sort(), ['a', 'b', 'c']);
  assert.deepEqual(first.removes, []);
  assert.deepEqual(proxy.config.get('cluster/b'), cluster('b'));

  await waitFor('ACK recorded', () => statusOf(server, 'reviews-v1')?.lastAckedVersion === '1');
  const status = statusOf(server, 'reviews-v1')!;
  assert.equal(status.type, 'sidecar');
  assert.equal(status.namespace, 'default');
  assert.equal(status.workload, 'reviews-v1');
  assert.equal(status.lastSentVersion, '1');
  assert.equal(status.pending, false);
  assert.equal(status.pushes, 1);
  assert.equal(status.lastNack, undefined);
  assert.ok(!Number.isNaN(Date.parse(status.connectedAt)));
  assert.equal(proxy.client.state.connected, true);
  assert.equal(proxy.client.state.version, '1');
});

test('a change pushes only the changed resources and the removed ones', async (t) => {
  const source = new MapConfigSource([cluster('a'), cluster('b'), cluster('c')]);
  const { server, address } = await startServer(t, source);
  const proxy = connect(t, address, 'p1');
  await waitFor('snapshot ACKed', () => statusOf(server, 'p1')?.lastAckedVersion === '1');

  // One synchronous burst: a single debounced round.
  source.set(cluster('a', 8080));
  source.delete('cluster', 'b');
  source.set(cluster('d'));
  await waitFor('diff applied', () => proxy.applied.length === 2);

  const diff = proxy.applied[1];
  assert.equal(diff.full, false);
  assert.equal(diff.version, source.version());
  assert.deepEqual(diff.upserts.map((r) => r.name).sort(), ['a', 'd']);
  assert.deepEqual(diff.removes, [{ type: 'cluster', name: 'b' }]);
  assert.deepEqual(proxy.names(), ['cluster/a', 'cluster/c', 'cluster/d']);
  await waitFor('diff ACKed', () => statusOf(server, 'p1')?.lastAckedVersion === source.version());
});

test('a change that leaves a node\'s config as it was sends that node nothing', async (t) => {
  const source = new MapConfigSource([cluster('a')]);
  const { server, address } = await startServer(t, source);
  const proxy = connect(t, address, 'p1');
  await waitFor('snapshot ACKed', () => statusOf(server, 'p1')?.lastAckedVersion === '1');

  source.set(cluster('a')); // new object, same content
  await waitFor('rebuilt without push', () => statusOf(server, 'p1')?.syncedVersion === '2');
  assert.equal(statusOf(server, 'p1')!.pushes, 1);
  assert.equal(proxy.applied.length, 1);
});

test('after a NACK the server keeps the last ACKed version and the next push resends what the proxy lacks', async (t) => {
  const source = new MapConfigSource([cluster('a'), cluster('b'), cluster('c')]);
  const { server, address } = await startServer(t, source);
  const proxy = connect(t, address, 'p1');
  await waitFor('snapshot ACKed', () => statusOf(server, 'p1')?.lastAckedVersion === '1');

  proxy.refuse = (update) => (update.upserts.some((r) => r.type === 'cluster' && r.port === 9999) ? 'port 9999 is reserved' : undefined);
  source.set(cluster('a', 9999));
  const rejectedVersion = source.version();
  await waitFor('NACK recorded', () => statusOf(server, 'p1')?.lastNack !== undefined);

  const afterNack = statusOf(server, 'p1')!;
  assert.equal(afterNack.lastAckedVersion, '1');
  assert.equal(afterNack.lastSentVersion, rejectedVersion);
  assert.equal(afterNack.lastNack!.version, rejectedVersion);
  assert.equal(afterNack.lastNack!.message, 'port 9999 is reserved');
  assert.equal(afterNack.pending, false);
  assert.equal(proxy.client.state.version, '1', 'the proxy still runs its old config');
  assert.deepEqual(proxy.client.state.lastRejected, { version: rejectedVersion, message: 'port 9999 is reserved' });
  assert.equal(proxy.clusterPort('a'), 80);

  proxy.refuse = () => undefined;
  source.set(cluster('b', 8080));
  await waitFor('next push applied', () => proxy.client.state.version === source.version());
  const resend = proxy.applied.at(-1)!;
  assert.equal(resend.full, false);
  assert.deepEqual(resend.upserts.map((r) => r.name).sort(), ['a', 'b'], 'the refused change to a is sent again with the new one');
  assert.equal(proxy.clusterPort('a'), 9999);
  await waitFor('ACK recorded', () => statusOf(server, 'p1')?.lastAckedVersion === source.version());
});

test('a NACKed full snapshot is followed by full snapshots until one is ACKed', async (t) => {
  const source = new MapConfigSource([cluster('a')]);
  const { server, address } = await startServer(t, source);
  const proxy = connect(t, address, 'p1');
  proxy.refuse = () => 'not ready';
  await waitFor('NACK recorded', () => statusOf(server, 'p1')?.lastNack?.version === '1');
  assert.equal(statusOf(server, 'p1')!.lastAckedVersion, undefined);

  proxy.refuse = () => undefined;
  source.set(cluster('b'));
  await waitFor('applied', () => proxy.applied.length === 1);
  assert.equal(proxy.applied[0].full, true);
  assert.deepEqual(proxy.names(), ['cluster/a', 'cluster/b']);
});

test('a burst of 100 changes is coalesced into few pushes', async (t) => {
  const source = new MapConfigSource([cluster('a')]);
  const { server, address } = await startServer(t, source);
  const proxy = connect(t, address, 'p1');
  await waitFor('snapshot ACKed', () => statusOf(server, 'p1')?.lastAckedVersion === '1');

  for (let i = 1; i <= 100; i++) source.set(cluster('a', 1000 + i));
  await waitFor('last change applied', () => proxy.client.state.version === source.version());
  assert.equal(proxy.applied.length, 2, 'one synchronous burst is one push');
  assert.equal(proxy.clusterPort('a'), 1100);

  // Spread over many event-loop turns the burst still coalesces.
  for (let i = 1; i <= 100; i++) {
    source.set(cluster('b', 2000 + i));
    await new Promise((resolve) => setImmediate(resolve));
  }
  await waitFor('last change applied', () => proxy.client.state.version === source.version());
  assert.ok(proxy.applied.length - 2 <= 10, `100 changes took ${proxy.applied.length - 2} pushes`);
  assert.equal(proxy.clusterPort('b'), 2100);
});

test('one change reaches every connected proxy', async (t) => {
  const source = new MapConfigSource([cluster('a')]);
  const { server, address } = await startServer(t, source);
  const proxies = Array.from({ length: 20 }, (_, i) => connect(t, address, `p${i}`));
  await waitFor('all snapshots ACKed', () => server.status().filter((s) => s.lastAckedVersion === '1').length === 20);

  source.set(cluster('b'));
  await waitFor('all proxies applied the change', () => proxies.every((p) => p.client.state.version === '2'));
  for (const proxy of proxies) {
    assert.equal(proxy.applied.length, 2);
    assert.deepEqual(proxy.applied[1].upserts.map((r) => r.name), ['b']);
  }
});

test('connects, NACKs and disconnects are logged', async (t) => {
  const lines: Array<{ msg: string; node?: string; reason?: string }> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line));
      done();
    },
  });
  const source = new MapConfigSource([cluster('a')]);
  const { server, address } = await startServer(t, source, { logger: pino({ level: 'info' }, sink) });
  const proxy = new RecordingProxy(address, sidecar('p1'));
  proxy.refuse = () => 'bad listener port';
  await waitFor('NACK recorded', () => statusOf(server, 'p1')?.lastNack !== undefined);
  await proxy.stop();
  await waitFor('disconnect logged', () => lines.some((l) => l.msg === 'proxy disconnected'));

  assert.ok(lines.some((l) => l.msg === 'proxy connected' && l.node === 'p1'));
  assert.ok(lines.some((l) => l.msg === 'proxy rejected config (NACK)' && l.node === 'p1' && l.reason === 'bad listener port'));
});

test('a proxy that falls more than queueLimit pushes behind is reset while others keep receiving', async (t) => {
  const source = new MapConfigSource([cluster('a')]);
  const { server, address } = await startServer(t, source, { queueLimit: 2, ackTimeoutMs: 60_000 });
  const good = connect(t, address, 'good');
  const stuck = new SilentProxy(address, sidecar('stuck'));
  t.after(() => stuck.close());
  await waitFor('stuck proxy sent its snapshot', () => statusOf(server, 'stuck')?.pending === true);
  await waitFor('good proxy ACKed', () => statusOf(server, 'good')?.lastAckedVersion === '1');

  for (let i = 1; i <= 3; i++) {
    source.set(cluster('a', 100 + i));
    await waitFor(`good proxy applied change ${i}`, () => good.client.state.version === source.version());
    if (i < 3) assert.equal(statusOf(server, 'stuck')?.pushes, 1, 'changes coalesce while the snapshot is unanswered');
  }
  await waitFor('stuck proxy dropped', () => statusOf(server, 'stuck') === undefined);
  assert.equal(good.applied.length, 4);

  const { status } = await stuck.drainToStatus();
  assert.equal(status.code, grpc.status.RESOURCE_EXHAUSTED);
  assert.match(status.details, /queue limit 2/);

  source.set(cluster('a', 200));
  await waitFor('good proxy still served', () => good.client.state.version === source.version());
});

test('a proxy that never answers a push is reset after ackTimeoutMs', async (t) => {
  const source = new MapConfigSource([cluster('a')]);
  const { server, address } = await startServer(t, source, { ackTimeoutMs: 500 });
  const good = connect(t, address, 'good');
  const stuck = new SilentProxy(address, sidecar('stuck'));
  t.after(() => stuck.close());

  await waitFor('stuck proxy dropped', () => statusOf(server, 'stuck') === undefined && statusOf(server, 'good')?.lastAckedVersion === '1');
  const { status } = await stuck.drainToStatus();
  assert.equal(status.code, grpc.status.DEADLINE_EXCEEDED);
  assert.match(status.details, /no ACK or NACK for version 1/);

  source.set(cluster('b'));
  await waitFor('good proxy still served', () => good.client.state.version === source.version() && statusOf(server, 'good') !== undefined);
});

test('an unknown node gets a clear INVALID_ARGUMENT and the client records it', async (t) => {
  const source = new MapConfigSource([cluster('a')]);
  source.unknownNodes.add('ghost');
  const { server, address } = await startServer(t, source);

  const raw = new SilentProxy(address, sidecar('ghost'));
  t.after(() => raw.close());
  const { status } = await raw.drainToStatus();
  assert.equal(status.code, grpc.status.INVALID_ARGUMENT);
  assert.match(status.details, /no config for node ghost: unknown node ghost/);

  const proxy = connect(t, address, 'ghost');
  await waitFor('client saw the error', () => /unknown node ghost/.test(proxy.client.state.lastError ?? ''));
  assert.equal(proxy.client.state.connected, false);
  assert.equal(proxy.applied.length, 0);
  assert.equal(statusOf(server, 'ghost'), undefined);
});

test('a first request without a node, or with a bad one, is refused', async (t) => {
  const source = new MapConfigSource([cluster('a')]);
  const { address } = await startServer(t, source);
  const noNode = new SilentProxy(address, null);
  t.after(() => noNode.close());
  const first = await noNode.drainToStatus();
  assert.equal(first.status.code, grpc.status.INVALID_ARGUMENT);
  assert.match(first.status.details, /must carry the node/);

  const badType = new SilentProxy(address, { ...sidecar('x'), type: 'router' as 'sidecar' });
  t.after(() => badType.close());
  const second = await badType.drainToStatus();
  assert.equal(second.status.code, grpc.status.INVALID_ARGUMENT);
  assert.match(second.status.details, /node.type must be "sidecar" or "gateway", got "router"/);
});

test('a second stream from the same node supersedes the first', async (t) => {
  const source = new MapConfigSource([cluster('a')]);
  const { server, address } = await startServer(t, source, { ackTimeoutMs: 60_000 });
  const old = new SilentProxy(address, sidecar('p1'));
  t.after(() => old.close());
  await waitFor('old stream registered', () => statusOf(server, 'p1') !== undefined);

  const proxy = connect(t, address, 'p1');
  await waitFor('new stream ACKed', () => statusOf(server, 'p1')?.lastAckedVersion === '1');
  const { status } = await old.drainToStatus();
  assert.equal(status.code, grpc.status.ABORTED);
  assert.equal(server.status().length, 1);
  assert.equal(proxy.client.state.connected, true);
});

test('close() ends every stream and a second close is harmless', async () => {
  const source = new MapConfigSource([cluster('a')]);
  const server = new DiscoveryServer({ source });
  const port = await server.listen('127.0.0.1', 0);
  const proxy = new RecordingProxy(`127.0.0.1:${port}`, sidecar('p1'));
  try {
    await waitFor('connected', () => proxy.client.state.connected);
    const disconnected = new Promise<string>((resolve) => proxy.client.once('disconnected', resolve));
    await server.close();
    assert.match(await disconnected, /UNAVAILABLE: control plane is shutting down/);
    assert.equal(proxy.client.state.version, '1', 'the proxy keeps its last config');
    await server.close();
  } finally {
    await proxy.stop();
    await server.close();
  }
});

test('listening on a taken port is a JIBE_ERR_PORT_IN_USE error', async (t) => {
  const source = new MapConfigSource();
  const { address } = await startServer(t, source);
  const port = Number(address.split(':')[1]);
  const second = new DiscoveryServer({ source });
  t.after(() => second.close());
  await assert.rejects(second.listen('127.0.0.1', port), (error: Error & { code?: string }) => {
    assert.equal(error.code, 'JIBE_ERR_PORT_IN_USE');
    return true;
  });
});
