// A VM joins for real: a network namespace stands in for the VM, on a LAN
// with the host, where the control plane runs (in this process, TLS API and
// TLS discovery on the host's LAN address; test/integration/vm/vm-netns.ts).
// The agent runs as `jibe agent join` inside the namespace as root, installs
// capture, drops to the proxy user, starts the sidecar, registers and reports
// health; `leave` restores iptables-save byte for byte. Refused tokens
// (expired, revoked, reused, made for another root) install nothing.
// Addresses are documentation ranges that exist only on the LAN made here.
// Two VMs talking through both sidecars: vm-two-vms.test.ts.
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { normalizeIptablesSave } from '../../../agents/capture/iptables-state.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { HTTP_APP, joinVm, mint, startLan, startMesh, startVm, vmEnvironmentProblem, workloads } from './vm-netns.ts';
import type { Defer, Lan, Vm } from './vm-netns.ts';
import { defineUnlessProblem } from '../capture/netns-environment.ts';

defineUnlessProblem('vm join integration: the agent in network namespaces', vmEnvironmentProblem(), defineTests);

/** Cleanup in reverse order of setup: agents stop while the control plane runs, namespaces go last. */
function cleanupStack(t: TestContext): Defer {
  const cleanups: Array<() => unknown> = [];
  t.after(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });
  return (fn) => cleanups.push(fn);
}

/** `jibe agent join` running in the VM until the test ends (or leave stops it). */
function join(defer: Defer, vm: Vm, token: string): { output: () => string } {
  return joinVm(defer, vm, token, ['--service', 'reviews:9080', '--labels', 'version=v3',
    '--health', 'http://127.0.0.1:9080/health', '--health-interval', '200ms', '--health-failures', '2', '--heartbeat', '500ms', '--name', 'reviews-vm']);
}

async function setup(t: TestContext): Promise<{ defer: Defer; lan: Lan }> {
  const defer = cleanupStack(t);
  return { defer, lan: await startLan(defer, '198.51.100') };
}

function defineTests(): void {
  test('a VM joins from its namespace: capture, proxy, registration, health in and out, and leave restores iptables-save', async (t) => {
    const { defer, lan } = await setup(t);
    const vm = await startVm(defer, lan, 1, { app: HTTP_APP });
    const mesh = await startMesh(defer, lan);
    const HOST_ADDR = lan.hostAddress;
    const before = normalizeIptablesSave(await vm.save());
    const agent = join(defer, vm, await mint(mesh, { namespace: 'default', serviceAccount: 'reviews', uses: 1 }));

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
    const { defer, lan } = await setup(t);
    const vm = await startVm(defer, lan, 1, { app: HTTP_APP });
    const mesh = await startMesh(defer, lan);
    const other = await startMesh(defer, lan);
    const HOST_ADDR = lan.hostAddress;
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
