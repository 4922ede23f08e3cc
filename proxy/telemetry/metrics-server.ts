// The proxy's Prometheus endpoint, Istio's `:15090/stats/prometheus`, on its
// own port so scrapers never reach the admin API. Rendering happens here,
// on scrape, never on the request path.
import http from 'node:http';
import { JibeError } from '../../core/errors/errors.ts';

export const METRICS_PATH = '/stats/prometheus';
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

export async function startMetricsServer(address: string, port: number, render: () => Promise<string>): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (path !== METRICS_PATH && path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: metrics are at ${METRICS_PATH}\n`);
      return;
    }
    render().then(
      (body) => res.writeHead(200, { 'content-type': PROMETHEUS_CONTENT_TYPE, 'cache-control': 'no-store' }).end(body),
      (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${err.message}\n`),
    );
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(err.code === 'EADDRINUSE' ? new JibeError('JIBE_ERR_PORT_IN_USE', `metrics port ${port} is in use`, { hint: 'pass another --metrics-port (Istio: 15090), or off' }) : err),
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
