// Issue 5's scenario: two VMs (network namespaces on a LAN with the host,
// where the control plane runs) join with tokens; an unmodified app in VM A
// calls `http://ratings:9080/ratings/0` in plain HTTP, and that call is
// captured by A's iptables, carried over mutual TLS by A's sidecar, captured
// again in B into B's sidecar, authorized there (only A's principal may call),
// and answered by the ratings app in B.
//
// Name resolution: A's /etc/hosts (iproute2's /etc/netns/<ns>/hosts, mounted
// by `ip netns exec`) names B's address for `ratings` and `echo`, as DNS for a
// VM service without a VIP would (a headless service). Without capture that
// address would take the app straight to B; the proof that it did not is on
// B's side: B's sidecar saw A's certificate (source_principal, mutual_tls in
// its metrics) and an ALLOW policy naming only A's principal lets the call in,
// while the same request in plaintext, or over mTLS with another identity,
// is refused 403.
//
// Also: a TCP service (`echo:9000/tcp-echo`) through both captures by the
// original destination; B's health failing removes it from the endpoints and
// recovery re-adds it; `leave` restores iptables-save byte for byte in both.
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import fs from 'node:fs';
import { normalizeIptablesSave } from '../../../agents/capture/iptables-state.ts';
import { certificateExpiry, generateKeyAndCsr } from '../../../proxy/identity/workload-key.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { applyRules, captureWire, curl, HTTP_AND_ECHO_APP, joinVm, metrics, mint, series, startLan, startMesh, startVm, vmEnvironmentProblem, workloads } from './vm-netns.ts';
import type { Defer, JoinedAgent, Mesh, Vm } from './vm-netns.ts';
import { defineUnlessProblem } from '../capture/netns-environment.ts';

const PRODUCTPAGE = 'spiffe://cluster.local/ns/default/sa/productpage';
const RATINGS = 'spiffe://cluster.local/ns/default/sa/ratings';
const INTRUDER = 'spiffe://cluster.local/ns/default/sa/intruder';

defineUnlessProblem('two VMs through capture and mTLS', vmEnvironmentProblem(), defineTests);

const POLICY = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: ratings-from-productpage
  namespace: default
spec:
  selector:
    matchLabels:
      app: ratings
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/default/sa/productpage"]
`;

/** A TCP exchange from a Node one-liner in the VM: connect to `echo:9000`, send a line, print what comes back. */
async function tcpEcho(vm: Vm, line: string): Promise<string> {
  const script = `const c = require('node:net').connect(9000, 'echo'); let got = ''; c.setTimeout(10000, () => c.destroy());
