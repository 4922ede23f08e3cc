// TCP proxying on loopback: bound tcp/auto listeners and a capture port (with
// the original destination given by the test instead of iptables) in front of
// real echo servers. Covers balancing per connection, half-close both ways,
// resets, no healthy host (UH), connect failure (UF), sniffing of auto
// listeners (HTTP vs TCP vs a silent client), passthrough, blackhole, loops.
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import type { ClusterResource, EndpointsResource, ListenerResource, MeshResource, ProxyResource, RouteConfigResource } from '../../../../core/model/proxy-config.ts';
import { defaultLoadBalancers } from '../../../../proxy/cluster/load-balancers.ts';
import type { ProxyState} from '../../../../proxy/config/proxy-state.ts';
import { buildState, resourceKey } from '../../../../proxy/config/proxy-state.ts';
import { forwardRequest } from '../../../../proxy/http/forward-request.ts';
import { CaptureListener } from '../../../../proxy/listeners/listener-capture.ts';
import type { ConfigListenerDeps } from '../../../../proxy/listeners/listener-manager.ts';
import { TcpListener } from '../../../../proxy/listeners/listener-tcp.ts';
import type { ProxyLogger } from '../../../../proxy/proxy-logger.ts';
import { composeDispatch } from '../../../../proxy/router/router.ts';
import { ProxyStats } from '../../../../proxy/stats/proxy-stats.ts';
import type { OriginalDestination } from '../../../../proxy/tcp/original-destination.ts';

const quiet: ProxyLogger = { debug() {}, info() {}, warn() {}, error() {} };

/** An echo server that prefixes what it sends back with its name; half-closes when the client does. */
async function echo(t: TestContext, name: string, onSocket?: (s: net.Socket) => void): Promise<number> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    if (onSocket) return onSocket(s);
    s.write(`${name}:`);
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return (server.address() as net.AddressInfo).port;
}

/** A free port nobody listens on (connections to it are refused). */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function cluster(name: string, ports: number[], healthy = true, protocol: ClusterResource['protocol'] = 'tcp'): ProxyResource[] {
  const c: ClusterResource = { type: 'cluster', name, service: name, port: 0, lbPolicy: 'ROUND_ROBIN', protocol, connectTimeoutMs: 2000 };
  const e: EndpointsResource = { type: 'endpoints', name, endpoints: ports.map((port) => ({ address: '127.0.0.1', port, healthy })) };
  return [c, e];
}

function tcpListener(name: string, port: number, clusterName: string, extra: Partial<ListenerResource> = {}): ListenerResource {
  return { type: 'listener', name, direction: 'inbound', address: '127.0.0.1', port, protocol: 'tcp', tcpRoute: { clusters: [{ cluster: clusterName, weight: 100 }] }, ...extra };
}

interface Harness {
  stats: ProxyStats;
  holder: { current: ProxyState };
  deps: ConfigListenerDeps;
}

function harness(resources: ProxyResource[]): Harness {
  const stats = new ProxyStats();
  const map = new Map(resources.map((r) => [resourceKey(r.type, r.name), r]));
  const holder = { current: buildState('1', map, { loadBalancers: defaultLoadBalancers, stats, random: () => 0 }) };
  const deps: ConfigListenerDeps = { holder, dispatch: composeDispatch(forwardRequest), stats, logger: quiet, drainTimeoutMs: 50 };
  return { stats, holder, deps };
}

async function bound(t: TestContext, h: Harness, resource: ListenerResource): Promise<number> {
  // The listener answers for the config port it was given; bind on an ephemeral one and point the config at it.
  const listener = new TcpListener(resource, h.deps);
  const port = await listener.listen();
  const moved = { ...resource, port };
  const map = new Map(h.holder.current.resources);
  map.delete(resourceKey('listener', resource.name));
  map.set(resourceKey('listener', moved.name), moved);
  h.holder.current = buildState('2', map, { loadBalancers: defaultLoadBalancers, stats: h.stats, random: () => 0 }, h.holder.current);
  t.after(() => listener.close(0));
  return port;
}

interface Exchange {
  data: string;
  ended: boolean;
  error?: string;
}

/** Connects, sends `send` (then FIN unless keepOpen), collects until the proxy closes. */
function talk(port: number, send: string | undefined, options: { keepOpen?: boolean; host?: string; onConnect?: (s: net.Socket) => void } = {}): Promise<Exchange> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: options.host ?? '127.0.0.1', allowHalfOpen: true });
    const out: Exchange = { data: '', ended: false };
    s.on('connect', () => {
      options.onConnect?.(s);
      if (send !== undefined) s.write(send);
      if (!options.keepOpen) s.end();
    });
    s.on('data', (d) => (out.data += d.toString('latin1')));
    s.on('end', () => {
      out.ended = true;
      s.end();
    });
    s.on('error', (e: NodeJS.ErrnoException) => (out.error = e.code));
    s.on('close', () => resolve(out));
  });
}

