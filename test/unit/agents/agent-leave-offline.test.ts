// `jibe agent leave` while the control plane is down: the VM leaves locally
// (agent state, key and certificate gone; capture is covered in
// test/integration/vm), exits 1, and says the one manual step that remains —
// the exact `jibe workload deregister` command. Then, with a control plane
// up, that command is what removes the registration.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { it } from 'node:test';
import { pino } from 'pino';
import { registerPlugins } from '../../../cli/plugins.ts';
import { readAdminToken } from '../../../core/api/admin-token.ts';
import { DEFAULT_MESH_SETTINGS } from '../../../core/mesh/mesh-snapshot.ts';
import { formatLeaveResult } from '../../../agents/node/agent-leave.ts';
import { NodeAgent } from '../../../agents/node/node-agent.ts';
import { startTestControlPlane } from '../../helpers/control-plane.ts';

const REPO = path.resolve(import.meta.dirname, '../../..');

function jibe(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(REPO, 'cli/jibe.ts'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

it('leave with the control plane down: local cleanup, exit 1, and the manual step spelled out', async (t) => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'jibe-leave-cp-'));
  const stateDir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'jibe-leave-')), 'state');
  t.after(() => {
    fs.rmSync(dataDir, { recursive: true, force: true });
    fs.rmSync(path.dirname(stateDir), { recursive: true, force: true });
  });
  const open = () => startTestControlPlane({
    container: registerPlugins(), dataDir, settings: DEFAULT_MESH_SETTINGS, host: '127.0.0.1',
    discoveryPort: 0, apiPort: 0, apiTlsPort: 0, configStore: 'file', stateStore: 'file', platforms: ['vm'], logger: pino({ level: 'silent' }),
  });
  const cp = await open();
  const api = `http://127.0.0.1:${cp.ports.api}`;
  const admin = await readAdminToken(dataDir);
  const minted = await fetch(`${api}/api/v1/vm/tokens`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: JSON.stringify({ namespace: 'default', serviceAccount: 'reviews' }) });
  const { token } = (await minted.json()) as { token: string };
  const agent = await NodeAgent.join({
    token, stateDir, services: [{ name: 'reviews', port: 9080 }], labels: {}, name: 'reviews-off', address: '127.0.0.1', heartbeatMs: 60_000,
    capture: false, proxy: false, proxyUid: 1337, proxyGid: 1337, dropPrivileges: false, jibeEntry: path.join(REPO, 'cli/jibe.ts'), log: () => {},
  });
  await agent.stop();
  await cp.close();

  const left = await jibe(['agent', 'leave', '--state-dir', stateDir]);
  assert.equal(left.code, 1, left.stdout + left.stderr);
  assert.match(left.stdout, /left the mesh locally/);
  assert.match(left.stderr, /was not told \(the control plane at 127\.0\.0\.1:\d+ did not answer/);
  assert.match(left.stderr, /default\/reviews-off is still registered there/);
  assert.match(left.stderr, /^ {4}jibe workload deregister reviews-off -n default$/m);
  assert.equal(fs.existsSync(stateDir), false, 'key, certificate and state are gone');

  // The control plane comes back with the registration; the printed step removes it.
  const again = await open();
  t.after(() => again.close());
  const server = `http://127.0.0.1:${again.ports.api}`;
  const names = async () => ((await (await fetch(`${server}/api/v1/workloads`)).json()) as { workloads: Array<{ name: string }> }).workloads.map((w) => w.name);
  assert.deepEqual(await names(), ['reviews-off']);
  const step = /^ {4}(jibe workload deregister .*)$/m.exec(left.stderr)![1].split(' ').slice(1);
  const done = await jibe([...step, '--server', server]);
  assert.equal(done.code, 0, done.stderr);
  assert.deepEqual(await names(), []);
});

it('a leave the control plane heard of says so in one line', () => {
  const out = formatLeaveResult({ workload: { namespace: 'default', name: 'r' }, controlPlane: 'x:15015', deregistered: true, captureRemoved: true });
  assert.equal(out.stderr, '');
  assert.equal(out.stdout, 'left the mesh: default/r deregistered, capture removed, agent state deleted\n');
});
