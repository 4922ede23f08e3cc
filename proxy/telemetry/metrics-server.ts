// The proxy's Prometheus endpoint, Istio's `:15090/stats/prometheus`, on its
// own port so scrapers never reach the admin API. Rendering happens here,
// on scrape, never on the request path.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { startHttpEndpoint } from '../admin/admin-http-endpoint.ts';
import type { HttpEndpoint } from '../admin/admin-http-endpoint.ts';

export const METRICS_PATH = '/stats/prometheus';
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export type MetricsServer = HttpEndpoint;

export function startMetricsServer(address: string, port: number, render: () => Promise<string>): Promise<MetricsServer> {
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (path !== METRICS_PATH && path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: metrics are at ${METRICS_PATH}\n`);
      return;
    }
    render().then(
      (body) => res.writeHead(200, { 'content-type': PROMETHEUS_CONTENT_TYPE, 'cache-control': 'no-store' }).end(body),
      (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${err.message}\n`),
    );
  };
  return startHttpEndpoint(address, port, handle, 'metrics', 'pass another --metrics-port (Istio: 15090), or off');
}
