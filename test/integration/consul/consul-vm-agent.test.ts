// `jibe agent join --registry consul` against a real Consul agent and a real
// control plane (`--platforms vm,consul`): the agent gets its certificate from
// the control plane with a join token, but publishes the VM in Consul; the
// control plane sees the workload through its consul platform (not its vm
// registry), Consul's own check on the app's health URL flips it unhealthy and
// back, `status` names the registry, and `leave` removes the Consul instance.
// The registry path needs no network namespace or capture (--no-capture
// --no-proxy: no root, no iptables); capture with Consul is the same
// registration with the sidecar marked, covered by the unit round trip in
// test/unit/agents/agent-registry-consul.test.ts.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { registerPlugins } from '../../../cli/plugins.ts';
import { readAdminToken } from '../../../core/api/admin-token.ts';
import type { RunningControlPlane } from '../../../core/control-plane.ts';
import { DEFAULT_MESH_SETTINGS } from '../../../core/mesh/mesh-snapshot.ts';
import type { Service } from '../../../core/model/service.ts';
import type { Workload } from '../../../core/model/workload.ts';
import { consulSkipReason, JIBE_SOURCE, runJibeSource, startConsulAgent, waitUntil } from './consul-agent.ts';
import type { ConsulAgent } from './consul-agent.ts';
import { startTestControlPlane } from '../../helpers/control-plane.ts';

const REVIEWS = 'reviews.default.svc.cluster.local';