c.on('connect', () => c.write(${JSON.stringify(line)}));
c.on('data', (d) => { got += d; if (got.includes(${JSON.stringify(line)})) c.end(); });
c.on('close', () => process.stdout.write(got)); c.on('error', (e) => process.stderr.write(e.message));`;
  return (await vm.exec(process.execPath, ['-e', script])).stdout;
}

/** A request to B's app port straight from the host (no capture there), optionally over mTLS with a mesh certificate. */
function fromHost(address: string, cert?: { keyPem: string; certChainPem: string; roots: string[] }): Promise<number> {
  return new Promise((resolve, reject) => {
    const options: https.RequestOptions & { ALPNProtocols?: string[] } = { host: address, port: 9080, path: '/ratings/0', headers: { host: 'ratings:9080' }, agent: false, timeout: 10_000 };
    // A mesh client offers Istio's ALPN marker; the server's certificate names a SPIFFE ID, not a host name.
    const req = cert
      ? https.request({ ...options, key: cert.keyPem, cert: cert.certChainPem, ca: cert.roots, ALPNProtocols: ['istio', 'http/1.1'], checkServerIdentity: () => undefined } as https.RequestOptions)
      : http.request(options);
    req.on('timeout', () => req.destroy(new Error('no answer')));
    req.on('error', reject);
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.end();
  });
}

function defineTests(): void {
  test('VM A calls ratings in VM B through capture and mTLS; authorized by principal; TCP by original destination; health; leave', async (t: TestContext) => {
    // Cleanup in reverse: agents stop (and report) while the control plane still runs, namespaces go last.
    const cleanups: Array<() => unknown> = [];
    const defer: Defer = (fn) => cleanups.push(fn);
    t.after(async () => {
      for (const fn of cleanups.reverse()) await fn();
    });
    const lan = await startLan(defer, '203.0.113');
    const mesh: Mesh = await startMesh(defer, lan);
    const vmB = await startVm(defer, lan, 2, { app: HTTP_AND_ECHO_APP });
    const vmA = await startVm(defer, lan, 1, { hosts: { ratings: vmB.address, echo: vmB.address } });
    const before = { a: normalizeIptablesSave(await vmA.save()), b: normalizeIptablesSave(await vmB.save()) };
    await applyRules(mesh, POLICY);

    const agentB: JoinedAgent = joinVm(defer, vmB, await mint(mesh, { namespace: 'default', serviceAccount: 'ratings', uses: 1 }), [
      '--name', 'ratings-vm', '--service', 'ratings:9080', '--service', 'echo:9000/tcp-echo', '--labels', 'app=ratings,version=v1',
      '--health', 'http://127.0.0.1:9080/health', '--health-interval', '200ms', '--health-failures', '2', '--heartbeat', '500ms',
    ]);
    const agentA: JoinedAgent = joinVm(defer, vmA, await mint(mesh, { namespace: 'default', serviceAccount: 'productpage', uses: 1 }), [
      '--name', 'productpage-vm', '--labels', 'app=productpage', '--heartbeat', '500ms',
    ]);
    const both = () => `--- agent A\n${agentA.output()}\n--- agent B\n${agentB.output()}`;

    const b = await waitFor(async () => (await workloads(mesh)).find((w) => w.name === 'ratings-vm' && w.health === 'healthy'), `B to serve (sidecar ready)\n${both()}`, 90_000);
    assert.equal(b.identity, RATINGS);
    assert.equal(b.labels['security.istio.io/tlsMode'], 'istio', 'B is registered as taking mesh mTLS');
    assert.deepEqual(b.proxy, { inboundPorts: { 9080: 9080, 9000: 9000 } });
    await waitFor(async () => (await workloads(mesh)).find((w) => w.name === 'productpage-vm' && w.health === 'healthy'), `A to serve\n${both()}`, 90_000);

    // The wire between A and B, read while only A talks to B (the host's own calls below cross it too).
    const wire = await captureWire(defer, lan, vmB, vmA.address, vmA.dir);

    // 1. The unmodified app in A, plain HTTP by name.
    const ok = await waitFor(async () => {
      const r = await curl(vmA, 'http://ratings:9080/ratings/0');
      return r.status === 200 ? r : undefined;
    }, `A's call to ratings to succeed\n${both()}`, 60_000);
    assert.deepEqual(JSON.parse(ok.body), { vm: vmB.ns, path: '/ratings/0', from: '127.0.0.1' }, 'answered by the ratings app in B, handed over by B\'s sidecar');

    // 2. The hop was mutual TLS, with A's identity, seen by B's sidecar.
    const mB = await metrics(vmB);
    assert.ok(series(mB, 'istio_requests_total', { reporter: 'destination', connection_security_policy: 'mutual_tls', source_principal: PRODUCTPAGE, response_code: '200' }) >= 1,
      `B's sidecar recorded a mutual_tls request from ${PRODUCTPAGE}:\n${mB.filter((l) => l.startsWith('istio_requests_total')).join('\n')}`);
    const mA = await metrics(vmA);
    assert.ok(series(mA, 'istio_requests_total', { reporter: 'source', destination_principal: RATINGS, response_code: '200' }) >= 1, 'A\'s sidecar carried the call (captured), to B\'s identity');

    // 3. TCP (non-HTTP) through both captures, by original destination: A's sidecar took it (reporter=source, the
    // echo service, B's identity as the peer it verified); B's inbound terminated TLS for it.
    const handshakes = async () => Number(/^ssl_handshake:? (\d+)/m.exec((await vmB.exec('curl', ['-sS', 'http://127.0.0.1:15000/stats'])).stdout)?.[1] ?? NaN);
    const before9000 = await handshakes();
    assert.equal(await tcpEcho(vmA, 'ping over tcp\n'), `echo ${vmB.ns}: ping over tcp\n`);
    assert.ok(series(await metrics(vmA), 'istio_tcp_connections_opened_total', { reporter: 'source', destination_service: 'echo.default.svc.cluster.local', destination_principal: RATINGS }) >= 1,
      'A\'s sidecar carried the TCP connection (captured) to B\'s identity');
    assert.equal(await handshakes(), before9000 + 1, 'B terminated one more TLS handshake: the echo connection\'s');

    // What crossed the LAN between A and B: packets, none of them the request or the echo in plaintext.
    const seen = await wire.stop();
    assert.ok(seen.packets > 10, `tcpdump saw the traffic between A and B (${seen.packets} packets):\n${seen.text.slice(0, 3000)}`);
    assert.doesNotMatch(seen.text, /GET \/ratings\/0|ping over tcp|"path":"\/ratings\/0"/, 'no plaintext HTTP or echo payload on the wire');

    // 4. Anyone else is refused by B: plaintext from outside the mesh, and a mesh certificate of another identity.
    assert.equal(await fromHost(vmB.address), 403, 'plaintext (no principal) is denied');
    const { keyPem, csrPem } = await generateKeyAndCsr(INTRUDER);
    const signed = await mesh.cp.ca.sign(csrPem, { spiffeId: INTRUDER });
    assert.ok(certificateExpiry(signed.certChainPem).getTime() > Date.now());
    assert.equal(await fromHost(vmB.address, { keyPem, certChainPem: signed.certChainPem, roots: mesh.cp.ca.trustBundle() }), 403, 'mTLS as another identity is denied');
    const denied = series(await metrics(vmB), 'istio_requests_total', { reporter: 'destination', connection_security_policy: 'mutual_tls', source_principal: INTRUDER, response_code: '403' });
    assert.ok(denied >= 1, 'B saw the intruder\'s identity over mTLS and answered 403');

    // 5. Health: failing takes B out of the endpoints (A's call finds no healthy host), recovery puts it back.
    fs.writeFileSync(vmB.failFlag, '');
    await waitFor(async () => (await workloads(mesh)).find((w) => w.name === 'ratings-vm')?.health === 'unhealthy', 'B to leave the endpoints', 30_000);
    await waitFor(async () => (await curl(vmA, 'http://ratings:9080/ratings/0')).status === 503, 'A\'s sidecar to stop sending to B', 30_000);
    fs.rmSync(vmB.failFlag);
    await waitFor(async () => (await workloads(mesh)).find((w) => w.name === 'ratings-vm')?.health === 'healthy', 'B to return to the endpoints', 30_000);
    await waitFor(async () => (await curl(vmA, 'http://ratings:9080/ratings/0')).status === 200, 'A\'s calls to reach B again', 30_000);

    // 6. Leave: deregistered, and iptables exactly as before join in both VMs.
    for (const vm of [vmA, vmB]) {
      const left = await vm.jibe(['agent', 'leave', '--state-dir', vm.stateDir]);
      assert.equal(left.code, 0, left.stderr + left.stdout);
    }
    assert.equal(await agentA.exited, 0);
    assert.equal(await agentB.exited, 0);
    assert.deepEqual(await workloads(mesh), [], 'both deregistered');
    assert.equal(normalizeIptablesSave(await vmA.save()), before.a, 'A: iptables-save after leave equals before join');
    assert.equal(normalizeIptablesSave(await vmB.save()), before.b, 'B: iptables-save after leave equals before join');
  });
}
