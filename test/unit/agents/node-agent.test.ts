// The node agent against real control planes (in-process, loopback, ephemeral
// ports), without capture or sidecar (those are covered by
// test/integration/vm in network namespaces): pinning, join, resume without a
// second token use, health reporting, re-registration, leave; and the TLS
// API's authorization (a VM acts only for its own identity).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { registerPlugins } from '../../../cli/plugins.ts';
import { readAdminToken } from '../../../core/api/admin-token.ts';
import type { RunningControlPlane } from '../../../core/control-plane.ts';
import { DEFAULT_MESH_SETTINGS } from '../../../core/mesh/mesh-snapshot.ts';
import type { Workload } from '../../../core/model/workload.ts';
import { callControlPlane } from '../../../agents/node/agent-control-plane.ts';
import { agentStatus, leave } from '../../../agents/node/agent-leave.ts';
import { NodeAgent } from '../../../agents/node/node-agent.ts';
import type { JoinOptions } from '../../../agents/node/node-agent.ts';
import { readCertificate } from '../../../agents/node/agent-state.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { startTestControlPlane } from '../../helpers/control-plane.ts';

const REPO = path.resolve(import.meta.dirname, '../../..');

interface Cp {
  dir: string;
  cp: RunningControlPlane;
  api: string;
  admin: string;
}

async function controlPlane(): Promise<Cp> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jibe-agent-cp-'));
  const cp = await startTestControlPlane({
    container: registerPlugins(), dataDir: dir, settings: DEFAULT_MESH_SETTINGS, host: '127.0.0.1',
    discoveryPort: 0, apiPort: 0, apiTlsPort: 0, configStore: 'file', stateStore: 'file', platforms: ['vm'], logger: pino({ level: 'silent' }),
  });
  return { dir, cp, api: `http://127.0.0.1:${cp.ports.api}`, admin: await readAdminToken(dir) };
}

