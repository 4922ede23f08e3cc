// A VM joins for real: a network namespace stands in for the VM, joined by a
// veth pair to the host, where the control plane runs (in this process, TLS
// API on the host end of the link). The agent runs as `jibe agent join`
// inside the namespace as root, installs capture, drops to the proxy user,
// starts the sidecar, registers and reports health; `leave` restores
// iptables-save byte for byte. Refused tokens (expired, revoked, reused, made
// for another root) install nothing. Addresses are documentation ranges that
// exist only on the link made here.
//
// Structured for the scenario that lands with the proxy's mTLS wiring: a
// second VM (`startVm` again, another address on the link) calling the first
// through both sidecars.
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { normalizeIptablesSave } from '../../../agents/capture/iptables-state.ts';
import { registerPlugins } from '../../../cli/plugins.ts';
import { readAdminToken } from '../../../core/api/admin-token.ts';
import { startControlPlane } from '../../../core/control-plane.ts';
import type { RunningControlPlane } from '../../../core/control-plane.ts';
import { DEFAULT_MESH_SETTINGS } from '../../../core/mesh/mesh-snapshot.ts';
import type { Workload } from '../../../core/model/workload.ts';
import { waitFor } from '../../helpers/wait-for.ts';

const run = promisify(execFile);
const REPO = path.resolve(import.meta.dirname, '../../..');
const JIBE = path.join(REPO, 'cli/jibe.ts');
const NEEDED = ['ip', 'iptables', 'iptables-save', 'iptables-restore', 'nft'];
const HOST_ADDR = '198.51.100.1';

function environmentProblem(): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'needs root to create network namespaces and change iptables';
  const missing = NEEDED.filter((cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status !== 0);
  if (missing.length) return `missing ${missing.join(', ')} (Debian: apt-get install iptables iproute2 nftables)`;
  const probe = `jibe-vm-probe-${randomBytes(3).toString('hex')}`;
  const added = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' });
  if (added.status !== 0) return `cannot create a network namespace: ${added.stderr.trim()}`;
  spawnSync('ip', ['netns', 'del', probe]);
  return undefined;
}

const problem = environmentProblem();
if (problem && process.env.CI === 'true') {
  test('vm join integration: the agent in network namespaces', () => assert.fail(`vm join integration tests cannot run in CI: ${problem}`));
} else if (problem) {
  test('vm join integration: the agent in network namespaces', { skip: problem }, () => {});
} else {
  defineTests();
}

interface Mesh {
  cp: RunningControlPlane;
  api: string;
  admin: string;
  dataDir: string;
}

/** The control plane on the host; its TLS API on the host end of the VMs' link. */
async function startMesh(t: TestContext): Promise<Mesh> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'jibe-vm-cp-'));
  const cp = await startControlPlane({
    container: registerPlugins(), dataDir, settings: DEFAULT_MESH_SETTINGS, host: '127.0.0.1', discoveryPort: 0, discoveryTlsPort: 0,
    apiPort: 0, apiTlsPort: 0, apiTlsHost: HOST_ADDR, configStore: 'file', stateStore: 'file', platforms: ['vm'], logger: pino({ level: 'silent' }),
  });
  t.after(async () => {
    await cp.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });
  return { cp, api: `http://127.0.0.1:${cp.ports.api}`, admin: await readAdminToken(dataDir), dataDir };
}

interface Vm {
  ns: string;
  address: string;
  stateDir: string;
  /** Touch to make the app's health check fail. */
  failFlag: string;
  save(): Promise<string>;
  jibe(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }>;
}

