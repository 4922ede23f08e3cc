// The proxy's admin port (127.0.0.1 by default, as Envoy's): readiness,
// the running config, counters, and a graceful stop. Off the data path.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tryParseDuration } from '../../core/config/duration.ts';
import type { ProxyResource } from '../../core/model/proxy-config.ts';
import type { ProxyStats } from '../stats/proxy-stats.ts';
import { METRICS_PATH, PROMETHEUS_CONTENT_TYPE } from '../telemetry/metrics-server.ts';
import { MAX_TOP_WINDOW_MS } from '../telemetry/telemetry-top.ts';
import { startHttpEndpoint } from './admin-http-endpoint.ts';
import type { HttpEndpoint } from './admin-http-endpoint.ts';

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

export type AdminServer = HttpEndpoint;

export function startAdminServer(address: string, port: number, source: AdminSource): Promise<AdminServer> {
  return startHttpEndpoint(address, port, (req, res) => handle(req, res, source), 'admin', 'pass another admin port');
}

function send(res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}

/** `/top?duration=5s&limit=20`: the busiest paths over the next window (JSON), for `jibe top`. */
function top(req: IncomingMessage, res: ServerResponse, source: AdminSource): void {
  const telemetry = source.stats.telemetry;
  if (telemetry === undefined) return send(res, 404, 'telemetry is off\n');
  const query = new URL(req.url ?? '/', 'http://admin').searchParams;
  const duration = windowMs(query.get('duration') ?? '5s');
  const limit = Number(query.get('limit') ?? '20');
  if (duration === undefined || duration <= 0 || duration > MAX_TOP_WINDOW_MS) return send(res, 400, `duration must be a duration up to ${MAX_TOP_WINDOW_MS / 1000}s, like 5s\n`);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) return send(res, 400, 'limit must be an integer from 1 to 1000\n');
  const report = telemetry.sampleTop(duration, limit);
  if (report === undefined) return send(res, 429, 'too many path samplings are running on this proxy; try again shortly\n');
  // A caller that gives up ends its sampling early.
  res.once('close', report.stop);
  void report.done.then((r) => {
    if (!res.destroyed) send(res, 200, JSON.stringify(r) + '\n', 'application/json');
  });
}

/** A Go-style duration (`5s`, `500ms`, `1m30s`, as the mesh's rules write them) or plain seconds. */
function windowMs(text: string): number | undefined {
  const t = text.trim();
  return /^\d+(?:\.\d+)?$/.test(t) ? Number(t) * 1000 : tryParseDuration(t);
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
    case METRICS_PATH:
      if (source.prometheus === undefined) return send(res, 404, 'metrics are off\n');
      source.prometheus().then(
        (body) => send(res, 200, body, PROMETHEUS_CONTENT_TYPE),
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
    case '/top':
      return top(req, res, source);
    case '/':
      return send(res, 200, 'jibe proxy admin: /ready /config_dump /stats /stats/prometheus /top?duration=5s&limit=20 POST /quitquitquit\n');
    default:
      return send(res, 404, 'not found\n');
  }
}
