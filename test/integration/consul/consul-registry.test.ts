// The consul platform against a real Consul agent: instances registered,
// deregistered and flapping in Consul show up in the control plane's view
// (polled with a bound, never timed); malformed registrations are logged and
// skipped; traffic from a mesh sidecar reaches a Consul-registered service;
// a Consul restart keeps the last view, then resynchronizes.
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import type { RunningControlPlane } from '../../../core/control-plane.ts';
import type { Service } from '../../../core/model/service.ts';
import type { Workload } from '../../../core/model/workload.ts';
import { freePort } from '../../../cli/up/ports.ts';
import { deregisterService, registerService } from '../../../platforms/consul/consul-registration.ts';
import { startProxy } from '../../../proxy/proxy.ts';
import type { ProxyOptions, RunningProxy } from '../../../proxy/proxy.ts';
import { consulSkipReason, runJibeSource, startConsulAgent, waitUntil } from './consul-agent.ts';
import type { ConsulAgent } from './consul-agent.ts';
import { startTestControlPlane } from '../../helpers/control-plane.ts';

const RATINGS = 'ratings.default.svc.cluster.local';

/** A log sink the test can search: skipped registrations must be logged. */
function memoryLogger(): { logger: pino.Logger; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines };
}

/** An app whose health endpoint the test turns on and off. */
async function startApp(name: string): Promise<{ port: number; healthy: boolean; close(): Promise<void> }> {
  const app = {
    port: 0,
    healthy: true,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
  const server = http.createServer((req, res) => {
    if (req.url === '/health') {
      res.statusCode = app.healthy ? 200 : 503;
      return res.end();
    }
    res.setHeader('x-app', name);
    res.end(`${name} ${req.method} ${req.url}`);
  });
  server.keepAliveTimeout = 100;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  app.port = (server.address() as AddressInfo).port;
  return app;
}


async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url);
  assert.equal(res.status, 200, `${url}: HTTP ${res.status}`);
  return (await res.json()) as T;
}

