// Runs one Jibe sidecar for benchmarks, in its own process, without a control
// plane: the config a control plane would push is applied directly. Prints
//   JIBE_SIDECAR_READY {"outbound":<port>,"admin":<port>}
// once it serves, and closes cleanly on SIGTERM/SIGINT (so `node --cpu-prof`
// gets to write its profile).
//
// Plain JavaScript importing the compiled proxy from dist/, because that is what
// users run (`node dist/cli/jibe.js proxy`): a runner written in TypeScript would
// load Node's type stripper, about 20 MB of RSS no deployed sidecar carries.
// jibe-sidecar.ts checks that dist/ is built and current before starting this.
//
//   node test/bench/run-sidecar.mjs --upstream-port <port> [--outbound-port 0] [--admin-port 0]
import { parseArgs } from 'node:util';
import { OUTBOUND_ROUTE_CONFIG, outboundClusterName } from '../../dist/core/model/proxy-config.js';
import { startProxy } from '../../dist/proxy/proxy.js';

const READY_PREFIX = 'JIBE_SIDECAR_READY ';
const UPSTREAM_HOST = 'upstream.default.svc.cluster.local';
const UPSTREAM_SERVICE_PORT = 8080;

/**
 * What a control plane would push for one outbound service `upstream:8080` backed by one endpoint.
 * @param {string} upstreamAddress
 * @param {number} upstreamPort
 */
function benchConfigUpdate(upstreamAddress, upstreamPort) {
  const cluster = outboundClusterName(UPSTREAM_HOST, UPSTREAM_SERVICE_PORT);
  return {
    version: 'bench-1',
    nonce: 'bench-1',
    full: true,
    upserts: [
      {
        type: 'cluster',
        name: cluster,
        service: UPSTREAM_HOST,
        port: UPSTREAM_SERVICE_PORT,
        lbPolicy: 'ROUND_ROBIN',
        protocol: 'http1',
      },
      {
        type: 'endpoints',
        name: cluster,
        endpoints: [{ address: upstreamAddress, port: upstreamPort, healthy: true }],
      },
      {
        type: 'route',
        name: OUTBOUND_ROUTE_CONFIG,
        virtualHosts: [
          {
            name: `upstream:${UPSTREAM_SERVICE_PORT}`,
            domains: ['upstream', `upstream:${UPSTREAM_SERVICE_PORT}`],
            routes: [{ name: 'default', match: [], action: { clusters: [{ cluster, weight: 100 }] } }],
          },
        ],
      },
    ],
    removes: [],
  };
}

async function main() {
  const { values } = parseArgs({
    options: {
      'upstream-port': { type: 'string' },
      'upstream-address': { type: 'string', default: '127.0.0.1' },
      'outbound-port': { type: 'string', default: '0' },
      'admin-port': { type: 'string', default: '0' },
    },
  });
  if (values['upstream-port'] === undefined) throw new Error('--upstream-port is required');
  const proxy = await startProxy({
    node: { id: 'sidecar~bench.default', type: 'sidecar', namespace: 'default', labels: {} },
    outboundPort: Number(values['outbound-port']),
    adminPort: Number(values['admin-port']),
    bindAddress: '127.0.0.1',
  });
  let closing = false;
  const shutdown = () => {
    if (closing) return;
    closing = true;
    const force = setTimeout(() => process.exit(1), 5000);
    force.unref();
    void Promise.resolve(proxy.close()).then(() => process.exit(0), () => process.exit(1));
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  await proxy.apply(benchConfigUpdate(values['upstream-address'], Number(values['upstream-port'])));
  process.stdout.write(`${READY_PREFIX}${JSON.stringify(proxy.ports)}\n`);
}

main().catch((error) => {
  process.stderr.write(`run-sidecar: ${error?.stack ?? String(error)}\n`);
  process.exit(1);
});
