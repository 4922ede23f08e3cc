// `jibe stat`: per service success rate, requests per second and latency
// quantiles, like `linkerd viz stat`, read straight from the proxies' Istio
// metrics (no Prometheus needed): two scrapes `--interval` apart, deltas
// between them. Proxies are found through the control plane (each connected
// proxy's host, Istio's metrics port 15090) or named with --proxy.
import type { Command } from 'commander';
import type { ProxyStatus } from '../../core/discovery/discovery-subscriber.ts';
import { JibeError } from '../../core/errors/errors.ts';
import { parsePrometheusText } from '../../proxy/telemetry/prometheus-text.ts';
import { serviceStats } from '../../proxy/telemetry/telemetry-stat.ts';
import type { Scrape, ServiceStat } from '../../proxy/telemetry/telemetry-stat.ts';
import { DEFAULT_SERVER, callApi } from '../api-client.ts';
import { collect } from '../options.ts';
import { formatTable } from '../table.ts';

const METRICS_PATH = '/stats/prometheus';
const SCRAPE_TIMEOUT_MS = 5000;

/**
 * `host:port` of every proxy to read: the --proxy list when given, else each
 * connected proxy's host (from its discovery stream) with `defaultPort`.
 */
export async function proxyTargets(server: string, explicit: string[], defaultPort: number): Promise<string[]> {
  if (explicit.length > 0) return [...new Set(explicit)];
  const { proxies } = await callApi<{ proxies: ProxyStatus[] }>(server, 'GET', '/api/v1/proxies');
  const hosts = new Set<string>();
  for (const p of proxies) {
    const host = peerHost(p.peer);
    if (host !== undefined) hosts.add(host.includes(':') ? `[${host}]:${defaultPort}` : `${host}:${defaultPort}`);
  }
  if (hosts.size === 0) throw new JibeError('JIBE_ERR_PROXY_UNREACHABLE', `no proxies are connected to the control plane at ${server}`, { hint: 'pass proxy addresses with --proxy host:port' });
  return [...hosts];
}

/** grpc-js peer strings: `ipv4:10.0.0.7:51234`, `ipv6:[::1]:51234`, or `10.0.0.7:51234`. */
export function peerHost(peer: string): string | undefined {
  const bare = peer.replace(/^ipv[46]:/, '');
  const m = /^\[([^\]]+)\]:\d+$/.exec(bare) ?? /^([^:]+):\d+$/.exec(bare);
  return m?.[1];
}

async function scrape(target: string): Promise<Scrape> {
  const res = await fetch(`http://${target}${METRICS_PATH}`, { signal: AbortSignal.timeout(SCRAPE_TIMEOUT_MS) });
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  return { proxy: target, samples: parsePrometheusText(await res.text()) };
}

/** Scrapes every target; the ones that fail are named on stderr, all failing is an error. */
export async function scrapeAll(targets: string[], warn: (line: string) => void): Promise<Scrape[]> {
  const results = await Promise.allSettled(targets.map(scrape));
  const out: Scrape[] = [];
  results.forEach((r, i) => {
    if (r.status === 'fulfilled') out.push(r.value);
    else warn(`! ${targets[i]}: ${(r.reason as Error & { cause?: Error }).cause?.message ?? (r.reason as Error).message}`);
  });
  if (out.length === 0) {
    throw new JibeError('JIBE_ERR_PROXY_UNREACHABLE', `no proxy answered at ${targets.join(', ')}${METRICS_PATH}`, {
      hint: 'pass the proxies\' metrics addresses with --proxy host:port (`jibe up` prints each METRICS port)',
    });
  }
  return out;
}

export function parseInterval(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  const ms = m === null ? NaN : Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 'm' ? 60_000 : 1000);
  if (!(ms >= 100 && ms <= 600_000)) throw new JibeError('JIBE_ERR_BAD_REQUEST', `interval ${JSON.stringify(text)} must be a duration from 100ms to 10m, like 5s`);
  return ms;
}

function ms(n: number): string {
  if (Number.isNaN(n)) return '-';
  return n < 10 ? `${n.toFixed(1)}ms` : `${Math.round(n)}ms`;
}

export function formatStats(stats: ServiceStat[]): string {
  if (stats.length === 0) return 'No requests were recorded by the proxies.\n';
  const rows = stats.map((s) => [
    s.namespace,
    s.service,
    Number.isNaN(s.successRate) ? '-' : `${(s.successRate * 100).toFixed(2)}%`,
    `${s.rps.toFixed(1)}rps`,
    ms(s.p50),
    ms(s.p95),
    ms(s.p99),
    s.reporter === 'destination' ? 'server' : 'clients',
  ]);
  return formatTable(['NAMESPACE', 'SERVICE', 'SUCCESS', 'RPS', 'LATENCY_P50', 'LATENCY_P95', 'LATENCY_P99', 'SEEN BY'], rows);
}

export function registerStat(program: Command): void {
  program
    .command('stat [service]')
    .description('per service success rate, requests per second and latency quantiles, measured by the proxies over an interval')
    .option('-n, --namespace <namespace>', 'only services in this namespace')
    .option('--interval <duration>', 'how long to measure', '10s')
    .option('--proxy <host:port>', 'a proxy\'s metrics address (repeatable); default: every connected proxy on port 15090', collect, [])
    .option('-o, --output <format>', 'table or json', 'table')
    .option('--server <url>', 'control plane API', DEFAULT_SERVER)
    .action(async (service: string | undefined, opts: { namespace?: string; interval: string; proxy: string[]; output: string; server: string }) => {
      const intervalMs = parseInterval(opts.interval);
      const targets = await proxyTargets(opts.server, opts.proxy, 15090);
      const warn = (line: string): void => void process.stderr.write(line + '\n');
      const before = await scrapeAll(targets, warn);
      const started = performance.now();
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
      const after = await scrapeAll(targets, warn);
      const seconds = (performance.now() - started) / 1000;
      const stats = serviceStats(before, after, seconds).filter(
        (s) => (opts.namespace === undefined || s.namespace === opts.namespace) && (service === undefined || s.service === service),
      );
      if (opts.output === 'json') process.stdout.write(JSON.stringify({ intervalSeconds: seconds, services: stats }, (_k, v: unknown) => (typeof v === 'number' && Number.isNaN(v) ? null : v), 2) + '\n');
      else process.stdout.write(formatStats(stats));
    });
}