test('tcp listener: one endpoint per connection, round robin across the cluster', async (t) => {
  const a = await echo(t, 'a');
  const b = await echo(t, 'b');
  const h = harness([...cluster('db', [a, b]), tcpListener('db-in', 0, 'db')]);
  const port = await bound(t, h, tcpListener('db-in', 0, 'db'));
  const seen: string[] = [];
  for (let i = 0; i < 4; i++) seen.push((await talk(port, `m${i}`)).data);
  assert.deepEqual(seen, ['a:m0', 'b:m1', 'a:m2', 'b:m3']);
  const cs = h.stats.cluster('db');
  assert.equal(cs.upstream_cx_total, 4);
  assert.equal(cs.upstream_cx_active, 0);
  assert.equal(cs.upstream_cx_tx_bytes_total, 8, 'bytes sent upstream are counted at close');
  assert.equal(h.stats.tcp_downstream_cx_active, 0);
});

test('half-close: the client FIN reaches the upstream, which can still answer; its FIN comes back', async (t) => {
  const upstreamSawEnd = Promise.withResolvers<void>();
  const port0 = await echo(t, 'late', (s) => {
    let got = '';
    s.on('data', (d) => (got += d));
    // Answers only after the client has finished sending (as a request/response protocol over a half-closed socket would).
    s.on('end', () => {
      upstreamSawEnd.resolve();
      s.end(`got ${got}`);
    });
  });
  const h = harness([...cluster('c', [port0]), tcpListener('l', 0, 'c')]);
  const port = await bound(t, h, tcpListener('l', 0, 'c'));
  const result = await talk(port, 'hello');
  await upstreamSawEnd.promise;
  assert.deepEqual(result, { data: 'got hello', ended: true });
});

test('an upstream reset resets the client and leaves the proxy serving', async (t) => {
  const resetting = await echo(t, 'r', (s) => s.once('data', () => s.resetAndDestroy()));
  const good = await echo(t, 'g');
  const h = harness([...cluster('r', [resetting]), ...cluster('g', [good]), tcpListener('lr', 0, 'r'), tcpListener('lg', 0, 'g')]);
  const pr = await bound(t, h, tcpListener('lr', 0, 'r'));
  const pg = await bound(t, h, tcpListener('lg', 0, 'g'));
  const reset = await talk(pr, 'x', { keepOpen: true });
  assert.equal(reset.error, 'ECONNRESET');
  assert.equal(reset.ended, false);
  assert.equal((await talk(pg, 'y')).data, 'g:y');
  // A client that resets mid-stream does not upset the upstream side either.
  const r2 = await talk(pg, 'z', { keepOpen: true, onConnect: (s) => setImmediate(() => s.resetAndDestroy()) });
  assert.equal(r2.ended, false);
  assert.equal((await talk(pg, 'w')).data, 'g:w');
});

test('no healthy endpoint (UH) and connect failure (UF) close the client and are counted', async (t) => {
  const refused = await closedPort();
  const h = harness([...cluster('none', [1234], false), ...cluster('down', [refused]), tcpListener('ln', 0, 'none'), tcpListener('ld', 0, 'down')]);
  const pn = await bound(t, h, tcpListener('ln', 0, 'none'));
  const pd = await bound(t, h, tcpListener('ld', 0, 'down'));
  const uh = await talk(pn, 'x', { keepOpen: true });
  assert.equal(uh.data, '');
  assert.equal(h.stats.cluster('none').upstream_cx_none_healthy, 1);
  const uf = await talk(pd, 'x', { keepOpen: true });
  assert.equal(uf.data, '');
  assert.equal(h.stats.cluster('down').upstream_cx_connect_fail, 1);
  assert.equal(h.stats.cluster('down').upstream_cx_active, 0);
  assert.equal(h.stats.tcp_downstream_cx_active, 0);
});