async function mint(c: Cp, body: Record<string, unknown>): Promise<string> {
  const res = await fetch(`${c.api}/api/v1/vm/tokens`, { method: 'POST', headers: { authorization: `Bearer ${c.admin}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const json = (await res.json()) as { token: string };
  assert.equal(res.status, 200, JSON.stringify(json));
  return json.token;
}

async function workloads(c: Cp): Promise<Workload[]> {
  return ((await (await fetch(`${c.api}/api/v1/workloads`)).json()) as { workloads: Workload[] }).workloads;
}

function options(stateDir: string, extra: Partial<JoinOptions>): JoinOptions {
  return {
    stateDir, services: [{ name: 'reviews', port: 9080 }], labels: { version: 'v3' }, address: '127.0.0.1', heartbeatMs: 200,
    capture: false, proxy: false, proxyUid: 1337, proxyGid: 1337, dropPrivileges: false, jibeEntry: path.join(REPO, 'cli/jibe.ts'), log: () => {}, ...extra,
  };
}

describe('node agent', () => {
  let a: Cp;
  let b: Cp;
  let app: http.Server;
  let appHealthy = true;
  let health: string;
  const dirs: string[] = [];
  const stateDir = () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'jibe-agent-state-'));
    fs.rmSync(d, { recursive: true });
    dirs.push(d);
    return d;
  };

  before(async () => {
    [a, b] = await Promise.all([controlPlane(), controlPlane()]);
    app = http.createServer((_req, res) => res.writeHead(appHealthy ? 200 : 503).end());
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    health = `http://127.0.0.1:${(app.address() as AddressInfo).port}/health`;
  });
  after(async () => {
    await Promise.all([a.cp.close(), b.cp.close()]);
    app.close();
    for (const d of [a.dir, b.dir, ...dirs]) fs.rmSync(d, { recursive: true, force: true });
  });

  it('refuses a token for another control plane (root) before writing anything, and keeps its use', async () => {
    const token = await mint(a, { namespace: 'default', serviceAccount: 'reviews', uses: 1 });
    // Same token, but pointing at control plane b: its root is not the pinned one.
    const { decodeJoinToken, encodeJoinToken } = await import('../../../platforms/vm/join-token.ts');
    const t = decodeJoinToken(token);
    const redirected = encodeJoinToken({ ...t, addresses: [`127.0.0.1:${b.cp.ports.apiTls}`] });
    const dir = stateDir();
    await assert.rejects(NodeAgent.join(options(dir, { token: redirected })), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'JIBE_ERR_JOIN_TOKEN');
      assert.match(e.message, /does not hold the root this join token pins/);
      return true;
    });
    assert.equal(fs.existsSync(dir), false, 'nothing written');
    const list = ((await (await fetch(`${a.api}/api/v1/vm/tokens`, { headers: { authorization: `Bearer ${a.admin}` } })).json()) as { tokens: Array<{ uses: number }> }).tokens;
    assert.equal(list[0].uses, 0, 'the token was not spent');
  });

  it('joins, registers with host facts and token labels, follows health, resumes without a second use, and leaves', async () => {
    const token = await mint(a, { namespace: 'default', serviceAccount: 'reviews', uses: 1, labels: { app: 'reviews' } });
    const dir = stateDir();
    const agent = await NodeAgent.join(options(dir, { token, health: { url: health, intervalMs: 100, failureThreshold: 2 } }));
    const [w] = await workloads(a);
    assert.equal(w.identity, 'spiffe://cluster.local/ns/default/sa/reviews');
    assert.deepEqual(w.labels, { app: 'reviews', version: 'v3' });
    assert.equal(w.health, 'healthy');
    assert.equal(typeof w.host?.hostname, 'string');
    assert.equal(fs.statSync(path.join(dir, 'certs/key.pem')).mode & 0o777, 0o600);

    appHealthy = false;
    await waitFor(async () => (await workloads(a))[0]?.health === 'unhealthy', 'the workload to turn unhealthy');
    appHealthy = true;
    await waitFor(async () => (await workloads(a))[0]?.health === 'healthy', 'the workload to recover');

    // The control plane forgets the workload (a restart without its state): the heartbeat registers it again.
    await fetch(`${a.api}/api/v1/workloads/default/${w.name}`, { method: 'DELETE' });
    await waitFor(async () => (await workloads(a)).length === 1, 'the agent to register again');

    await agent.stop();
    assert.equal((await workloads(a))[0].health, 'unhealthy', 'a stopped agent reports its VM out of service');
    // Same state dir, same (now spent) single-use token: resumes from the kept certificate.
    const again = await NodeAgent.join(options(dir, { token, health: { url: health, intervalMs: 100 } }));
    await waitFor(async () => (await workloads(a))[0]?.health === 'healthy', 'the resumed agent to report healthy');
    assert.equal((await workloads(a)).length, 1, 'no duplicate registration');
    const status = await agentStatus(dir);
    assert.equal(status.identity, 'spiffe://cluster.local/ns/default/sa/reviews');
    assert.equal(status.agent.running, false, 'the pid file names this test process, which is not "another" agent');
    assert.ok(status.certificate && !status.certificate.expired);
    await again.stop();

    const result = await leave(dir);
    assert.equal(result.deregistered, true);
    assert.deepEqual(await workloads(a), []);
    assert.equal(fs.existsSync(dir), false);
  });

  it('refuses a reused single-use token, an expired one and a revoked one with their reasons', async () => {
    const used = await mint(a, { namespace: 'default', serviceAccount: 'ratings', uses: 1 });
    const first = await NodeAgent.join(options(stateDir(), { token: used, name: 'ratings-1' }));
    await first.stop();
    const revoked = await mint(a, { namespace: 'default', serviceAccount: 'ratings', uses: 1 });
    await fetch(`${a.api}/api/v1/vm/tokens/${encodeURIComponent(revoked)}`, { method: 'DELETE', headers: { authorization: `Bearer ${a.admin}` } });
    const expired = await mint(a, { namespace: 'default', serviceAccount: 'ratings', ttlSeconds: 1 });
    await new Promise((r) => setTimeout(r, 1100)); // past the 1 s lifetime
    for (const [token, why] of [[used, /allows no more/], [revoked, /revoked at/], [expired, /expired at/]] as const) {
      const dir = stateDir();
      await assert.rejects(NodeAgent.join(options(dir, { token, name: 'ratings-2' })), (e: Error & { code?: string }) => {
        assert.equal(e.code, 'JIBE_ERR_JOIN_TOKEN', e.message);
        assert.match(e.message, why);
        return true;
      });
      assert.equal(fs.existsSync(dir), false, 'nothing written');
    }
  });

  it('on the TLS port: a VM acts only for its own identity; other endpoints are not served', async () => {
    const reviews = stateDir();
    const ratings = stateDir();
    const ra = await NodeAgent.join(options(reviews, { token: await mint(a, { namespace: 'default', serviceAccount: 'reviews' }), name: 'reviews-x' }));
    const rb = await NodeAgent.join(options(ratings, { token: await mint(a, { namespace: 'default', serviceAccount: 'ratings' }), name: 'ratings-x' }));
    const address = `127.0.0.1:${a.cp.ports.apiTls}`;
    const cert = readCertificate(ratings, 'spiffe://cluster.local/ns/default/sa/ratings')!;
    const asRatings = { roots: cert.trustBundle, controlPlane: ra.state.controlPlane.spiffeId, client: { keyPem: cert.keyPem, certChainPem: cert.certChainPem } };
    const code = (p: Promise<unknown>) => p.then(() => 'ok', (e: { code?: string }) => e.code);
    assert.equal(await code(callControlPlane(address, 'DELETE', '/api/v1/vm/workloads/default/reviews-x', undefined, asRatings)), 'JIBE_ERR_FORBIDDEN');
    assert.equal(await code(callControlPlane(address, 'POST', '/api/v1/vm/workloads/default/reviews-x/health', { health: 'unhealthy' }, asRatings)), 'JIBE_ERR_FORBIDDEN');
    assert.equal(await code(callControlPlane(address, 'PUT', '/api/v1/vm/workloads', { name: 'reviews-x', address: '10.0.0.1', services: [] }, asRatings)), 'JIBE_ERR_FORBIDDEN');
    assert.equal(await code(callControlPlane(address, 'PUT', '/api/v1/vm/workloads', { name: 'evil', serviceAccount: 'reviews', address: '10.0.0.1', services: [] }, asRatings)), 'JIBE_ERR_FORBIDDEN');
    const anonymous = { roots: cert.trustBundle, controlPlane: ra.state.controlPlane.spiffeId };
    assert.equal(await code(callControlPlane(address, 'PUT', '/api/v1/vm/workloads', { name: 'anon', address: '10.0.0.1', services: [] }, anonymous)), 'JIBE_ERR_UNAUTHENTICATED');
    assert.equal(await code(callControlPlane(address, 'POST', '/api/v1/config/apply', { documents: [] }, asRatings)), 'JIBE_ERR_NOT_FOUND');
    assert.equal(await code(callControlPlane(address, 'GET', '/api/v1/vm/tokens', undefined, asRatings)), 'JIBE_ERR_UNAUTHENTICATED');
    // Renewal by the certificate in force (no token).
    const renewed = await callControlPlane<{ spiffeId: string }>(address, 'POST', '/api/v1/certificates', {
      credential: { type: 'workload-certificate', token: '' },
      csr: (await import('../../../proxy/identity/workload-key.ts').then((m) => m.generateKeyAndCsr(cert.spiffeId))).csrPem,
    }, asRatings);
    assert.equal(renewed.spiffeId, cert.spiffeId);
    assert.equal((await workloads(a)).find((w) => w.name === 'reviews-x')?.health, 'healthy');
    await ra.stop();
    await rb.stop();
  });

  it('jibe vm token create | list | revoke', async () => {
    const run = (args: string[]) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, [path.join(REPO, 'cli/jibe.ts'), ...args, '--server', a.api, '--data-dir', a.dir], { stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d) => (stdout += d));
        child.stderr.on('data', (d) => (stderr += d));
        child.on('exit', (code) => resolve({ code, stdout, stderr }));
      });
    const created = await run(['vm', 'token', 'create', '-n', 'default', '--service-account', 'details', '--ttl', '2h', '--labels', 'version=v1', '--uses', '2']);
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /^jibe1\.[A-Za-z0-9_-]+\n$/);
    const id = /token ([0-9a-f]{12}) for spiffe:\/\/cluster.local\/ns\/default\/sa\/details, 2 use\(s\)/.exec(created.stderr)?.[1];
    assert.ok(id, created.stderr);
    const listed = await run(['vm', 'token', 'list']);
    assert.match(listed.stdout, new RegExp(`${id}\\s+default\\s+details\\s+0\\s+2\\s+\\S+\\s+valid`));
    assert.equal((await run(['vm', 'token', 'revoke', id])).code, 0);
    assert.match((await run(['vm', 'token', 'list'])).stdout, new RegExp(`${id}.*revoked`));
    const missing = await run(['vm', 'token', 'revoke', 'abcdefabcdef']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /JIBE_ERR_NOT_FOUND/);
    const noAdmin = await new Promise<string>((resolve) => {
      const child = spawn(process.execPath, [path.join(REPO, 'cli/jibe.ts'), 'vm', 'token', 'list', '--server', a.api, '--data-dir', '/nonexistent-jibe'], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      child.stderr.on('data', (d) => (err += d));
      child.on('exit', () => resolve(err));
    });
    assert.match(noAdmin, /cannot read the admin token in \/nonexistent-jibe/);
  });
});
