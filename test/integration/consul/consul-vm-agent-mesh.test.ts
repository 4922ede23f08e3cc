// `--registry consul` with capture and the sidecar, in network namespaces: VM
// B joins with a token but registers `ratings` (and its Jibe sidecar) in Consul;
// VM A joins the control plane's own vm registry. An unmodified curl in A
// reaches ratings in B by name, carried over mutual TLS by both sidecars: the
// mesh learnt from Consul alone that B's sidecar takes mesh mTLS (tlsMode tag +
// Jibe sidecar registration) and B's sidecar got its inbound listeners for a
// Consul workload. Leave removes the Consul instance and restores iptables.
//
// The Consul agent runs on the host (on a real VM it runs on the VM itself), so
// B reaches its HTTP API through a relay on the host's LAN address, and the
// check Consul runs dials B's address.
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import pino from 'pino';
import { normalizeIptablesSave } from '../../../agents/capture/iptables-state.ts';
import { registerPlugins } from '../../../cli/plugins.ts';
import { readAdminToken } from '../../../core/api/admin-token.ts';
import { DEFAULT_MESH_SETTINGS } from '../../../core/mesh/mesh-snapshot.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { curl, HTTP_APP, joinVm, metrics, mint, series, startLan, startVm, vmEnvironmentProblem, workloads } from '../vm/vm-netns.ts';
import type { Defer, JoinedAgent, Lan, Mesh } from '../vm/vm-netns.ts';
import { consulSkipReason, startConsulAgent } from './consul-agent.ts';
import type { ConsulAgent } from './consul-agent.ts';
import { startTestControlPlane } from '../../helpers/control-plane.ts';
import { defineUnlessProblem } from '../capture/netns-environment.ts';

const PRODUCTPAGE = 'spiffe://cluster.local/ns/default/sa/productpage';
const RATINGS = 'spiffe://cluster.local/ns/default/sa/ratings';

defineUnlessProblem('a VM registered in Consul, reached through capture and mTLS', vmEnvironmentProblem() ?? consulSkipReason(), defineTests);

/** The control plane on the host with the vm and consul platforms; TLS API and discovery on the LAN. */
async function startMesh(defer: Defer, lan: Lan, consul: ConsulAgent): Promise<Mesh> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'jibe-consul-vm-cp-'));
  const cp = await startTestControlPlane({
    container: registerPlugins(), dataDir, settings: DEFAULT_MESH_SETTINGS, host: '127.0.0.1', discoveryPort: 0, discoveryTlsPort: 0,
    apiPort: 0, apiTlsPort: 0, apiTlsHost: lan.hostAddress, configStore: 'file', stateStore: 'file', platforms: ['vm', 'consul'],
    pluginOptions: { consul: { address: consul.address } }, logger: pino({ level: 'silent' }),
  });
  defer(async () => {
    await cp.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });
  return { cp, api: `http://127.0.0.1:${cp.ports.api}`, admin: await readAdminToken(dataDir), dataDir };
}

/** A TCP relay on the host's LAN address to Consul's loopback HTTP API; its address as a URL. */
async function relayConsul(defer: Defer, lan: Lan, consul: ConsulAgent): Promise<string> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((inbound) => {
    const outbound = net.connect(consul.httpPort, '127.0.0.1');
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        inbound.destroy();
        outbound.destroy();
      });
    }
    inbound.pipe(outbound).pipe(inbound);
  });
  server.listen(0, lan.hostAddress);
  await once(server, 'listening');
  defer(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return `http://${lan.hostAddress}:${(server.address() as net.AddressInfo).port}`;
}

