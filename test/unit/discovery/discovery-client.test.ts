// The proxy's discovery client against a real DiscoveryServer (restart,
// reconnect, full resync) and against a scripted raw gRPC server (malformed
// pushes must be NACKed with the version the proxy still runs).
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { DiscoveryServer } from '../../../core/discovery/discovery-server.ts';
import { discoveryService } from '../../../core/discovery/discovery-protocol.ts';
import type { DiscoveryServerStream, WireDiscoveryRequest, WireDiscoveryResponse } from '../../../core/discovery/discovery-protocol.ts';
import { MapConfigSource, RecordingProxy, cluster, sidecar, waitFor } from './discovery-fixtures.ts';

test('the client reconnects to a restarted control plane and takes its full snapshot', async (t) => {
  const first = new DiscoveryServer({ source: new MapConfigSource([cluster('a'), cluster('b')]) });
  const port = await first.listen('127.0.0.1', 0);
  t.after(() => first.close());
  const proxy = new RecordingProxy(`127.0.0.1:${port}`, sidecar('p1'));
  t.after(() => proxy.stop());
  const events: string[] = [];
  proxy.client.on('connected', () => events.push('connected'));
  proxy.client.on('disconnected', () => events.push('disconnected'));

  await waitFor('first snapshot applied', () => proxy.client.state.version === '1');
  assert.deepEqual(proxy.names(), ['cluster/a', 'cluster/b']);

  await first.close();
  await waitFor('disconnect noticed', () => !proxy.client.state.connected);
  assert.deepEqual(proxy.names(), ['cluster/a', 'cluster/b'], 'the proxy keeps its last good config');
  assert.equal(proxy.client.state.version, '1');

  const restartedSource = new MapConfigSource([cluster('b', 8080), cluster('c')]);
  restartedSource.set(cluster('c', 81)); // version 2 on the new control plane
  const second = new DiscoveryServer({ source: restartedSource });
  assert.equal(await second.listen('127.0.0.1', port), port);
  t.after(() => second.close());

  await waitFor('snapshot from the new server applied', () => proxy.client.state.version === '2');
  const resync = proxy.applied.at(-1)!;
  assert.equal(resync.full, true);
  assert.deepEqual(proxy.names(), ['cluster/b', 'cluster/c'], 'the full snapshot replaced everything, a included');
  assert.equal(proxy.clusterPort('b'), 8080);
  assert.equal(proxy.client.state.connected, true);
  assert.deepEqual(events, ['connected', 'disconnected', 'connected']);
  await waitFor('ACK on the new server', () => second.status()[0]?.lastAckedVersion === '2');
});

test('the client keeps retrying while no control plane listens, and stop() ends the retries', async () => {
  const server = new DiscoveryServer({ source: new MapConfigSource() });
  const port = await server.listen('127.0.0.1', 0);
  await server.close();
  const proxy = new RecordingProxy(`127.0.0.1:${port}`, sidecar('p1'));
  try {
    await waitFor('an attempt failed', () => /UNAVAILABLE/.test(proxy.client.state.lastError ?? ''));
    assert.equal(proxy.client.state.connected, false);
    assert.equal(proxy.client.state.version, '');
  } finally {
    await proxy.stop();
  }
});

/** A hand-driven server: the test decides each response and reads every request. */
async function scriptedServer(t: TestContext) {
  const requests: WireDiscoveryRequest[] = [];
  let stream: DiscoveryServerStream | undefined;
  const server = new grpc.Server();
  server.addService(discoveryService().service, {
    StreamResources: (call: DiscoveryServerStream) => {
      stream = call;
      call.on('data', (r: WireDiscoveryRequest) => requests.push(r));
      call.on('error', () => {});
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  t.after(() => server.forceShutdown());
  return {
    address: `127.0.0.1:${port}`,
    requests,
    send(response: WireDiscoveryResponse): void {
      assert.ok(stream, 'no stream yet');
      stream.write(response);
    },
  };
}

function body(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

test('the client NACKs a push whose body does not parse, keeps its version, and ACKs the next good one', async (t) => {
  const fake = await scriptedServer(t);
  const proxy = new RecordingProxy(fake.address, sidecar('p1'));
  t.after(() => proxy.stop());
  const rejected: Array<[string, string]> = [];
  proxy.client.on('rejected', (version: string, message: string) => rejected.push([version, message]));

  await waitFor('node announced', () => fake.requests.length === 1);
  assert.equal(fake.requests[0].node?.id, 'p1');
  assert.equal(fake.requests[0].responseNonce, '');

  fake.send({ versionInfo: 'v1', nonce: 'n1', fullState: true, resources: [{ type: 'cluster', name: 'a', version: 'h1', body: body(cluster('a')) }], removed: [] });
  await waitFor('ACK', () => fake.requests.length === 2);
  assert.equal(fake.requests[1].versionInfo, 'v1');
  assert.equal(fake.requests[1].responseNonce, 'n1');
  assert.equal(fake.requests[1].errorDetail, null);

  fake.send({ versionInfo: 'v2', nonce: 'n2', fullState: false, resources: [{ type: 'cluster', name: 'b', version: 'h2', body: Buffer.from('{"type":"clu') }], removed: [] });
  await waitFor('NACK', () => fake.requests.length === 3);
  const nack = fake.requests[2];
  assert.equal(nack.versionInfo, 'v1', 'a NACK names the version the proxy still runs');
  assert.equal(nack.responseNonce, 'n2');
  assert.match(nack.errorDetail!.message, /resource cluster\/b: body is not valid JSON/);
  assert.equal(proxy.client.state.version, 'v1');
  assert.deepEqual(rejected.map(([v]) => v), ['v2']);
  assert.deepEqual(proxy.client.state.lastRejected?.version, 'v2');
  assert.deepEqual(proxy.names(), ['cluster/a'], 'nothing of the bad push was applied');

  fake.send({
    versionInfo: 'v3',
    nonce: 'n3',
    fullState: false,
    resources: [{ type: 'cluster', name: 'b', version: 'h3', body: body(cluster('b')) }],
    removed: [{ type: 'cluster', name: 'a' }],
  });
  await waitFor('ACK of v3', () => fake.requests.length === 4);
  assert.equal(fake.requests[3].versionInfo, 'v3');
  assert.equal(fake.requests[3].errorDetail, null);
  assert.deepEqual(proxy.names(), ['cluster/b']);
});

test('the client NACKs a push whose body names another resource or a removal of an unknown type', async (t) => {
  const fake = await scriptedServer(t);
  const proxy = new RecordingProxy(fake.address, sidecar('p1'));
  t.after(() => proxy.stop());
  await waitFor('node announced', () => fake.requests.length === 1);

  fake.send({ versionInfo: 'v1', nonce: 'n1', fullState: true, resources: [{ type: 'cluster', name: 'a', version: 'h', body: body(cluster('z')) }], removed: [] });
  await waitFor('NACK 1', () => fake.requests.length === 2);
  assert.equal(fake.requests[1].versionInfo, '');
  assert.match(fake.requests[1].errorDetail!.message, /resource cluster\/a: body says cluster\/z/);

  fake.send({ versionInfo: 'v2', nonce: 'n2', fullState: false, resources: [], removed: [{ type: 'secret', name: 'x' }] });
  await waitFor('NACK 2', () => fake.requests.length === 3);
  assert.match(fake.requests[2].errorDetail!.message, /removed secret\/x: unknown type "secret"/);
  assert.equal(proxy.applied.length, 0);
});