test('auto listener: HTTP goes to the route config, other bytes and silent clients to the tcpRoute', async (t) => {
  const httpServer = http.createServer((req, res) => res.end(`http ${req.method} ${req.url}`));
  await new Promise<void>((r) => httpServer.listen(0, '127.0.0.1', r));
  t.after(() => {
    httpServer.closeAllConnections();
    httpServer.close();
  });
  const httpPort = (httpServer.address() as net.AddressInfo).port;
  const greeter = await echo(t, 'greeter', (s) => {
    // A server-first protocol (SMTP-like): speaks before the client does.
    s.write('220 hello\r\n');
    s.pipe(s);
  });
  const routes: RouteConfigResource = {
    type: 'route',
    name: 'r',
    virtualHosts: [{ name: 'all', domains: ['*'], routes: [{ name: 'default', match: [], action: { clusters: [{ cluster: 'web', weight: 100 }] } }] }],
  };
  const auto = tcpListener('auto', 0, 'tcp', { protocol: 'auto', routeConfig: 'r' });
  const h = harness([...cluster('web', [httpPort], true, 'http1'), ...cluster('tcp', [greeter]), routes, auto]);
  const port = await bound(t, h, auto);

  const res = await fetch(`http://127.0.0.1:${port}/x`);
  assert.equal(await res.text(), 'http GET /x');
  assert.equal((await talk(port, '\u0000\u0001binary')).data, '220 hello\r\n\u0000\u0001binary');
  assert.equal(h.stats.protocol_sniff_timeout, 0);
  const silent = await talk(port, undefined, { keepOpen: true, onConnect: (s) => s.once('data', () => s.end('QUIT\r\n')) });
  assert.equal(silent.data, '220 hello\r\nQUIT\r\n');
  assert.equal(h.stats.protocol_sniff_timeout, 1, 'nothing sent: TCP after the sniff timeout');
});

test('capture port: original destination picks the virtual listener; ALLOW_ANY passes through, REGISTRY_ONLY refuses; loops are refused', async (t) => {
  const db = await echo(t, 'db');
  const elsewhere = await echo(t, 'elsewhere');
  const admin = await echo(t, 'admin');
  const vip: ListenerResource = { type: 'listener', name: '10.9.9.9_5432', direction: 'outbound', address: '0.0.0.0', port: 5432, protocol: 'tcp', destinationAddresses: ['10.9.9.9'], tcpRoute: { clusters: [{ cluster: 'db', weight: 100 }] } };
  const h = harness([...cluster('db', [db]), vip]);
  // Connections are made one at a time, so each accepted one takes the next destination.
  const destinations: OriginalDestination[] = [];
  const capture = new CaptureListener({
    direction: 'outbound',
    addresses: ['127.0.0.1'],
    port: 0,
    holder: h.holder,
    dispatch: h.deps.dispatch,
    stats: h.stats,
    logger: quiet,
    drainTimeoutMs: 50,
    ownPorts: () => [admin],
    originalDestination: () => destinations.shift(),
  });
  const port = await capture.listen();
  t.after(() => capture.close(0));
  const via = (dst: OriginalDestination, send: string): Promise<Exchange> => {
    destinations.push(dst);
    return talk(port, send);
  };

  assert.equal((await via({ address: '10.9.9.9', port: 5432, family: 4 }, 'q')).data, 'db:q');
  assert.equal((await via({ address: '127.0.0.1', port: elsewhere, family: 4 }, 'p')).data, 'elsewhere:p', 'ALLOW_ANY: passthrough');
  assert.equal(h.stats.tcp_passthrough_cx_total, 1);
  assert.equal(h.stats.cluster('PassthroughCluster').upstream_cx_total, 1);

  assert.equal((await via({ address: '127.0.0.1', port: admin, family: 4 }, 'loop')).data, '', "never relayed to one of the proxy's own ports");
  assert.equal(h.stats.tcp_loop_refused, 1);
  assert.equal((await via({ address: '127.0.0.1', port, family: 4 }, 'x')).data, '', 'not redirected, and no explicit-proxy listener to serve it');
  assert.equal(h.stats.tcp_downstream_cx_no_route, 1);

  const mesh: MeshResource = { type: 'mesh', name: 'mesh', outboundTrafficPolicy: 'REGISTRY_ONLY' };
  const map = new Map(h.holder.current.resources);
  map.set(resourceKey('mesh', 'mesh'), mesh);
  h.holder.current = buildState('3', map, { loadBalancers: defaultLoadBalancers, stats: h.stats, random: () => 0 }, h.holder.current);
  assert.equal((await via({ address: '127.0.0.1', port: elsewhere, family: 4 }, 'p')).data, '', 'REGISTRY_ONLY: black hole');
  assert.equal(h.stats.tcp_blackhole_cx_total, 1);
  assert.equal((await via({ address: '10.9.9.9', port: 5432, family: 4 }, 'q')).data, 'db:q', 'known destinations still work');
});