function defineTests(): void {
  test('VM A (vm registry) calls ratings in VM B (Consul registry) through capture and mTLS; leave removes B from Consul', async (t: TestContext) => {
    const cleanups: Array<() => unknown> = [];
    const defer: Defer = (fn) => cleanups.push(fn);
    t.after(async () => {
      for (const fn of cleanups.reverse()) await fn();
    });
    const consul = await startConsulAgent();
    defer(() => consul.stop());
    const lan = await startLan(defer, '203.0.114');
    const mesh = await startMesh(defer, lan, consul);
    const consulUrl = await relayConsul(defer, lan, consul);
    const vmB = await startVm(defer, lan, 2, { app: HTTP_APP });
    const vmA = await startVm(defer, lan, 1, { hosts: { ratings: vmB.address } });
    const beforeB = normalizeIptablesSave(await vmB.save());

    const agentB: JoinedAgent = joinVm(defer, vmB, await mint(mesh, { namespace: 'default', serviceAccount: 'ratings', uses: 1 }), [
      '--name', 'ratings-vm', '--service', 'ratings:9080', '--labels', 'app=ratings,version=v1',
      // Consul (on the host) runs the check, so it names B's address; capture hands it to B's sidecar (permissive).
      '--health', `http://${vmB.address}:9080/health`, '--health-interval', '1s', '--health-failures', '1', '--heartbeat', '500ms',
      '--registry', 'consul', '--consul-address', consulUrl, '--discovery-port', String(mesh.cp.ports.discoveryTls),
    ]);
    const agentA: JoinedAgent = joinVm(defer, vmA, await mint(mesh, { namespace: 'default', serviceAccount: 'productpage', uses: 1 }), [
      '--name', 'productpage-vm', '--labels', 'app=productpage', '--heartbeat', '500ms',
    ]);
    const both = () => `--- agent A\n${agentA.output()}\n--- agent B\n${agentB.output()}`;

    const name = `ratings-ratings-vm.${consul.nodeName}.${consul.datacenter}`.toLowerCase();
    const b = await waitFor(async () => (await workloads(mesh)).find((w) => w.name === name && w.health === 'healthy'), `B in the mesh through Consul\n${both()}`, 90_000);
    assert.equal(b.platform, 'consul');
    assert.equal(b.identity, RATINGS);
    assert.equal(b.labels['security.istio.io/tlsMode'], 'istio', 'the tag reached the mesh as the label auto mTLS reads');
    assert.deepEqual(b.proxy, { inboundPorts: { 9080: 9080 } });
    assert.equal((await workloads(mesh)).some((w) => w.platform === 'vm' && w.name === 'ratings-vm'), false, 'B is not in the vm registry');
    await waitFor(async () => (await workloads(mesh)).find((w) => w.name === 'productpage-vm' && w.health === 'healthy'), `A to serve\n${both()}`, 90_000);

    const ok = await waitFor(async () => {
      const r = await curl(vmA, 'http://ratings:9080/ratings/0');
      return r.status === 200 ? r : undefined;
    }, `A's call to ratings to succeed\n${both()}`, 60_000);
    assert.deepEqual(JSON.parse(ok.body), { vm: vmB.ns, path: '/ratings/0', from: '127.0.0.1' }, 'answered by the app in B, handed over by B\'s sidecar');
    const mB = await metrics(vmB);
    assert.ok(series(mB, 'istio_requests_total', { reporter: 'destination', connection_security_policy: 'mutual_tls', source_principal: PRODUCTPAGE, response_code: '200' }) >= 1,
      `B's sidecar (fronting a Consul workload) took A's call over mutual TLS:\n${mB.filter((l) => l.startsWith('istio_requests_total')).join('\n')}\n${both()}`);

    // Consul's check (through B's capture and sidecar) drives B's health.
    fs.writeFileSync(vmB.failFlag, '');
    await waitFor(async () => (await workloads(mesh)).find((w) => w.name === name)?.health === 'unhealthy', `B unhealthy once Consul's check fails\n${both()}`, 30_000);
    fs.rmSync(vmB.failFlag);
    await waitFor(async () => (await workloads(mesh)).find((w) => w.name === name)?.health === 'healthy', `B healthy again\n${both()}`, 30_000);

    const left = await vmB.jibe(['agent', 'leave', '--state-dir', vmB.stateDir]);
    assert.equal(left.code, 0, left.stderr + left.stdout);
    assert.equal(await agentB.exited, 0);
    const catalog = (await consul.client().get<Record<string, string[]>>('/v1/catalog/services')).body;
    assert.deepEqual(Object.keys(catalog).filter((s) => s.startsWith('ratings')), [], 'leave removed ratings and its sidecar from Consul');
    await waitFor(async () => !(await workloads(mesh)).some((w) => w.name === name), 'B gone from the mesh', 30_000);
    assert.equal(normalizeIptablesSave(await vmB.save()), beforeB, 'B: iptables-save after leave equals before join');
  });
}
