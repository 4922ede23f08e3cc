// `jibe up`: the local mesh, BookInfo and an ingress gateway, in one command.
import path from 'node:path';
import type { Command } from 'commander';
import { parsePort } from '../options.ts';
import { waitForSignal } from './control-plane.ts';

export function registerUp(program: Command): void {
  program
    .command('up')
    .description('start a local mesh: control plane, BookInfo with a sidecar per workload, ingress gateway on :8080 (Ctrl-C stops it all)')
    .option('--data-dir <dir>', 'rules, state and logs of the local mesh', '.jibe')
    .option('--gateway-port <port>', 'ingress gateway port', parsePort, 8080)
    .option('--discovery-port <port>', 'discovery stream port', parsePort, 15010)
    .option('--api-port <port>', 'control plane API port', parsePort, 15014)
    .option('--no-bookinfo', 'start the mesh without the sample app')
    .option('--zipkin <host:port>', 'report every proxy\'s trace spans to this Zipkin collector')
    .option('--trace-sampling <percent>', 'percentage of new traces sampled when --zipkin is given', Number, 100)
    .option('--access-log <format>', 'every proxy logs one line per request: json, text or off', 'off')
    .option('--platforms <list>', 'platforms the mesh spans, comma-separated: vm, consul (a Consul dev agent; ratings registers there), kubernetes or k8s (etcd + kube-apiserver; productpage and reviews v1/v2 become Pods); peers come from the test peer cache', 'vm')
    .action(async (opts) => {
      const { startLocalMesh } = await import('../up/local-mesh.ts');
      const { formatTable } = await import('../table.ts');
      const say = (line: string) => process.stdout.write(line + '\n');
      say('Starting the local Jibe mesh…');
      const mesh = await startLocalMesh({
        dataDir: path.resolve(opts.dataDir),
        gatewayPort: opts.gatewayPort,
        discoveryPort: opts.discoveryPort,
        apiPort: opts.apiPort,
        bookinfo: opts.bookinfo,
        zipkin: opts.zipkin,
        traceSampling: opts.traceSampling,
        accessLog: opts.accessLog,
        platforms: String(opts.platforms).split(',').map((p) => p.trim()).filter(Boolean),
        say,
      });
      if (mesh.workloads.length) {
        say('\n' + formatTable(
          ['WORKLOAD', 'PLATFORM', 'SERVICE', 'APP', 'SIDECAR IN', 'SIDECAR OUT', 'ADMIN', 'METRICS'],
          mesh.workloads.map((w) => [w.name, w.platform ?? 'vm', `${w.service}:9080`, `127.0.0.1:${w.appPort}`, `:${w.inboundPort}`, `:${w.outboundPort}`, `:${w.adminPort}`, `:${w.metricsPort}`]),
        ));
      }
      const server = opts.apiPort === 15014 ? '' : ` --server ${mesh.server}`;
      say(`Open http://localhost:${mesh.gateway.port}/productpage (reload: reviews rotate over v1, v2, v3).
Try next:
  jibe apply${server} -f deploy/samples/bookinfo/networking/virtual-service-reviews-80-20.yaml   # 80% v1, 20% v2
  jibe apply${server} -f deploy/samples/bookinfo/networking/virtual-service-reviews-test-v2.yaml # user "jason" sees v2
  jibe proxy-status${server}                                                                   # every proxy's config version
  jibe get vs${server}
Logs: ${mesh.logDir}   (npm run jibe -- <command> works too)
Press Ctrl-C to stop every process of the mesh.`);
      const reason = await Promise.race([waitForSignal().then(() => ''), mesh.failed]);
      if (reason) process.stderr.write(`error: ${reason}\nStopping the mesh.\n`);
      else say('\nStopping the mesh…');
      await mesh.stop();
      say('Stopped.');
      if (reason) process.exitCode = 1;
    });
}
