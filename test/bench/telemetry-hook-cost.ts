// CPU per call of the telemetry hooks a proxied HTTP request runs (the
// interceptor before it goes upstream, recordExchange when it is over), alone
// in a process: the figure behind "metric recording must not cost the hot path
// more than a few percent". Runs one ProxyTelemetry per setting over an
// outbound exchange shaped like the benchmark's (fortio's headers, a 1 KiB
// answer, a cluster with one endpoint) and reports CPU ns per request.
// The access log goes to this process's stdout: run it with stdout on
// /dev/null (the telemetry-overhead benchmark does) to measure formatting and
// batching without a reader on the other end.
//
//   node test/bench/telemetry-hook-cost.ts [requests=200000] > /dev/null
import type { ProxyNode } from '../../core/model/proxy-config.ts';
import type { Cluster } from '../../proxy/cluster/cluster.ts';
import type { ProxyState } from '../../proxy/config/proxy-state.ts';
import type { Downstream } from '../../proxy/http/downstream.ts';
import { Exchange } from '../../proxy/http/exchange.ts';
import type { ListenerContext } from '../../proxy/http/listener-context.ts';
import type { Dispatch } from '../../proxy/router/router.ts';
import { ProxyTelemetry } from '../../proxy/telemetry/proxy-telemetry.ts';
import type { TelemetrySettings } from '../../proxy/telemetry/proxy-telemetry.ts';

export interface HookCost {
  setting: string;
  /** CPU nanoseconds per request for the interceptor + recordExchange. */
  nsPerRequest: number;
}

export const HOOK_SETTINGS: ReadonlyArray<{ name: string; settings: TelemetrySettings }> = [
  { name: 'off', settings: { metrics: false, accessLog: 'off' } },
  { name: 'metrics', settings: { metrics: true, accessLog: 'off' } },
  { name: 'access log (JSON)', settings: { metrics: false, accessLog: 'json' } },
  { name: 'metrics + access log', settings: { metrics: true, accessLog: 'json' } },
  { name: 'metrics + access log + tracing 1%', settings: { metrics: true, accessLog: 'json', tracing: { sampling: 1 } } },
];

const NODE: ProxyNode = { id: 'sidecar~bench-client.default', type: 'sidecar', namespace: 'default', workload: 'bench-client', labels: { app: 'bench-client' } } as ProxyNode;
const SERVICE = 'upstream.default.svc.cluster.local';
const CLUSTER_NAME = `outbound|8080||${SERVICE}`;

function fakeCluster(): Cluster {
  return {
    name: CLUSTER_NAME,
    config: { type: 'cluster', name: CLUSTER_NAME, service: SERVICE, port: 8080, lbPolicy: 'ROUND_ROBIN', protocol: 'http1' },
    endpointsResource: { type: 'endpoints', name: CLUSTER_NAME, endpoints: [{ address: '127.0.0.1', port: 8080, healthy: true, workload: 'upstream', namespace: 'default', labels: { app: 'upstream' } }] },
  } as unknown as Cluster;
}

/** A fresh exchange per request, as the listener makes one: new header strings, the same cluster and host. */
function exchange(listener: ListenerContext, cluster: Cluster, host: unknown, i: number): Exchange {
  const down = {
    httpVersion: 1,
    method: 'GET',
    target: '/echo?size=1024',
    rawHeaders: ['Host', 'upstream:8080', 'User-Agent', 'fortio.org/fortio-1.69.0', 'x-request-id', `c8a1b2c3-d4e5-4f60-8a9b-${(i % 1e12).toString().padStart(12, '0')}`],
    remoteAddress: '127.0.0.1:45678',
    bodyComplete: true,
    headersSent: true,
    statusCode: 200,
    finished: true,
  } as unknown as Downstream;
  const ex = new Exchange(down, listener, {} as ProxyState, performance.now() - 1.5);
  ex.authority = 'upstream:8080';
  ex.path = '/echo';
  ex.query = 'size=1024';
  ex.cluster = cluster;
  ex.host = host as Exchange['host'];
  ex.responseBytes = 1024;
  return ex;
}

const YIELD_EVERY = 64;

export async function measureHookCosts(requests: number): Promise<HookCost[]> {
  const listener = { kind: 'outbound', port: 15001, scheme: 'http', edge: false } as unknown as ListenerContext;
  const cluster = fakeCluster();
  const host = { key: '127.0.0.1:8080', address: '127.0.0.1', port: 8080 };
  const out: HookCost[] = [];
  const telemetries = HOOK_SETTINGS.map(({ settings }) => new ProxyTelemetry({ node: NODE, ...settings, spanSink: { report: () => {} } }));
  const run = async (telemetry: ProxyTelemetry, n: number, offset: number): Promise<void> => {
    const hook: Dispatch = telemetry.interceptor()(() => {});
    for (let i = 0; i < n; i++) {
      const ex = exchange(listener, cluster, host, offset + i);
      hook(ex);
      telemetry.recordExchange(ex);
      // Back to the event loop now and then, as a proxy is between requests: the log's writes complete.
      if (i % YIELD_EVERY === YIELD_EVERY - 1) await new Promise(setImmediate);
    }
  };
  // Every setting warmed up (JIT) before any is measured: the code is shared, so the first measured would gain.
  for (const telemetry of telemetries) await run(telemetry, requests / 4, 0);
  for (let s = 0; s < telemetries.length; s++) {
    const start = process.cpuUsage();
    await run(telemetries[s], requests, requests);
    const used = process.cpuUsage(start);
    out.push({ setting: HOOK_SETTINGS[s].name, nsPerRequest: ((used.user + used.system) * 1000) / requests });
  }
  for (const telemetry of telemetries) await telemetry.close();
  // The cost of making the exchanges alone is subtracted.
  const baseStart = process.cpuUsage();
  for (let i = 0; i < requests; i++) {
    exchange(listener, cluster, host, i);
    if (i % YIELD_EVERY === YIELD_EVERY - 1) await new Promise(setImmediate);
  }
  const base = process.cpuUsage(baseStart);
  const baseNs = ((base.user + base.system) * 1000) / requests;
  return out.map((c) => ({ ...c, nsPerRequest: Math.max(0, c.nsPerRequest - baseNs) }));
}

if (import.meta.main) {
  const requests = Number(process.argv[2] ?? 200_000);
  const costs = await measureHookCosts(requests);
  process.stderr.write(`${JSON.stringify(costs)}\n`);
}
