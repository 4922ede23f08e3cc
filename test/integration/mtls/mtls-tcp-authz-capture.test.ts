// AuthorizationPolicy on the inbound capture port (iptables' REDIRECT target;
// the original destination is given by the test): a declared TCP port is
// judged after mesh mTLS is terminated, an undeclared port (Istio's
// InboundPassthroughCluster) by the workload's policies with its own port.
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { after, before, test } from 'node:test';
import type { CompiledAuthorization, ListenerResource, ProxyResource } from '../../../core/model/proxy-config.ts';
import { defaultLoadBalancers } from '../../../proxy/cluster/load-balancers.ts';
import { buildState, resourceKey } from '../../../proxy/config/proxy-state.ts';
import type { ProxyState } from '../../../proxy/config/proxy-state.ts';
import { forwardRequest } from '../../../proxy/http/forward-request.ts';
import type { WorkloadCertificate } from '../../../proxy/identity/identity-manager.ts';
import { CaptureListener } from '../../../proxy/listeners/listener-capture.ts';
import type { ProxyLogger } from '../../../proxy/proxy-logger.ts';
import { composeDispatch } from '../../../proxy/router/router.ts';
import { ProxyStats } from '../../../proxy/stats/proxy-stats.ts';
import type { OriginalDestination } from '../../../proxy/tcp/original-destination.ts';
import { MeshIdentity } from '../../../proxy/tls/mesh-identity.ts';
import { TlsGate } from '../../../proxy/tls/tls-gate.ts';
import { meshTlsAcceptor } from '../../../proxy/tls/tls-inbound.ts';
import { cluster, endpoints } from '../../unit/proxy/proxy-test-helpers.ts';
import { PRODUCTPAGE, RATINGS, REVIEWS, issue, openCa, pingExchange, startTcpEcho } from './mtls-fixtures.ts';
import type { TcpEcho } from './mtls-fixtures.ts';

const quiet: ProxyLogger = { debug() {}, info() {}, warn() {}, error() {} };
const denials: Array<Record<string, unknown>> = [];
const recording: ProxyLogger = { ...quiet, info: (o: object, msg?: string) => void (msg === 'rbac connection denied' && denials.push(o as Record<string, unknown>)) };

let echo: TcpEcho;
let capture: CaptureListener;
let port: number;
let stats: ProxyStats;
let certA: WorkloadCertificate;
let certB: WorkloadCertificate;
const destinations: OriginalDestination[] = [];

before(async () => {
  const { ca } = await openCa();
  certA = await issue(ca, PRODUCTPAGE);
  certB = await issue(ca, RATINGS);
  echo = await startTcpEcho();
  stats = new ProxyStats();
  // The app's TCP port 9000 is declared (inbound listener); the echo server's own port is not (passthrough).
  const allowA: CompiledAuthorization = {
    destinationPort: 9000,
    custom: [],
    audit: [],
    deny: [{ name: 'AuthorizationPolicy/default/deny-undeclared', rules: [{ to: [{ operation: { ports: [String(echo.port)] } }] }] }],
    allow: [{ name: 'AuthorizationPolicy/default/allow-a', rules: [{ from: [{ source: { principals: ['cluster.local/ns/default/sa/productpage'] } }] }] }],
  };
  const inbound: ListenerResource = { type: 'listener', name: 'inbound|9000', direction: 'inbound', address: '0.0.0.0', port: 9000, protocol: 'tcp', mtls: 'PERMISSIVE', tcpRoute: { clusters: [{ cluster: 'inbound|9000||', weight: 100 }] }, authz: allowA };
  const resources: ProxyResource[] = [inbound, { ...cluster('inbound|9000||', 'ROUND_ROBIN', { protocol: 'tcp' }), service: '' }, endpoints('inbound|9000||', [echo.port])];
  const holder: { current: ProxyState } = { current: buildState('1', new Map(resources.map((r) => [resourceKey(r.type, r.name), r])), { loadBalancers: defaultLoadBalancers, stats, random: () => 0 }) };
  const tlsGate = new TlsGate({ mesh: meshTlsAcceptor(new MeshIdentity(await issue(ca, REVIEWS)), stats, quiet), stats, logger: quiet });
  capture = new CaptureListener({
    direction: 'inbound',
    addresses: ['127.0.0.1'],
    port: 0,
    holder,
    dispatch: composeDispatch(forwardRequest),
    stats,
    logger: recording,
    drainTimeoutMs: 50,
    ownPorts: () => [],
    tlsGate,
    originalDestination: () => destinations.shift(),
  });
  port = await capture.listen();
});

after(async () => {
  await capture.close(0);
  await echo.close();
});

/** What came back through the capture port, or 'cut' however the connection ended without an answer. */
async function via(dstPort: number, cert: WorkloadCertificate | undefined): Promise<string> {
  destinations.push({ address: '127.0.0.1', port: dstPort, family: 4 });
  const socket = cert === undefined
    ? net.connect({ host: '127.0.0.1', port })
    : tls.connect({ host: '127.0.0.1', port, key: cert.keyPem, cert: cert.certChainPem, ca: cert.trustBundle, ALPNProtocols: ['istio'], checkServerIdentity: () => undefined });
  const answer = await pingExchange(socket, cert === undefined ? 'connect' : 'secureConnect');
  return answer === 'reset' || answer === 'closed' || answer.startsWith('error ') ? 'cut' : answer;
}

test('inbound capture, declared TCP port: the mTLS peer is judged (A echoes; B and plaintext are cut)', async () => {
  assert.equal(await via(9000, certA), 'ping');
  assert.equal(await via(9000, certB), 'cut');
  assert.equal(await via(9000, undefined), 'cut');
  assert.equal(stats.tcp_rbac_allowed, 1);
  assert.equal(stats.tcp_rbac_denied, 2);
  assert.deepEqual(
    denials.map((d) => d.sourcePrincipal),
    ['cluster.local/ns/default/sa/ratings', '-'],
  );
});

test("inbound capture, undeclared port (passthrough): judged by the workload's policies with its own destination port", async () => {
  const denied = stats.tcp_rbac_denied;
  assert.equal(await via(echo.port, undefined), 'cut');
  assert.equal(stats.tcp_rbac_denied, denied + 1);
  assert.deepEqual(denials.at(-1), { listener: 'InboundPassthroughCluster', sourceIp: '127.0.0.1', sourcePrincipal: '-', policy: 'AuthorizationPolicy/default/deny-undeclared', reason: 'deny' });
  assert.equal(stats.tcp_passthrough_cx_total, 0, 'never relayed');
});
