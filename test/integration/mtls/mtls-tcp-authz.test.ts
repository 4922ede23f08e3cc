// AuthorizationPolicy on a workload's TCP port, over real sockets and
// certificates from a real CA: the sidecar terminates mesh mTLS (PERMISSIVE),
// decides the connection on L4 attributes before dialling the app, resets
// denied connections, and labels the TCP metrics with the verified peer.
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import type { CompiledAuthorization, CompiledAuthzPolicy, ListenerResource } from '../../../core/model/proxy-config.ts';
import type { WorkloadCertificate } from '../../../proxy/identity/identity-manager.ts';
import type { RunningProxy } from '../../../proxy/proxy.ts';
import { MeshIdentity } from '../../../proxy/tls/mesh-identity.ts';
import { cluster, endpoints, freePort, fullUpdate, route, routeConfig, startSidecar, toCluster, vhost } from '../../unit/proxy/proxy-test-helpers.ts';
import { PRODUCTPAGE, RATINGS, REVIEWS, capturingLogger, issue, openCa, pingExchange, startTcpEcho } from './mtls-fixtures.ts';
import type { TcpEcho } from './mtls-fixtures.ts';

const policy = (name: string, rules: CompiledAuthzPolicy['rules']): CompiledAuthzPolicy => ({ name: `AuthorizationPolicy/default/${name}`, rules });
const authz = (parts: Partial<CompiledAuthorization>): CompiledAuthorization => ({ destinationPort: 9000, custom: [], deny: [], allow: [], audit: [], ...parts });

let echo: TcpEcho;
let proxy: RunningProxy;
let lines: Array<Record<string, unknown>>;
let port: number;
let certA: WorkloadCertificate;
let certB: WorkloadCertificate;

function configure(a: CompiledAuthorization | undefined, protocol: ListenerResource['protocol'] = 'tcp'): Promise<void> {
  return proxy.apply(
    fullUpdate([
      {
        type: 'listener',
        name: 'inbound|9000',
        direction: 'inbound',
        address: '127.0.0.1',
        port,
        protocol,
        tcpRoute: { clusters: [{ cluster: 'inbound|9000||', weight: 100 }] },
        mtls: 'PERMISSIVE',
        ...(protocol === 'auto' ? { routeConfig: 'inbound|9000' } : {}),
        ...(a !== undefined ? { authz: a } : {}),
      },
      { ...cluster('inbound|9000||', 'ROUND_ROBIN', { protocol: 'tcp' }), service: '' },
      endpoints('inbound|9000||', [echo.port]),
      routeConfig('inbound|9000', [vhost('inbound', ['*'], [route('default', [], toCluster('inbound|9000||'))])]),
    ]),
  );
}


function mtls(cert: WorkloadCertificate): Promise<string> {
  const socket = tls.connect({ host: '127.0.0.1', port, key: cert.keyPem, cert: cert.certChainPem, ca: cert.trustBundle, ALPNProtocols: ['istio-tcp', 'istio'], servername: 'outbound_.9000_._.db.default.svc.cluster.local', checkServerIdentity: () => undefined });
  return pingExchange(socket, 'secureConnect');
}

function plaintext(): Promise<string> {
  return pingExchange(net.connect({ host: '127.0.0.1', port }), 'connect');
}

const denied = (policyName: string) => lines.some((l) => l.msg === 'rbac connection denied' && l.policy === policyName);

before(async () => {
  const { ca } = await openCa();
  certA = await issue(ca, PRODUCTPAGE);
  certB = await issue(ca, RATINGS);
  echo = await startTcpEcho();
  port = await freePort();
  const captured = capturingLogger();
  captured.logger.level = 'info';
  lines = captured.lines;
  proxy = await startSidecar({ node: { id: 'sidecar~reviews.default', type: 'sidecar', namespace: 'default', labels: {} }, identity: new MeshIdentity(await issue(ca, REVIEWS)), logger: captured.logger });
});

after(async () => {
  await proxy.close();
  await echo.close();
});

describe('AuthorizationPolicy on a TCP port', () => {
  it('ALLOW principal A: A over mTLS echoes, B and plaintext are cut before reaching the app', async () => {
    await configure(authz({ allow: [policy('allow-a', [{ from: [{ source: { principals: ['cluster.local/ns/default/sa/productpage'] } }] }])] }));
    assert.equal(await mtls(certA), 'ping');
    const before = echo.connections;
    assert.match(await mtls(certB), /^(reset|closed)$/);
    assert.match(await plaintext(), /^(reset|closed)$/);
    assert.equal(echo.connections, before, 'denied connections never reach the app');
    assert.equal(proxy.stats.tcp_rbac_allowed, 1);
    assert.equal(proxy.stats.tcp_rbac_denied, 2);
    assert.ok(lines.some((l) => l.msg === 'rbac connection denied' && l.sourcePrincipal === 'cluster.local/ns/default/sa/ratings' && l.reason === 'no-allow-match'), JSON.stringify(lines));
  });

  it('records the mTLS peer in the TCP metrics: connection_security_policy="mutual_tls" and source_principal', async () => {
    await configure(undefined);
    assert.equal(await mtls(certB), 'ping');
    const text = await proxy.telemetry.render();
    const opened = text.split('\n').filter((l) => l.startsWith('istio_tcp_connections_opened_total{'));
    assert.ok(
      opened.some((l) => l.includes('reporter="destination"') && l.includes('connection_security_policy="mutual_tls"') && l.includes(`source_principal="${RATINGS}"`)),
      opened.join('\n'),
    );
  });

  it('DENY by ipBlocks cuts the connection, on an auto port too (sniffed as TCP)', async () => {
    await configure(authz({ deny: [policy('deny-local', [{ from: [{ source: { ipBlocks: ['127.0.0.0/8'] } }] }])] }), 'auto');
    assert.match(await mtls(certA), /^(reset|closed)$/);
    assert.ok(denied('AuthorizationPolicy/default/deny-local'));
    await configure(authz({ deny: [policy('deny-other', [{ from: [{ source: { ipBlocks: ['10.0.0.0/8'] } }] }])] }), 'auto');
    assert.equal(await mtls(certA), 'ping');
  });

  it('HTTP-only fields on a TCP port: an ALLOW rule never matches (all denied), a DENY rule matches more broadly', async () => {
    await configure(authz({ allow: [policy('allow-get', [{ from: [{ source: { principals: ['*'] } }], to: [{ operation: { methods: ['GET'] } }] }])] }));
    assert.match(await mtls(certA), /^(reset|closed)$/);
    await configure(authz({ deny: [policy('deny-admin', [{ from: [{ source: { namespaces: ['default'] } }], to: [{ operation: { paths: ['/admin'] } }] }])] }));
    assert.match(await mtls(certA), /^(reset|closed)$/);
    assert.ok(denied('AuthorizationPolicy/default/deny-admin'));
    assert.equal(await plaintext(), 'ping', 'the namespace part still narrows the broadened DENY');
    await configure(undefined);
    assert.equal(await mtls(certB), 'ping');
  });
});