function request(port: number, host: string, path = '/'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, headers: { host }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('consul platform against a real Consul agent', { skip: consulSkipReason() }, () => {
  let agent: ConsulAgent;
  let cp: RunningControlPlane;
  let dir: string;
  let api: string;
  let logs: string[];
  const apps: Array<{ close(): Promise<void> }> = [];

  const consulWorkloads = async () => (await getJson<{ workloads: Workload[] }>(`${api}/api/v1/workloads`)).workloads.filter((w) => w.platform === 'consul');
  const service = async (hostname: string) => (await getJson<{ services: Service[] }>(`${api}/api/v1/services`)).services.find((s) => s.hostname === hostname);
  const names = async () => (await consulWorkloads()).map((w) => `${w.name}:${w.health}`).sort();
  /** A sidecar subscribed to this control plane's discovery as `node`. */
  const sidecar = (node: ProxyOptions['node']) =>
    startProxy({ node, discoveryAddress: `127.0.0.1:${cp.ports.discovery}`, outboundPort: 0, adminPort: 0, logger: pino({ level: 'silent' }), drainTimeoutMs: 500 });

  before(async () => {
    agent = await startConsulAgent();
    dir = await mkdtemp(join(tmpdir(), 'jibe-consul-'));
    const memory = memoryLogger();
    logs = memory.lines;
    cp = await startTestControlPlane({
      dataDir: dir,
      platforms: ['vm', 'consul'],
      pluginOptions: { consul: { address: agent.address } },
      logger: memory.logger,
    });
    api = `http://127.0.0.1:${cp.ports.api}`;
  });
  after(async () => {
    await cp?.close();
    for (const app of apps) await app.close();
    await agent?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('register, health flap and deregister in Consul: the control plane follows', async () => {
    const app = await startApp('ratings-v1');
    apps.push(app);
    const node = `${agent.nodeName}.${agent.datacenter}`.toLowerCase();
    const { workload } = await registerService(agent.client(), {
      service: 'ratings',
      id: 'ratings-v1',
      port: app.port,
      address: '127.0.0.1',
      meta: { version: 'v1' },
      protocol: 'http',
      check: `http://127.0.0.1:${app.port}/health`,
      checkInterval: '1s',
      sidecar: false,
    });
    assert.equal(workload, `ratings-v1.${node}`);
    await waitUntil('ratings-v1 healthy in the mesh', async () => ((await names()).includes(`ratings-v1.${node}:healthy`) ? true : undefined));
    const ratings = await service(RATINGS);
    assert.deepEqual(ratings?.ports, [{ name: `http-${app.port}`, port: app.port, protocol: 'http' }]);
    const [w] = (await consulWorkloads()).filter((x) => x.name === `ratings-v1.${node}`);
    assert.equal(w.labels.version, 'v1');
    assert.equal(w.address, '127.0.0.1');
    assert.equal(w.locality?.region, agent.datacenter);

    // Health flap: a failing check makes the instance unhealthy (no traffic); passing again brings it back.
    app.healthy = false;
    await waitUntil('ratings-v1 unhealthy after its check fails', async () => ((await names()).includes(`ratings-v1.${node}:unhealthy`) ? true : undefined));
    assert.ok(await service(RATINGS), 'the service stays while it has no healthy instance');
    app.healthy = true;
    await waitUntil('ratings-v1 back after its check passes', async () => ((await names()).includes(`ratings-v1.${node}:healthy`) ? true : undefined));

    assert.equal(await deregisterService(agent.client(), 'ratings-v1'), true);
    await waitUntil('ratings gone after deregistration', async () => ((await service(RATINGS)) === undefined && (await names()).length === 0 ? true : undefined));
    assert.equal(await deregisterService(agent.client(), 'ratings-v1'), false);
  });

  it('jibe consul register|deregister from flags and from a file', async () => {
    const jibe = (args: string[]) => runJibeSource([...args, '--consul-address', agent.address]);
    const byFlags = await jibe(['consul', 'register', '--service', 'cli-flags', '--port', '7100', '--address', '127.0.0.1', '--meta', 'version=v3', '--tags', 'tier=web,http', '--no-sidecar']);
    assert.equal(byFlags.code, 0, byFlags.stderr);
    assert.match(byFlags.stdout, /registered cli-flags instance cli-flags-7100 in Consul \(mesh workload cli-flags-7100\./);
    const file = join(dir, 'services.yaml');
    await writeFile(file, 'services:\n  - service: cli-file\n    port: 7200\n    address: 127.0.0.1\n    protocol: grpc\n    sidecar: false\n');
    const byFile = await jibe(['consul', 'register', '-f', file]);
    assert.equal(byFile.code, 0, byFile.stderr);
    const w = await waitUntil('both CLI registrations in the mesh', async () => {
      const all = await consulWorkloads();
      const flags = all.find((x) => x.name.startsWith('cli-flags-7100.'));
      return flags && all.some((x) => x.name.startsWith('cli-file-7200.')) ? flags : undefined;
    });
    assert.deepEqual(w.labels, { version: 'v3', tier: 'web' });
    assert.equal((await service('cli-file.default.svc.cluster.local'))?.ports[0].protocol, 'grpc');

    const bad = join(dir, 'bad.yaml');
    await writeFile(bad, '- service: Bad_Name\n  port: 0\n');
    const refused = await jibe(['consul', 'register', '-f', bad]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /JIBE_ERR_WORKLOAD_INVALID|not a DNS label/);
    assert.match(refused.stderr, /port/);

    for (const id of ['cli-flags-7100', 'cli-file-7200']) assert.equal((await jibe(['consul', 'deregister', id])).code, 0);
    assert.equal((await jibe(['consul', 'deregister', 'cli-flags-7100'])).code, 1, 'an unknown ID is an error');
    await waitUntil('CLI registrations gone', async () => ((await consulWorkloads()).some((x) => x.name.startsWith('cli-')) ? undefined : true));
  });

  it('an instance registered with a Jibe sidecar is reached through the sidecar port', async () => {
    // Consul checks that the sidecar listens: a plain listener stands in for it.
    const sidecar = net.createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => sidecar.listen(0, '127.0.0.1', resolve));
    const sidecarPort = (sidecar.address() as AddressInfo).port;
    try {
      await registerService(agent.client(), { service: 'details', id: 'details-1', port: 9080, address: '127.0.0.1', protocol: 'http', sidecar: { port: sidecarPort } });
      // The instance and its sidecar reach the mesh in separate Consul answers: wait for the view that has both.
      const w = await waitUntil('details with its sidecar', async () => (await consulWorkloads()).find((x) => x.name.startsWith('details-1.') && x.proxy !== undefined));
      assert.deepEqual(w.proxy, { inboundPorts: { 9080: sidecarPort } });
    } finally {
      sidecar.close();
    }
    await deregisterService(agent.client(), 'details-1');
    await waitUntil('details gone', async () => ((await service('details.default.svc.cluster.local')) ? undefined : true));
  });

  it('malformed registrations are logged and skipped; the rest still arrives', async () => {
    const register = (body: object) => agent.client().put('/v1/catalog/register', body);
    const node = { Node: 'ext-1', Address: '127.0.0.1', Datacenter: agent.datacenter };
    await register({ ...node, Service: { ID: 'web-noport', Service: 'web', Port: 0 } });
    await register({ ...node, Service: { ID: 'web-badmeta', Service: 'web', Port: 8080, Meta: { 'jibe-service-port': 'eighty' } } });
    // Two instances the mesh would name alike (`<id>.<node>.<dc>`): the second is a duplicate.
    await register({ ...node, Service: { ID: 'web-dup.x', Service: 'web', Port: 8080 } });
    await register({ Node: 'x.ext-1', Address: '127.0.0.1', Datacenter: agent.datacenter, Service: { ID: 'web-dup', Service: 'web', Port: 8081 } });
    await register({ ...node, Service: { ID: 'bad_name', Service: 'Bad_Name', Port: 8080 } });
    await register({ ...node, Service: { ID: 'web-ok', Service: 'web', Port: 8080, Meta: { version: 'v2' } } });
    await waitUntil('the valid web instance', async () => (await consulWorkloads()).find((w) => w.name === 'web-ok.ext-1.dc1'));
    await waitUntil('skips logged', () => {
      const skipped = logs.filter((l) => l.includes('Consul registration skipped'));
      return ['no port', 'jibe-service-port', 'duplicate instance', 'DNS label'].every((m) => skipped.some((l) => l.includes(m))) ? true : undefined;
    });
    const web = (await consulWorkloads()).filter((w) => w.name.startsWith('web') || w.name.startsWith('bad')).map((w) => w.name).sort();
    assert.deepEqual(web, ['web-dup.x.ext-1.dc1', 'web-ok.ext-1.dc1'], 'the first of the two alike-named instances, and the valid one');
    const status = await fetch(`${api}/healthz`);
    assert.equal(status.status, 200, 'the control plane is still up');
    await agent.client().put('/v1/catalog/deregister', { Node: 'ext-1' });
    await agent.client().put('/v1/catalog/deregister', { Node: 'x.ext-1' });
    await waitUntil('ext-1 instances gone', async () => ((await consulWorkloads()).some((w) => w.name.endsWith('.ext-1.dc1')) ? undefined : true));
  });

  it('a mesh sidecar routes traffic to a Consul-registered service', async () => {
    const app = await startApp('reviews-consul');
    apps.push(app);
    await registerService(agent.client(), { service: 'reviews', id: 'reviews-1', port: app.port, address: '127.0.0.1', protocol: 'http', sidecar: false });
    await waitUntil('reviews in the mesh', async () => (await consulWorkloads()).find((w) => w.name.startsWith('reviews-1.')));
    // The local-mesh workload whose sidecar sends the traffic (a vm-platform registration, as `jibe up` makes).
    const registered = await fetch(`${api}/api/v1/workloads`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'productpage', address: '127.0.0.1', labels: { app: 'productpage' }, services: [{ name: 'productpage', port: 9081 }] }),
    });
    assert.equal(registered.status, 200, await registered.text());
    let proxy: RunningProxy | undefined;
    try {
      proxy = await sidecar({ id: 'sidecar~productpage.default', type: 'sidecar', namespace: 'default', workload: 'productpage', platform: 'vm', labels: { app: 'productpage' } });
      const outbound = proxy.ports.outbound as number;
      const reply = await waitUntil('a routed answer from the Consul service', async () => {
        const r = await request(outbound, `reviews.default.svc.cluster.local:${app.port}`, '/reviews/1');
        return r.status === 200 ? r : undefined;
      });
      assert.equal(reply.body, 'reviews-consul GET /reviews/1');
    } finally {
      await proxy?.close();
      await deregisterService(agent.client(), 'reviews-1');
    }
  });

  it('round trip: mesh workload → Consul service through its Jibe sidecar → back to the mesh workload', async () => {
    // productpage: a local-mesh (vm) workload with its app; reviews: a Consul instance whose app calls productpage back.
    const productpage = await startApp('productpage');
    apps.push(productpage);
    let reviewsOutbound = 0;
    const reviews = http.createServer((req, res) => {
      void request(reviewsOutbound, `productpage.default.svc.cluster.local:${productpage.port}`, '/from-reviews').then(
        (back) => {
          // Until reviews' sidecar knows productpage its outbound answers 503: pass that on, so the wait below retries.
          if (back.status !== 200) res.statusCode = 502;
          res.end(`reviews saw ${req.url}; productpage said: ${back.body}`);
        },
        (err: Error) => {
          res.statusCode = 502;
          res.end(err.message);
        },
      );
    });
    await new Promise<void>((resolve) => reviews.listen(0, '127.0.0.1', resolve));
    apps.push({ close: () => new Promise<void>((resolve) => reviews.close(() => resolve())) });
    const reviewsPort = (reviews.address() as AddressInfo).port;
    // Below the ephemeral range: a port bind(0) handed out may be taken by an outgoing connection before the sidecar binds it.
    const sidecarPort = await freePort();

    const put = await fetch(`${api}/api/v1/workloads`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'productpage-rt', address: '127.0.0.1', labels: { app: 'productpage' }, services: [{ name: 'productpage', port: productpage.port }] }),
    });
    assert.equal(put.status, 200, await put.text());
    const { workload } = await registerService(agent.client(), { service: 'reviews', id: 'reviews-rt', port: reviewsPort, address: '127.0.0.1', protocol: 'http', sidecar: { port: sidecarPort } });

    const proxies: RunningProxy[] = [];
    try {
      // The Consul instance's Jibe sidecar: it gets its config as that workload and binds the inbound port Consul checks.
      const reviewsSidecar = await sidecar({ id: `sidecar~${workload}.default`, type: 'sidecar', namespace: 'default', workload, platform: 'consul', labels: {} });
      proxies.push(reviewsSidecar);
      reviewsOutbound = reviewsSidecar.ports.outbound as number;
      const productpageSidecar = await sidecar({ id: 'sidecar~productpage-rt.default', type: 'sidecar', namespace: 'default', workload: 'productpage-rt', platform: 'vm', labels: {} });
      proxies.push(productpageSidecar);
      // Healthy once Consul's check finds the sidecar listening (its first check may take one interval).
      await waitUntil('reviews healthy behind its sidecar', async () => {
        const w = (await consulWorkloads()).find((x) => x.name === workload);
        return w?.health === 'healthy' ? w : undefined;
      }, 40_000);
      // reviews may still have an instance from an earlier test of this file (its
      // deregistration reaches the mesh a moment later): wait for this one's answer.
      const reply = await waitUntil('the round trip', async () => {
        const r = await request(productpageSidecar.ports.outbound as number, `reviews.default.svc.cluster.local:${reviewsPort}`, '/reviews/2');
        return r.status === 200 && r.body.startsWith('reviews saw') ? r : undefined;
      });
      assert.equal(reply.body, 'reviews saw /reviews/2; productpage said: productpage GET /from-reviews');
    } finally {
      for (const p of proxies) await p.close();
      await deregisterService(agent.client(), 'reviews-rt');
    }
  });

  it('Consul stopped: the mesh keeps its last view; restarted: it resynchronizes', async () => {
    await registerService(agent.client(), { service: 'stable', id: 'stable-1', port: 7000, address: '127.0.0.1', sidecar: false });
    await waitUntil('stable-1 in the mesh', async () => (await consulWorkloads()).find((w) => w.name.startsWith('stable-1.')));
    await agent.stop();
    await waitUntil('the outage noticed', () => (logs.some((l) => l.includes('Consul query failed')) ? true : undefined));
    assert.ok((await consulWorkloads()).some((w) => w.name.startsWith('stable-1.')), 'last view kept while Consul is down');
    // A dev agent restarts empty: what is registered afterwards is the new truth.
    await agent.start();
    await registerService(agent.client(), { service: 'fresh', id: 'fresh-1', port: 7001, address: '127.0.0.1', sidecar: false });
    await waitUntil('resynchronized view', async () => {
      const now = (await consulWorkloads()).map((w) => w.name.split('.')[0]);
      return now.includes('fresh-1') && !now.includes('stable-1') ? true : undefined;
    });
    assert.ok(logs.some((l) => l.includes('resynchronizing')));
  });
});
