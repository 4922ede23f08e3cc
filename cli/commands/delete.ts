// `jibe delete`: removes rules named on the command line or in files.
import type { Command } from 'commander';
import { JibeError } from '../../core/errors/errors.ts';
import { kindByName } from '../../core/model/resource.ts';
import { DEFAULT_SERVER, callApi } from '../api-client.ts';
import { collect } from '../options.ts';

export function registerDelete(program: Command): void {
  program
    .command('delete')
    .description('delete rules: `jibe delete -f file.yaml` or `jibe delete <kind> <name>`')
    .argument('[kind]', 'rule kind or short name')
    .argument('[names...]', 'names of the resources')
    .option('-f, --filename <path>', 'delete what these files define (repeatable)', collect)
    .option('-n, --namespace <ns>', 'namespace', 'default')
    .option('--dry-run', 'check only; change nothing')
    .option('--server <url>', 'control plane API', DEFAULT_SERVER)
    .action(async (kindArg: string | undefined, names: string[], opts) => {
      let refs: Array<{ kind: string; namespace: string; name: string }>;
      if (opts.filename) {
        const { loadFiles } = await import('../../core/config/load-documents.ts');
        refs = (await loadFiles(opts.filename)).map((d) => ({ kind: d.resource.kind, namespace: d.resource.metadata.namespace ?? 'default', name: d.resource.metadata.name }));
      } else {
        const info = kindArg ? kindByName(kindArg) : undefined;
        if (!info || names.length === 0) throw new JibeError('JIBE_ERR_BAD_REQUEST', 'name a kind and at least one name, or pass -f', { hint: 'e.g. jibe delete vs reviews' });
        refs = names.map((name) => ({ kind: info.kind, namespace: opts.namespace, name }));
      }
      const { deleted } = await callApi<{ deleted: string[] }>(opts.server, 'POST', '/api/v1/config/delete', { refs, dryRun: !!opts.dryRun });
      for (const d of deleted) process.stdout.write(`${d} deleted${opts.dryRun ? ' (dry run)' : ''}\n`);
    });
}
