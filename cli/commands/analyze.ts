// `jibe analyze`: cross-platform checks of the live mesh (as istioctl analyze):
// routes to subsets no platform provides, hosts whose platforms disagree on
// ports or protocols, workloads without their own identity, VMs whose agent
// stopped reporting, rules two config stores define differently. Exits 1
// when any finding is an error, so scripts and CI can gate on it.
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import type { AnalyzeResponse } from '../../core/analyze/analyze-route.ts';
import type { Finding } from '../../core/analyze/analyze-mesh.ts';
import { DEFAULT_SERVER, callApi } from '../api-client.ts';

export function registerAnalyze(program: Command): void {
  program
    .command('analyze')
    .description('check the running mesh across platforms and config stores; exit code 1 when there are errors')
    .option('-o, --output <format>', 'text or json', parseOutput, 'text')
    .option('--stale-after <duration>', 'a VM whose agent has not reported for this long is stale', '60s')
    .option('--server <url>', 'control plane API', DEFAULT_SERVER)
    .action(async (opts) => {
      const result = await callApi<AnalyzeResponse>(opts.server, 'GET', `/api/v1/analyze?staleAfter=${encodeURIComponent(opts.staleAfter)}`);
      process.stdout.write(opts.output === 'json' ? JSON.stringify(result, null, 2) + '\n' : formatFindings(result));
      if (result.summary.errors > 0) process.exitCode = 1;
    });
}

function parseOutput(value: string): string {
  if (value !== 'text' && value !== 'json') throw new InvalidArgumentError(`"${value}" is not text or json.`);
  return value;
}

/** One line per finding, as `jibe apply` prints validation errors, then a count. */
export function formatFindings({ findings, summary }: AnalyzeResponse): string {
  if (findings.length === 0) return '✔ No problems found in the mesh.\n';
  const lines = findings.map((f) => formatFinding(f));
  lines.push(`${summary.errors} error${summary.errors === 1 ? '' : 's'}, ${summary.warnings} warning${summary.warnings === 1 ? '' : 's'}`);
  return lines.join('\n') + '\n';
}

function formatFinding(f: Finding): string {
  const where = [f.resource, f.field].filter(Boolean).join(' ');
  return `${f.severity === 'error' ? 'Error' : 'Warning'} [${f.code}] ${where ? where + ': ' : ''}${f.message}${f.hint ? `\n    hint: ${f.hint}` : ''}`;
}
