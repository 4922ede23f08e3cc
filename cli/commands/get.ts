// `jibe get`: lists rules, services and workloads, like kubectl get.
import type { Command } from 'commander';
import { JibeError } from '../../core/errors/errors.ts';
import { KINDS, kindByName } from '../../core/model/resource.ts';
import type { Resource } from '../../core/model/resource.ts';
import type { Service } from '../../core/model/service.ts';
import type { Workload } from '../../core/model/workload.ts';
import { DEFAULT_SERVER, callApi } from '../api-client.ts';
import { age, formatTable } from '../table.ts';

export function registerGet(program: Command): void {
  program
    .command('get')
    .description(`show rules (${KINDS.map((k) => k.shortNames[0]).join(', ')}, …), services or workloads`)
    .argument('<kind>', 'a rule kind or short name (vs, dr, gw, se, we), "services" or "workloads"')
    .argument('[name]', 'only the resource with this name')
    .option('-n, --namespace <ns>', 'only this namespace', 'default')
    .option('-A, --all-namespaces', 'every namespace')
    .option('-o, --output <format>', 'table, yaml or json', 'table')
    .option('--server <url>', 'control plane API', DEFAULT_SERVER)
    .action(async (kindArg: string, name: string | undefined, opts) => {
      const ns = opts.allNamespaces ? undefined : opts.namespace;
      const inScope = (o: { namespace?: string; name: string }) => (!ns || (o.namespace ?? 'default') === ns) && (!name || o.name === name);
      if (/^(svc|services?)$/i.test(kindArg)) {
        const { services } = await callApi<{ services: Service[] }>(opts.server, 'GET', '/api/v1/services');
        const items = services.filter(inScope);
        return print(opts.output, items, ['HOST', 'PORTS', 'PLATFORMS'], (s) => [s.hostname, s.ports.map((p) => `${p.port}/${p.protocol}`).join(','), s.platforms.join(',')]);
      }
      if (/^(wl|workloads?)$/i.test(kindArg)) {
        const { workloads } = await callApi<{ workloads: Workload[] }>(opts.server, 'GET', '/api/v1/workloads');
        const items = workloads.filter(inScope);
        return print(opts.output, items, ['NAMESPACE', 'NAME', 'ADDRESS', 'PLATFORM', 'HEALTH', 'LABELS', 'IDENTITY'], (w) => [
          w.namespace, w.name, w.address, w.platform, w.health, Object.entries(w.labels).map(([k, v]) => `${k}=${v}`).join(','), w.identity,
        ]);
      }
      const info = kindByName(kindArg);
      if (!info) {
        throw new JibeError('JIBE_ERR_UNKNOWN_KIND', `unknown kind "${kindArg}"`, { hint: `use one of: ${KINDS.map((k) => k.kind).join(', ')}, services, workloads` });
      }
      const query = new URLSearchParams({ kind: info.kind, ...(ns ? { namespace: ns } : {}), ...(name ? { name } : {}) });
      const { items } = await callApi<{ items: Resource[] }>(opts.server, 'GET', `/api/v1/config?${query}`);
      if (name && items.length === 0) throw new JibeError('JIBE_ERR_NOT_FOUND', `${info.kind} "${name}" not found in namespace ${ns ?? '(any)'}`);
      return print(opts.output, items, ['NAMESPACE', 'NAME', 'AGE'], (r) => [r.metadata.namespace ?? 'default', r.metadata.name, age(r.metadata.creationTimestamp)]);
    });
}

async function print<T>(format: string, items: T[], header: string[], row: (item: T) => string[]): Promise<void> {
  if (format === 'json') process.stdout.write(JSON.stringify(items, null, 2) + '\n');
  else if (format === 'yaml') {
    const { stringify } = await import('yaml');
    process.stdout.write(items.map((i) => stringify(i)).join('---\n'));
  } else if (format === 'table') {
    process.stdout.write(items.length ? formatTable(header, items.map(row)) : 'No resources found.\n');
  } else throw new JibeError('JIBE_ERR_BAD_REQUEST', `unknown output format "${format}"`, { hint: 'use table, yaml or json' });
}
