// Shared fixtures for the proxy tests: real upstream servers on 127.0.0.1,
// resource builders, a started proxy, and a small HTTP client.
import http from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import net from 'node:net';
import pino from 'pino';
import type {
  ClusterResource,
  ConfigUpdate,
  Endpoint,
  EndpointsResource,
  LbPolicy,
  ListenerResource,
  ProxyResource,
  Route,
  RouteAction,
  RouteConfigResource,
  RouteMatch,
  VirtualHost,
} from '../../../core/model/proxy-config.ts';
import { startProxy } from '../../../proxy/proxy.ts';
import type { ProxyOptions, RunningProxy } from '../../../proxy/proxy.ts';

export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
}

export interface Upstream {
  name: string;
  port: number;
  server: http.Server;
  requests: SeenRequest[];
  /** TCP connections accepted so far. */
  connections: number;
  /** TCP connections open now. */
  open: Set<net.Socket>;
  close(): Promise<void>;
}

export type UpstreamHandler = (req: IncomingMessage, res: ServerResponse, seen: SeenRequest) => void;

/** An upstream answering `<name> <method> <url>` unless a handler is given; records what it saw. */
export async function startUpstream(name: string, handler?: UpstreamHandler): Promise<Upstream> {
  const requests: SeenRequest[] = [];
  const upstream: Upstream = {
    name,
    port: 0,
    server: undefined as unknown as http.Server,
    requests,
    connections: 0,
    open: new Set(),
    close: async () => {
      upstream.server.closeAllConnections();
      await new Promise<void>((resolve) => upstream.server.close(() => resolve()));
    },
  };
  const server = http.createServer((req, res) => {
    const seen: SeenRequest = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, body: Buffer.alloc(0) };
    requests.push(seen);
    if (handler) return handler(req, res, seen);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.body = Buffer.concat(chunks);
      res.setHeader('x-upstream', name);
      res.end(`${name} ${req.method} ${req.url}`);
    });
  });
  server.on('connection', (socket: net.Socket) => {
    upstream.connections++;
    upstream.open.add(socket);
    socket.once('close', () => upstream.open.delete(socket));
  });
  upstream.server = server;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  upstream.port = (server.address() as net.AddressInfo).port;
  return upstream;
}

/** A port that was free a moment ago (for config listeners, whose ports come from config), below the ephemeral range. */
export { freePort } from '../../../cli/up/ports.ts';

export const cluster = (name: string, lbPolicy: LbPolicy = 'ROUND_ROBIN', extra: Partial<ClusterResource> = {}): ClusterResource => ({
  type: 'cluster',
  name,
  service: name,
  port: 80,
  lbPolicy,
  protocol: 'http1',
  ...extra,
});

export const endpoints = (name: string, list: Array<number | Partial<Endpoint>>): EndpointsResource => ({
  type: 'endpoints',
  name,
  endpoints: list.map((e) => (typeof e === 'number' ? { address: '127.0.0.1', port: e, healthy: true } : { address: '127.0.0.1', port: 1, healthy: true, ...e })),
});

export const routeConfig = (name: string, virtualHosts: VirtualHost[]): RouteConfigResource => ({ type: 'route', name, virtualHosts });

export const vhost = (name: string, domains: string[], routes: Route[]): VirtualHost => ({ name, domains, routes });

export const route = (name: string, match: RouteMatch[], action: RouteAction): Route => ({ name, match, action });

export const toCluster = (name: string, extra: Partial<RouteAction> = {}): RouteAction => ({ clusters: [{ cluster: name, weight: 100 }], ...extra });

export const listener = (name: string, direction: 'inbound' | 'gateway', port: number, routeConfigName: string): ListenerResource => ({
  type: 'listener',
  name,
  direction,
  address: '127.0.0.1',
  port,
  protocol: 'http',
  routeConfig: routeConfigName,
});

let versionCounter = 0;
export function fullUpdate(upserts: ProxyResource[], version = `v${++versionCounter}`): ConfigUpdate {
  return { version, nonce: `n-${version}`, full: true, upserts, removes: [] };
}

export function deltaUpdate(upserts: ProxyResource[], removes: ConfigUpdate['removes'] = [], version = `v${++versionCounter}`): ConfigUpdate {
  return { version, nonce: `n-${version}`, full: false, upserts, removes };
}

/** A simple outbound config: one cluster per upstream, virtual host `<name>` routing everything to it. */
export function simpleOutbound(...upstreams: Upstream[]): ProxyResource[] {
  return [
    routeConfig(
      'outbound',
      upstreams.map((u) => vhost(u.name, [u.name, `${u.name}:80`], [route('default', [], toCluster(u.name))])),
    ),
    ...upstreams.flatMap((u) => [cluster(u.name), endpoints(u.name, [u.port])]),
  ];
}

/**
 * A sidecar's inbound side as core/mesh compiles it for service port `servicePort`:
 * an HTTP listener on `port` sending every request to the app on `appPort`.
 */
export function inboundToApp(port: number, appPort: number, servicePort = 9080): ProxyResource[] {
  const name = `inbound|${servicePort}||`;
  const routes = `inbound-${servicePort}`;
  return [
    { type: 'listener', name: routes, direction: 'inbound', address: '127.0.0.1', port, protocol: 'http', routeConfig: routes },
    routeConfig(routes, [vhost('inbound', ['*'], [route('default', [], toCluster(name))])]),
    { ...cluster(name), service: '' },
    endpoints(name, [appPort]),
  ];
}

/**
 * A sidecar's outbound route to `host`:`servicePort` as core/mesh compiles it
 * (also reached by the short name and short name:port) with one endpoint.
 */
export function outboundToService(host: string, servicePort: number, endpoint: Partial<Endpoint>): ProxyResource[] {
  const name = `outbound|${servicePort}||${host}`;
  const short = host.split('.')[0];
  return [
    routeConfig('outbound', [vhost(host, [host, short, `${short}:${servicePort}`], [route(short, [], toCluster(name))])]),
    { ...cluster(name), service: host, port: servicePort },
    endpoints(name, [endpoint]),
  ];
}

export const silentLogger = pino({ level: 'silent' });

export async function startSidecar(options: Partial<ProxyOptions> = {}): Promise<RunningProxy> {
  return startProxy({
    node: { id: 'sidecar~test.default', type: 'sidecar', namespace: 'default', labels: {} },
    outboundPort: 0,
    adminPort: 0,
    logger: silentLogger,
    drainTimeoutMs: 1000,
    ...options,
  });
}

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface RequestOptions {
  method?: string;
  path?: string;
  headers?: http.OutgoingHttpHeaders | string[];
  body?: string | Buffer;
  agent?: http.Agent | false;
}

/** One request over its own connection (unless an agent is given); resolves with the whole answer. */
export function request(port: number, options: RequestOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method: options.method ?? 'GET', path: options.path ?? '/', headers: options.headers, agent: options.agent ?? false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/** Sends raw bytes and collects everything until the server closes the connection. */
export function rawRequest(port: number, payload: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c) => chunks.push(c));
    socket.on('end', () => resolve(Buffer.concat(chunks).toString()));
    socket.on('error', reject);
    socket.write(payload);
  });
}