describe('jibe agent join --registry consul', { skip: consulSkipReason() }, () => {
  let consul: ConsulAgent;
  let cp: RunningControlPlane;
  let dataDir: string;
  let work: string;
  let api: string;
  let app: http.Server;
  let appPort: number;
  let healthy = true;
  let agent: ChildProcess | undefined;
  let agentOutput = '';

  const workloads = async () => ((await (await fetch(`${api}/api/v1/workloads`)).json()) as { workloads: Workload[] }).workloads;
  const services = async () => ((await (await fetch(`${api}/api/v1/services`)).json()) as { services: Service[] }).services;

  before(async () => {
    consul = await startConsulAgent();
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'jibe-consul-vm-cp-'));
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'jibe-consul-vm-'));
    // Run as root, the agent continues as the proxy's user, which must reach its state directory.
    fs.chmodSync(work, 0o755);
    cp = await startTestControlPlane({
      container: registerPlugins(), dataDir, settings: DEFAULT_MESH_SETTINGS, host: '127.0.0.1', discoveryPort: 0, discoveryTlsPort: 0,
      apiPort: 0, apiTlsPort: 0, apiTlsHost: '127.0.0.1', configStore: 'file', stateStore: 'file', platforms: ['vm', 'consul'],
      pluginOptions: { consul: { address: consul.address } }, logger: pino({ level: 'silent' }),
    });
    api = `http://127.0.0.1:${cp.ports.api}`;
    app = http.createServer((req, res) => {
      res.statusCode = req.url === '/health' && !healthy ? 503 : 200;
      res.end('reviews-v3');
    });
    app.keepAliveTimeout = 100;
    app.listen(0, '127.0.0.1');
    await once(app, 'listening');
    appPort = (app.address() as AddressInfo).port;
  });

  after(async () => {
    if (agent && agent.exitCode === null && agent.signalCode === null) {
      agent.kill('SIGTERM');
      await once(agent, 'exit');
    }
    await cp?.close();
    await consul?.stop();
    await new Promise<void>((resolve) => (app ? app.close(() => resolve()) : resolve()));
    for (const dir of [dataDir, work]) if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('registers in Consul, the control plane sees it there, Consul\'s check flips it, leave removes it', async () => {
    const admin = await readAdminToken(dataDir);
    const minted = await fetch(`${api}/api/v1/vm/tokens`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: JSON.stringify({ namespace: 'default', serviceAccount: 'reviews', uses: 1 }) });
    const { token } = (await minted.json()) as { token: string };
    assert.equal(minted.status, 200);
    const stateDir = path.join(work, 'state');

    const start = (args: string[]) => {
      agent = spawn(process.execPath, [JIBE_SOURCE, 'agent', 'join', ...args, '--no-capture', '--no-proxy', '--state-dir', stateDir], { stdio: ['ignore', 'pipe', 'pipe'] });
      agent.stdout!.on('data', (d: Buffer) => (agentOutput += d));
      agent.stderr!.on('data', (d: Buffer) => (agentOutput += d));
    };
    start(['--token', token, '--service', `reviews:${appPort}`, '--labels', 'version=v3',
      '--health', `http://127.0.0.1:${appPort}/health`, '--health-interval', '1s', '--health-failures', '1', '--heartbeat', '500ms',
      '--registry', 'consul', '--consul-address', consul.address, '--address', '127.0.0.1', '--name', 'reviews-vm']);
    const why = () => `\nagent output:\n${agentOutput}`;

    const name = `reviews-reviews-vm.${consul.nodeName}.${consul.datacenter}`.toLowerCase();
    const seen = async (health: string) => (await workloads()).find((w) => w.name === name && w.health === health);
    const w = await waitUntil(`the VM in the mesh through Consul${why()}`, () => seen('healthy'), 30_000);
    assert.equal(w.platform, 'consul');
    assert.equal(w.identity, 'spiffe://cluster.local/ns/default/sa/reviews', 'the identity its certificate carries');
    assert.equal(w.labels.version, 'v3');
    assert.equal(w.address, '127.0.0.1');
    assert.deepEqual((await workloads()).filter((x) => x.platform === 'vm'), [], 'nothing is registered in the control plane\'s vm registry');
    const reviews = (await services()).find((s) => s.hostname === REVIEWS);
    assert.deepEqual(reviews?.platforms, ['consul']);
    assert.deepEqual(reviews?.ports.map((p) => [p.port, p.protocol]), [[appPort, 'http']]);

    // In Consul: the instance with an HTTP check on the app's health URL, and Meta carrying the identity and labels.
    const svc = (await consul.client().get<{ Meta: Record<string, string>; Port: number }>('/v1/agent/service/reviews-reviews-vm')).body;
    assert.equal(svc.Meta.version, 'v3');
    assert.equal(svc.Meta['jibe-namespace'], 'default');
    assert.equal(svc.Meta['jibe-service-account'], 'reviews');
    const checks = (await consul.client().get<Record<string, { ServiceID: string; Type: string }>>('/v1/agent/checks')).body;
    assert.deepEqual(Object.values(checks).filter((c) => c.ServiceID === 'reviews-reviews-vm').map((c) => c.Type), ['http']);

    const status = await runJibeSource(['agent', 'status', '--state-dir', stateDir]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, new RegExp(`registry: +consul ${consul.address}: reviews-reviews-vm \\(workload ${name.replace(/\./g, '\\.')}\\)`), why());
    assert.match(status.stdout, /health: +reviews-reviews-vm passing \(Consul's check\)/);

    // Consul's check, not the agent, judges health.
    healthy = false;
    await waitUntil(`unhealthy once Consul's check fails${why()}`, () => seen('unhealthy'), 30_000);
    assert.match((await runJibeSource(['agent', 'status', '--state-dir', stateDir])).stdout, /health: +reviews-reviews-vm critical/);
    healthy = true;
    await waitUntil(`healthy again once Consul's check passes${why()}`, () => seen('healthy'), 30_000);

    // Stopping the agent (systemctl stop) puts the instance in Consul maintenance; a join without a token resumes it.
    const running = agent!;
    running.kill('SIGTERM');
    if (running.exitCode === null && running.signalCode === null) await once(running, 'exit');
    await waitUntil(`unhealthy while the agent is stopped${why()}`, () => seen('unhealthy'), 30_000);
    assert.match((await runJibeSource(['agent', 'status', '--state-dir', stateDir])).stdout, /health: +reviews-reviews-vm maintenance/);
    start([]);
    await waitUntil(`healthy once the agent resumed${why()}`, () => seen('healthy'), 30_000);
    assert.match(agentOutput, /resuming as spiffe:\/\/cluster\.local\/ns\/default\/sa\/reviews/);

    // A Consul agent that forgot the instance (wiped, or a dev agent restarted) gets it back from the heartbeat.
    await consul.client().put('/v1/agent/service/deregister/reviews-reviews-vm');
    await waitUntil(`re-registered after Consul lost it${why()}`, async () => (await consul.client().get('/v1/agent/service/reviews-reviews-vm', { accept: [404] })).status === 200 || undefined, 30_000)
      .catch(async (err: Error) => assert.fail(`${err.message}\n${(await runJibeSource(['agent', 'status', '--state-dir', stateDir])).stdout}`));
    await waitUntil(`back in the mesh after the re-registration${why()}`, () => seen('healthy'), 30_000);

    const left = await runJibeSource(['agent', 'leave', '--state-dir', stateDir]);
    assert.equal(left.code, 0, `${left.stdout}${left.stderr}`);
    assert.match(left.stdout, /deregistered from Consul \(reviews-reviews-vm\)/);
    if (agent!.exitCode === null && agent!.signalCode === null) await once(agent!, 'exit');
    const catalog = (await consul.client().get<Record<string, string[]>>('/v1/catalog/services')).body;
    assert.deepEqual(Object.keys(catalog).filter((s) => s.startsWith('reviews')), [], 'leave removed the instance from Consul');
    await waitUntil('the VM gone from the mesh after leave', async () => ((await workloads()).some((x) => x.name === name) || (await services()).some((s) => s.hostname === REVIEWS) ? undefined : true), 30_000);
    assert.equal(fs.existsSync(stateDir), false, 'leave deleted the agent state');
  });
});
