// Two real proxies in one process with certificates from a real CA: a client
// sidecar whose outbound listener routes `reviews` to the server sidecar's
// inbound listener, which forwards to an app on 127.0.0.1. Logs are captured
// so tests can assert on why a connection was refused.
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import pino from 'pino';
import type { Logger } from 'pino';
import { CertificateAuthority } from '../../../core/ca/certificate-authority.ts';
import type { ClusterResource, Endpoint, ListenerResource, ProxyResource } from '../../../core/model/proxy-config.ts';
import type { WorkloadCertificate } from '../../../proxy/identity/identity-manager.ts';
import { certificateExpiry, generateKeyAndCsr } from '../../../proxy/identity/workload-key.ts';
import type { RunningProxy } from '../../../proxy/proxy.ts';
import { MeshIdentity } from '../../../proxy/tls/mesh-identity.ts';
import { openStore } from '../../unit/ca/ca-fixtures.ts';
import { cluster, endpoints, freePort, fullUpdate, route, routeConfig, startSidecar, startUpstream, toCluster, vhost } from '../../unit/proxy/proxy-test-helpers.ts';
import type { Upstream } from '../../unit/proxy/proxy-test-helpers.ts';

export const PRODUCTPAGE = 'spiffe://cluster.local/ns/default/sa/productpage';
export const REVIEWS = 'spiffe://cluster.local/ns/default/sa/reviews';
export const RATINGS = 'spiffe://cluster.local/ns/default/sa/ratings';

export async function openCa(options: { now?: () => number } = {}): Promise<{ ca: CertificateAuthority; dataDir: string }> {
  const { store, dataDir } = await openStore();
  const ca = await CertificateAuthority.open(store, { trustDomain: 'cluster.local', ...options });
  return { ca, dataDir };
}

export async function issue(ca: CertificateAuthority, spiffeId: string): Promise<WorkloadCertificate> {
  const { keyPem, csrPem } = await generateKeyAndCsr(spiffeId);
  const signed = await ca.sign(csrPem, { spiffeId });
  return { spiffeId, keyPem, certChainPem: signed.certChainPem, trustBundle: ca.trustBundle(), expiresAt: certificateExpiry(signed.certChainPem) };
}

/** A pino logger whose lines are kept (parsed) for assertions. */
export function capturingLogger(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  return { logger: pino({ level: 'warn' }, sink), lines };
}

/** A TCP app on loopback that echoes what it reads; counts the connections that reached it. */
export interface TcpEcho {
  port: number;
  connections: number;
  close(): Promise<void>;
}

export async function startTcpEcho(): Promise<TcpEcho> {
  const echo: TcpEcho = { port: 0, connections: 0, close: () => new Promise<void>((r) => server.close(() => r())) };
  const server = net.createServer((s) => {
    echo.connections++;
    s.on('error', () => {});
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  echo.port = (server.address() as AddressInfo).port;
  return echo;
}

/**
 * Sends `ping` once `ready` fires ('connect', or 'secureConnect' for TLS): resolves with what came
 * back before the connection ended, or, cut without an answer, 'reset' / 'closed' / 'error <code>'.
 */
export function pingExchange(socket: net.Socket, ready: 'connect' | 'secureConnect'): Promise<string> {
  return new Promise((resolve) => {
    let data = '';
    socket.once(ready, () => socket.write('ping'));
    socket.on('data', (d: Buffer) => {
      data += d.toString();
      if (data === 'ping') socket.end();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => resolve(data !== '' ? data : err.code === 'ECONNRESET' ? 'reset' : `error ${err.code ?? err.message}`));
    socket.on('close', () => resolve(data !== '' ? data : 'closed'));
  });
}

export interface ServerSide {
  proxy: RunningProxy;
  app: Upstream;
  port: number;
  identity: MeshIdentity | undefined;
  lines: Array<Record<string, unknown>>;
  /** Re-applies the inbound config with another mode or listener extras. */
  configure(extra: Partial<ListenerResource>): Promise<void>;
}

/** The `reviews` workload: its app, and its sidecar's inbound listener (HTTP) in front of it. */
export async function startServerSide(cert: WorkloadCertificate | undefined, extra: Partial<ListenerResource> = {}, extraResources: ProxyResource[] = []): Promise<ServerSide> {
  const app = await startUpstream('reviews');
  const port = await freePort();
  const identity = cert === undefined ? undefined : new MeshIdentity(cert);
  const { logger, lines } = capturingLogger();
  const proxy = await startSidecar({ node: { id: 'sidecar~reviews.default', type: 'sidecar', namespace: 'default', labels: {} }, identity, logger });
  const configure = (more: Partial<ListenerResource>) =>
    proxy.apply(
      fullUpdate([
        { type: 'listener', name: 'inbound|9080', direction: 'inbound', address: '127.0.0.1', port, protocol: 'http', routeConfig: 'inbound|9080', ...more },
        routeConfig('inbound|9080', [vhost('inbound', ['*'], [route('default', [], toCluster('inbound|9080||'))])]),
        { ...cluster('inbound|9080||'), service: '' },
        endpoints('inbound|9080||', [app.port]),
        ...extraResources,
      ]),
    );
  await configure(extra);
  return { proxy, app, port, identity, lines, configure };
}

export interface ClientSide {
  proxy: RunningProxy;
  identity: MeshIdentity | undefined;
  lines: Array<Record<string, unknown>>;
  /** Routes `reviews` to `endpoint` with `tls` on the cluster. */
  configure(endpoint: Partial<Endpoint>, tls?: ClusterResource['tls'], protocol?: ClusterResource['protocol'], extra?: Partial<ClusterResource>): Promise<void>;
}

export async function startClientSide(cert: WorkloadCertificate | undefined): Promise<ClientSide> {
  const identity = cert === undefined ? undefined : new MeshIdentity(cert);
  const { logger, lines } = capturingLogger();
  const proxy = await startSidecar({ node: { id: 'sidecar~productpage.default', type: 'sidecar', namespace: 'default', labels: {} }, identity, logger });
  return {
    proxy,
    identity,
    lines,
    configure: (endpoint, tls, protocol = 'http1', extra = {}) =>
      proxy.apply(
        fullUpdate([
          routeConfig('outbound', [vhost('reviews', ['reviews', 'reviews:80'], [route('default', [], toCluster('reviews'))])]),
          cluster('reviews', 'ROUND_ROBIN', { protocol, ...(tls !== undefined ? { tls } : {}), ...extra }),
          endpoints('reviews', [{ address: '127.0.0.1', healthy: true, ...endpoint }]),
        ]),
      ),
  };
}
