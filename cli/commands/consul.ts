// `jibe consul register|deregister`: put a service instance and its Jibe
// sidecar into the local Consul agent (or take them out), for fleets whose
// registry is Consul. The control plane's consul platform then sees them.
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { JibeError } from '../../core/errors/errors.ts';
import type { ConsulServiceSpec } from '../../platforms/consul/consul-registration.ts';
import { collect, parseLabels, parsePort } from '../options.ts';

const CONNECTION_OPTIONS: Array<[string, string]> = [
  ['--consul-address <address>', 'Consul agent HTTP API (default CONSUL_HTTP_ADDR, else 127.0.0.1:8500)'],
  ['--consul-token <token>', 'Consul ACL token (default CONSUL_HTTP_TOKEN)'],
];

export function registerConsul(program: Command): void {
  const consul = program.command('consul').description('register services and their Jibe sidecars in Consul');
  const register = consul
    .command('register')
    .description('register a service instance and its Jibe sidecar in the local Consul agent, with a health check')
    .option('--service <name>', 'service name (a DNS label)')
    .option('--port <port>', 'port the app listens on', parsePort)
    .option('--id <id>', 'instance ID (default <service>-<port>)')
    .option('--address <ip>', "address peers dial (default the node's)")
    .option('--tags <a,b>', 'Consul tags; key=value tags become labels', (v: string, prev: string[] = []) => [...prev, ...v.split(',').filter(Boolean)])
    .option('--meta <k=v,...>', 'Consul Meta, e.g. version=v1 (becomes labels; repeatable)', parseLabels)
    .option('--protocol <protocol>', 'http, http2, grpc, tcp, … (Meta protocol)')
    .option('-n, --namespace <ns>', 'mesh namespace (Meta jibe-namespace)')
    .option('--check <url>', 'health check: http://…, https://… or tcp://host:port')
    .option('--check-interval <duration>', 'health check interval', '10s')
    .option('--sidecar-port <port>', 'port the Jibe sidecar accepts mesh mTLS on (15006 = traffic capture)', parsePort, 15006)
    .option('--no-sidecar', 'register without a Jibe sidecar (peers dial the app in plain text)')
    .option('-f, --file <file>', 'register the instances a YAML or JSON file lists (same fields as the flags) instead', collect);
  for (const [flag, help] of CONNECTION_OPTIONS) register.option(flag, help);
  register.action(async (opts) => {
    const { ConsulClient } = await import('../../platforms/consul/consul-client.ts');
    const { registerService } = await import('../../platforms/consul/consul-registration.ts');
    const client = new ConsulClient({ address: opts.consulAddress, token: opts.consulToken });
    const specs = opts.file ? await specsFromFiles(opts.file as string[]) : [specFromFlags(opts)];
    for (const spec of specs) {
      const { id, workload } = await registerService(client, spec);
      process.stdout.write(`registered ${spec.service} instance ${id} in Consul (mesh workload ${workload})\n`);
    }
  });

  const deregister = consul
    .command('deregister')
    .description('remove a service instance (and its sidecar) from the local Consul agent')
    .argument('<id>', 'instance ID as registered')
    .option('--ignore-missing', 'succeed when the agent does not know the ID');
  for (const [flag, help] of CONNECTION_OPTIONS) deregister.option(flag, help);
  deregister.action(async (id: string, opts) => {
    const { ConsulClient } = await import('../../platforms/consul/consul-client.ts');
    const { deregisterService } = await import('../../platforms/consul/consul-registration.ts');
    const removed = await deregisterService(new ConsulClient({ address: opts.consulAddress, token: opts.consulToken }), id);
    if (!removed && !opts.ignoreMissing) throw new JibeError('JIBE_ERR_NOT_FOUND', `the Consul agent has no service instance ${id}`, { hint: 'list them with: consul catalog services' });
    process.stdout.write(removed ? `deregistered ${id}\n` : `${id} was not registered\n`);
  });
}

type Spec = ConsulServiceSpec;

function specFromFlags(opts: Record<string, unknown>): Spec {
  if (opts.service === undefined || opts.port === undefined) {
    throw new JibeError('JIBE_ERR_WORKLOAD_INVALID', 'jibe consul register needs --service and --port (or --file)');
  }
  return {
    service: opts.service as string,
    port: opts.port as number,
    id: opts.id as string | undefined,
    address: opts.address as string | undefined,
    tags: opts.tags as string[] | undefined,
    meta: opts.meta as Record<string, string> | undefined,
    protocol: opts.protocol as string | undefined,
    namespace: opts.namespace as string | undefined,
    check: opts.check as string | undefined,
    checkInterval: opts.checkInterval as string | undefined,
    sidecar: opts.sidecar === false ? false : { port: opts.sidecarPort as number },
  };
}

/** A file holds one spec, a list, or `{services: [...]}`; every problem in every file is reported before anything is registered. */
async function specsFromFiles(files: string[]): Promise<Spec[]> {
  const { parseAllDocuments } = await import('yaml');
  const { validateServiceSpec } = await import('../../platforms/consul/consul-registration.ts');
  const specs: Spec[] = [];
  const errors: JibeError[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw new JibeError('JIBE_ERR_FILE_READ', `cannot read ${file}: ${(err as Error).message}`, { file });
    }
    const docs = parseAllDocuments(text);
    for (const [documentIndex, doc] of docs.entries()) {
      if (doc.errors.length) {
        errors.push(new JibeError('JIBE_ERR_YAML_PARSE', doc.errors[0].message, { file, documentIndex }));
        continue;
      }
      const value = doc.toJS() as unknown;
      const list = Array.isArray(value) ? value : value && typeof value === 'object' && Array.isArray((value as { services?: unknown }).services) ? (value as { services: unknown[] }).services : [value];
      list.forEach((item, i) => {
        const spec = item as Spec;
        for (const e of validateServiceSpec(spec, `[${i}].`)) errors.push(new JibeError(e.code, e.message, { ...e.details, file, documentIndex }));
        specs.push(spec);
      });
    }
  }
  if (errors.length) throw new JibeError('JIBE_ERR_WORKLOAD_INVALID', `${errors.length} problem(s) in the registration file(s); nothing was registered`, { causes: errors });
  return specs;
}
