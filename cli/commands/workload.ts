// `jibe workload`: register workloads with the control plane by hand (the node
// agent does this for VMs; `jibe up` for the local mesh).
import type { Command } from 'commander';
import { JibeError } from '../../core/errors/errors.ts';
import type { Workload } from '../../core/model/workload.ts';
import { DEFAULT_SERVER, callApi } from '../api-client.ts';
import { collect, parseLabels } from '../options.ts';
import { formatTable } from '../table.ts';

export function registerWorkload(program: Command): void {
  const workload = program.command('workload').description('register, list and remove workloads of the vm platform');
  workload
    .command('register')
    .description('register a workload and the services it serves')
    .requiredOption('--name <name>', 'workload name, e.g. reviews-v3')
    .requiredOption('--address <ip>', 'address peers dial')
    .requiredOption('--service <name:port[:targetPort]>', 'a service it serves (repeatable)', collect)
    .option('-n, --namespace <ns>', 'namespace', 'default')
    .option('--service-account <sa>', 'service account (identity)', 'default')
    .option('--labels <k=v,...>', 'labels, e.g. app=reviews,version=v3', parseLabels, {})
    .option('--inbound-port <appPort=listenPort>', 'sidecar inbound listener for an app port, without capture (repeatable)', collect)
    .option('--server <url>', 'control plane API', DEFAULT_SERVER)
    .action(async (opts) => {
      const services = (opts.service as string[]).map((s) => {
        const [name, port, targetPort] = s.split(':');
        if (!name || !port) throw new JibeError('JIBE_ERR_WORKLOAD_INVALID', `--service "${s}" is not name:port[:targetPort]`);
        return { name, port: Number(port), ...(targetPort ? { targetPort: Number(targetPort) } : {}) };
      });
      const inboundPorts = Object.fromEntries(((opts.inboundPort ?? []) as string[]).map((p) => p.split('=').map(Number)));
      const { workload: w } = await callApi<{ workload: Workload }>(opts.server, 'PUT', '/api/v1/workloads', {
        name: opts.name,
        namespace: opts.namespace,
        address: opts.address,
        serviceAccount: opts.serviceAccount,
        labels: opts.labels,
        services,
        ...(opts.inboundPort ? { proxy: { inboundPorts } } : {}),
      });
      process.stdout.write(`workload ${w.namespace}/${w.name} registered as ${w.identity}\n`);
    });
  workload
    .command('deregister')
    .description('remove a workload from the mesh')
    .argument('<name>', 'workload name')
    .option('-n, --namespace <ns>', 'namespace', 'default')
    .option('--server <url>', 'control plane API', DEFAULT_SERVER)
    .action(async (name: string, opts) => {
      await callApi(opts.server, 'DELETE', `/api/v1/workloads/${encodeURIComponent(opts.namespace)}/${encodeURIComponent(name)}`);
      process.stdout.write(`workload ${opts.namespace}/${name} deregistered\n`);
    });
  workload
    .command('list')
    .description('list registered workloads')
    .option('--server <url>', 'control plane API', DEFAULT_SERVER)
    .action(async (opts) => {
      const { workloads } = await callApi<{ workloads: Workload[] }>(opts.server, 'GET', '/api/v1/workloads');
      process.stdout.write(formatTable(['NAMESPACE', 'NAME', 'ADDRESS', 'HEALTH'], workloads.map((w) => [w.namespace, w.name, w.address, w.health])));
    });
}
