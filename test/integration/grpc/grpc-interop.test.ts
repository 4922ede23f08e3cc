// gRPC through two Jibe proxies with grpc-go's own interop client and server:
//   interop client → proxy A (sidecar outbound, cluster http2 → B's inbound port)
//                  → proxy B (inbound listener, cluster http2 → the server)
//                  → interop server.
// Every standard case below must pass: trailers, grpc-status/grpc-message,
// deadlines, cancellation both ways, large and streamed messages, metadata.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { RunningProxy } from '../../../proxy/proxy.ts';
import { GRPC_INTEROP_BIN_DIR } from '../../peers/install.ts';
import { cluster, endpoints, freePort, fullUpdate, listener, route, routeConfig, startSidecar, toCluster, vhost } from '../../unit/proxy/proxy-test-helpers.ts';

const BIN_DIR = GRPC_INTEROP_BIN_DIR;
const CLIENT = join(BIN_DIR, 'client');
const SERVER = join(BIN_DIR, 'server');
const MISSING = !existsSync(CLIENT) || !existsSync(SERVER);
const INSTALL_HINT = 'install it with: node_modules/.bin/node test/peers/install.ts grpc-interop';

export const INTEROP_CASES = [
  'empty_unary',
  'large_unary',
  'client_streaming',
  'server_streaming',
  'ping_pong',
  'empty_stream',
  'cancel_after_begin',
  'cancel_after_first_response',
  'timeout_on_sleeping_server',
  'status_code_and_message',
  'special_status_message',
  'unimplemented_method',
  'unimplemented_service',
  'custom_metadata',
];

function waitForPort(port: number, child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    let tries = 0;
    const attempt = (): void => {
      if (child.exitCode !== null) return reject(new Error(`interop server exited with ${child.exitCode}`));
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve();
      });
      socket.once('error', () => {
        socket.destroy();
        if (++tries > 200) reject(new Error(`interop server did not listen on ${port}`));
        else setTimeout(attempt, 25);
      });
    };
    attempt();
  });
}

function runClient(port: number, testCase: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(CLIENT, ['--server_host', '127.0.0.1', '--server_port', String(port), '--test_case', testCase], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, output }));
  });
}

describe('gRPC interop through two proxies', { skip: MISSING && process.env.CI !== 'true' ? `grpc-go interop binaries missing; ${INSTALL_HINT}` : false }, () => {
  let server: ChildProcess;
  let proxyA: RunningProxy;
  let proxyB: RunningProxy;
  let portA = 0;

  before(async () => {
    assert.ok(!MISSING, `grpc-go interop binaries not found in ${BIN_DIR}; ${INSTALL_HINT}`);
    const serverPort = await freePort();
    server = spawn(SERVER, ['--port', String(serverPort)], { stdio: 'ignore' });
    await waitForPort(serverPort, server);

    const inboundPort = await freePort();
    proxyB = await startSidecar({ node: { id: 'sidecar~interop-server.default', type: 'sidecar', namespace: 'default', labels: {} } });
    await proxyB.apply(
      fullUpdate([
        listener('inbound-grpc', 'inbound', inboundPort, 'inbound|grpc'),
        routeConfig('inbound|grpc', [vhost('inbound', ['*'], [route('all', [], toCluster('inbound|grpc||'))])]),
        cluster('inbound|grpc||', 'ROUND_ROBIN', { protocol: 'http2' }),
        endpoints('inbound|grpc||', [serverPort]),
      ]),
    );

    proxyA = await startSidecar();
    portA = proxyA.ports.outbound!;
    await proxyA.apply(
      fullUpdate([
        routeConfig('outbound', [vhost('interop', ['*'], [route('all', [], toCluster('outbound|grpc||interop'))])]),
        cluster('outbound|grpc||interop', 'ROUND_ROBIN', { protocol: 'http2' }),
        endpoints('outbound|grpc||interop', [inboundPort]),
      ]),
    );
  });

  after(async () => {
    await proxyA?.close();
    await proxyB?.close();
    if (server !== undefined && server.exitCode === null) {
      const exited = new Promise((resolve) => server.once('exit', resolve));
      server.kill('SIGTERM');
      await exited;
    }
  });

  for (const testCase of INTEROP_CASES) {
    it(testCase, async () => {
      const { code, output } = await runClient(portA, testCase);
      assert.equal(code, 0, `interop client failed ${testCase}:\n${output}`);
    });
  }
});
