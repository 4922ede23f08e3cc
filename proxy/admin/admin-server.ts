// The proxy's admin port (127.0.0.1 by default, as Envoy's): readiness,
// the running config, counters, and a graceful stop. Off the data path.
import http from '../http/node-http.ts';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { JibeError } from '../../core/errors/errors.ts';
import type { ProxyResource } from '../../core/model/proxy-config.ts';
import type { ProxyStats } from '../stats/proxy-stats.ts';

export interface AdminSource {
  /** True once a first config was applied. */
  ready(): boolean;
  configDump(): { version: string; resources: ProxyResource[] };
  stats: ProxyStats;
  /** Istio metrics in Prometheus text (`/stats/prometheus`, as Envoy's admin serves them too). */
  prometheus?: () => Promise<string>;
  /** Starts a graceful stop (`POST /quitquitquit`). */
  quit(): void;
}

export interface AdminServer {
  port: number;
  close(): Promise<void>;
}

export async function startAdminServer(address: string, port: number, source: AdminSource): Promise<AdminServer> {
  const server = http.createServer((req, res) => handle(req, res, source));
  server.on('clientError', (_err, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(err.code === 'EADDRINUSE' ? new JibeError('JIBE_ERR_PORT_IN_USE', `admin port ${port} is in use`, { hint: 'pass another admin port' }) : err),
    );
    server.listen({ host: address, port, exclusive: true }, resolve);
  });
  const bound = server.address();
  return {
    port: bound !== null && typeof bound === 'object' ? bound.port : port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function send(res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}

function handle(req: IncomingMessage, res: ServerResponse, source: AdminSource): void {
  const path = (req.url ?? '/').split('?', 1)[0];
  const method = req.method ?? 'GET';
  switch (path) {
    case '/ready':
      return source.ready() ? send(res, 200, 'LIVE\n') : send(res, 503, 'PRE_INITIALIZING: no config applied yet\n');
    case '/config_dump':
      return send(res, 200, JSON.stringify(source.configDump(), null, 2) + '\n', 'application/json');
    case '/stats':
      return send(res, 200, source.stats.render());
    case '/stats/prometheus':
      if (source.prometheus === undefined) return send(res, 404, 'metrics are off\n');
      source.prometheus().then(
        (body) => send(res, 200, body, 'text/plain; version=0.0.4; charset=utf-8'),
        (err: Error) => send(res, 500, `metrics failed: ${err.message}\n`),
      );
      return;
    case '/quitquitquit':
      if (method !== 'POST') {
        res.setHeader('allow', 'POST');
        return send(res, 405, 'use POST\n');
      }
      send(res, 200, 'OK\n');
      res.once('finish', () => source.quit());
      return;
    case '/':
      return send(res, 200, 'jibe proxy admin: /ready /config_dump /stats /stats/prometheus POST /quitquitquit\n');
    default:
      return send(res, 404, 'not found\n');
  }
}
