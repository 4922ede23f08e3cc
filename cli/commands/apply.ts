// `jibe apply -f`: validates files locally (syntax), then the control plane
// validates the whole batch (schema and references) and applies all or nothing.
import type { Command } from 'commander';
import { DEFAULT_SERVER, callApi } from '../api-client.ts';
import { collect } from '../options.ts';

export function registerApply(program: Command): void {
  program
    .command('apply')
    .description('create or update rules from YAML/JSON files or directories (all or nothing)')
    .requiredOption('-f, --filename <path>', 'file or directory (repeatable)', collect)
    .option('--dry-run', 'validate only; change nothing')
    .option('--server <url>', 'control plane API', DEFAULT_SERVER)
    .action(async (opts) => {
      const { loadFiles } = await import('../../core/config/load-documents.ts');
      const documents = await loadFiles(opts.filename);
      const { results } = await callApi<{ results: Array<{ resource: string; action: string }> }>(opts.server, 'POST', '/api/v1/config/apply', {
        documents,
        dryRun: !!opts.dryRun,
      });
      for (const r of results) process.stdout.write(`${r.resource} ${r.action}${opts.dryRun ? ' (dry run)' : ''}\n`);
    });
}