/** A namespace linked to the host by a veth pair, with an app answering on 9080 (health by a flag file). */
async function startVm(t: TestContext, index: number): Promise<Vm> {
  const tag = randomBytes(3).toString('hex');
  const ns = `jibe-vm-${tag}`;
  const address = `198.51.100.${index + 1}`;
  await run('ip', ['netns', 'add', ns]);
  t.after(() => run('ip', ['netns', 'del', ns]).then(() => undefined, () => undefined));
  await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  const hostIf = `jh${tag}`;
  await run('ip', ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
  t.after(() => run('ip', ['link', 'del', hostIf]).then(() => undefined, () => undefined));
  if (index === 1) await run('ip', ['addr', 'add', `${HOST_ADDR}/32`, 'dev', hostIf]);
  await run('ip', ['link', 'set', hostIf, 'up']);
  await run('ip', ['route', 'add', `${address}/32`, 'dev', hostIf]);
  await run('ip', ['-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
  await run('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
  await run('ip', ['-n', ns, 'route', 'add', `${HOST_ADDR}/32`, 'dev', 'eth0']);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jibe-vm-'));
  fs.chmodSync(dir, 0o755);
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const failFlag = path.join(dir, 'unhealthy');
  const app: ChildProcess = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e',
    `require('node:http').createServer((q, s) => s.writeHead(require('node:fs').existsSync(${JSON.stringify(failFlag)}) ? 503 : 200).end('reviews')).listen(9080, '0.0.0.0', () => console.log('ready'))`,
  ], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => void app.kill());
  await new Promise<void>((resolve, reject) => {
    app.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    app.once('exit', (code) => reject(new Error(`app in ${ns} exited with ${code}`)));
  });
  const jibe = (args: string[]) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn('ip', ['netns', 'exec', ns, process.execPath, JIBE, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('exit', (code) => resolve({ code, stdout, stderr }));
    });
  return { ns, address, stateDir: path.join(dir, 'state'), failFlag, save: async () => (await run('ip', ['netns', 'exec', ns, 'iptables-save'])).stdout, jibe };
}

async function mint(mesh: Mesh, body: Record<string, unknown>): Promise<string> {
  const res = await fetch(`${mesh.api}/api/v1/vm/tokens`, { method: 'POST', headers: { authorization: `Bearer ${mesh.admin}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const json = (await res.json()) as { token: string };
  assert.equal(res.status, 200, JSON.stringify(json));
  return json.token;
}

async function workloads(mesh: Mesh): Promise<Workload[]> {
  return ((await (await fetch(`${mesh.api}/api/v1/workloads`)).json()) as { workloads: Workload[] }).workloads;
}

/** `jibe agent join` running in the VM until the test ends (or leave stops it). */
function join(t: TestContext, vm: Vm, token: string): { output: () => string } {
  let output = '';
  const child = spawn('ip', ['netns', 'exec', vm.ns, process.execPath, JIBE, 'agent', 'join', '--token', token, '--service', 'reviews:9080', '--labels', 'version=v3',
    '--health', 'http://127.0.0.1:9080/health', '--health-interval', '200ms', '--health-failures', '2', '--heartbeat', '500ms',
    '--state-dir', vm.stateDir, '--address', vm.address, '--name', 'reviews-vm'], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  t.after(() => void child.kill('SIGTERM'));
  return { output: () => output };
}

function defineTests(): void {
  test('a VM joins from its namespace: capture, proxy, registration, health in and out, and leave restores iptables-save', async (t) => {
    const vm = await startVm(t, 1);
    const mesh = await startMesh(t);
    const before = normalizeIptablesSave(await vm.save());
    const agent = join(t, vm, await mint(mesh, { namespace: 'default', serviceAccount: 'reviews', uses: 1 }));

    const w = await waitFor(async () => (await workloads(mesh)).find((x) => x.name === 'reviews-vm' && x.health === 'healthy'), `the VM to register healthy\n${agent.output()}`, 60_000);
    assert.equal(w.address, vm.address);
    assert.equal(w.identity, 'spiffe://cluster.local/ns/default/sa/reviews');
    assert.equal(w.labels.version, 'v3');
    assert.ok(w.host?.hostname);
    const installed = await vm.save();
    assert.match(installed, /-A JIBE_OUTPUT -m owner --uid-owner 1337 .*-j RETURN/);
    assert.match(installed, new RegExp(`-A JIBE_OUTPUT -d ${HOST_ADDR}/32 .*-j RETURN`), 'the control plane is never captured');
    assert.match(installed, /-A JIBE_INBOUND -p tcp -m tcp --dport 9080 .*-j JIBE_IN_REDIRECT/, 'only the workload\'s port is captured inbound');

    const status = await waitFor(async () => {
      const r = await vm.jibe(['agent', 'status', '--state-dir', vm.stateDir, '-o', 'json']);
      const s = JSON.parse(r.stdout);
      return s.runtime?.sidecar?.state === 'running' ? s : undefined;
    }, 'the sidecar to run');
    assert.equal(status.capture.state, 'installed');
    assert.equal(status.identity, 'spiffe://cluster.local/ns/default/sa/reviews');
    assert.deepEqual(status.runtime.user, { uid: 1337, gid: 1337 }, 'the agent dropped root after capture');

    fs.writeFileSync(vm.failFlag, '');
    await waitFor(async () => (await workloads(mesh)).find((x) => x.name === 'reviews-vm')?.health === 'unhealthy', 'a failing health check to take the VM out of the endpoints');
    fs.rmSync(vm.failFlag);
    await waitFor(async () => (await workloads(mesh)).find((x) => x.name === 'reviews-vm')?.health === 'healthy', 'recovery to put it back');

    const left = await vm.jibe(['agent', 'leave', '--state-dir', vm.stateDir]);
    assert.equal(left.code, 0, left.stderr + left.stdout);
    assert.deepEqual(await workloads(mesh), [], 'deregistered');
    assert.equal(normalizeIptablesSave(await vm.save()), before, 'iptables-save after leave equals before join');
    assert.equal(fs.existsSync(vm.stateDir), false);
  });

  test('expired, revoked, reused and other-root tokens are refused with a clear message and install nothing', async (t) => {
    const vm = await startVm(t, 1);
    const mesh = await startMesh(t);
    const other = await startMesh(t);
    const before = await vm.save();

    const reused = await mint(mesh, { namespace: 'default', serviceAccount: 'reviews', uses: 1 });
    await fetch(`${mesh.api}/api/v1/certificates`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ credential: { type: 'vm-join-token', token: reused }, csr: 'x' }) });
    const revoked = await mint(mesh, { namespace: 'default', serviceAccount: 'reviews' });
    await fetch(`${mesh.api}/api/v1/vm/tokens/${encodeURIComponent(revoked)}`, { method: 'DELETE', headers: { authorization: `Bearer ${mesh.admin}` } });
    const expired = await mint(mesh, { namespace: 'default', serviceAccount: 'reviews', ttlSeconds: 1 });
    // The other control plane's token, pointed at this one's address: its pin cannot match.
    const { decodeJoinToken, encodeJoinToken } = await import('../../../platforms/vm/join-token.ts');
    const foreign = decodeJoinToken(await mint(other, { namespace: 'default', serviceAccount: 'reviews', addresses: [`${HOST_ADDR}:${mesh.cp.ports.apiTls}`] }));
    const otherRoot = encodeJoinToken(foreign);
    await new Promise((r) => setTimeout(r, 1100)); // past the 1 s lifetime

    for (const [token, why] of [[reused, /allows no more/], [revoked, /revoked at/], [expired, /expired at/], [otherRoot, /does not hold the root this join token pins/]] as const) {
      const r = await vm.jibe(['agent', 'join', '--token', token, '--service', 'reviews:9080', '--state-dir', vm.stateDir, '--address', vm.address]);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stderr, /JIBE_ERR_JOIN_TOKEN/);
      assert.match(r.stderr, why);
      assert.equal(await vm.save(), before, 'no rule installed');
      assert.equal(fs.existsSync(vm.stateDir), false, 'no state written');
    }
    assert.deepEqual(await workloads(mesh), []);
  });
}
