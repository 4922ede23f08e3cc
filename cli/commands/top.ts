// `jibe top`: the busiest request paths right now, like `linkerd viz top`.
// Metrics carry no paths, so each proxy samples its own traffic on demand
// (admin `/top?duration=…`, bounded memory) and this command merges the
// answers, redrawing every window until interrupted (or once with --once).
import type { Command } from 'commander';
import { JibeError } from '../../core/errors/errors.ts';
import type { TopEntry, TopReport } from '../../proxy/telemetry/telemetry-top.ts';
import { DEFAULT_SERVER } from '../api-client.ts';
import { collect } from '../options.ts';
import { formatTable } from '../table.ts';
import { parseInterval, proxyTargets } from './stat.ts';

interface Row extends TopEntry {
  proxy: string;
}

async function sample(target: string, windowMs: number, limit: number): Promise<TopReport> {
  const res = await fetch(`http://${target}/top?duration=${windowMs}ms&limit=${limit}`, { signal: AbortSignal.timeout(windowMs + 10_000) });
  if (!res.ok) throw new Error(`HTTP ${res.status}: ${(await res.text()).trim()}`);
  return (await res.json()) as TopReport;
}

/** One window on every proxy, merged: the busiest `limit` rows overall. */
export async function topRound(targets: string[], windowMs: number, limit: number, warn: (line: string) => void): Promise<Row[]> {
  const results = await Promise.allSettled(targets.map((t) => sample(t, windowMs, limit)));
  const rows: Row[] = [];
  let answered = 0;
  results.forEach((r, i) => {
    if (r.status === 'rejected') {
      warn(`! ${targets[i]}: ${(r.reason as Error & { cause?: Error }).cause?.message ?? (r.reason as Error).message}`);
      return;
    }
    answered++;
    for (const e of r.value.entries) rows.push({ ...e, proxy: targets[i] });
  });
  if (answered === 0) {
    throw new JibeError('JIBE_ERR_PROXY_UNREACHABLE', `no proxy answered /top at ${targets.join(', ')}`, {
      hint: 'pass the proxies\' admin addresses with --proxy host:port (`jibe up` prints each ADMIN port); admin ports listen on 127.0.0.1',
    });
  }
  return rows.sort((a, b) => b.count - a.count || a.path.localeCompare(b.path)).slice(0, limit);
}

export function formatTop(rows: Row[], windowMs: number): string {
  if (rows.length === 0) return `No requests in the last ${windowMs / 1000}s.\n`;
  const rps = (n: number): string => (n / (windowMs / 1000)).toFixed(1);
  return formatTable(
    ['PROXY', 'DIRECTION', 'METHOD', 'AUTHORITY', 'PATH', 'COUNT', 'RPS', 'SUCCESS', 'AVG', 'MAX'],
    rows.map((r) => [
      r.proxy,
      r.direction,
      r.method,
      r.authority,
      r.path,
      String(r.count),
      rps(r.count),
      `${(((r.count - r.errors) / r.count) * 100).toFixed(1)}%`,
      `${(r.totalMs / r.count).toFixed(1)}ms`,
      `${r.maxMs.toFixed(1)}ms`,
    ]),
  );
}

export function registerTop(program: Command): void {
  program
    .command('top')
    .description('the busiest request paths through the proxies, sampled live (Ctrl-C to stop)')
    .option('--window <duration>', 'sampling window of each refresh', '5s')
    .option('--limit <n>', 'rows shown', '20')
    .option('--once', 'sample one window, print it and exit')
    .option('--proxy <host:port>', 'a proxy\'s admin address (repeatable); default: every connected proxy on port 15000', collect, [])
    .option('-o, --output <format>', 'table or json (json implies --once)', 'table')
    .option('--server <url>', 'control plane API', DEFAULT_SERVER)
    .action(async (opts: { window: string; limit: string; once?: boolean; proxy: string[]; output: string; server: string }) => {
      const windowMs = parseInterval(opts.window);
      const limit = Number(opts.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new JibeError('JIBE_ERR_BAD_REQUEST', '--limit must be an integer from 1 to 1000');
      const targets = await proxyTargets(opts.server, opts.proxy, 15000);
      const warn = (line: string): void => void process.stderr.write(line + '\n');
      const interactive = opts.output !== 'json' && opts.once !== true && process.stdout.isTTY === true;
      let stop = false;
      const onSigint = (): void => {
        stop = true;
      };
      process.once('SIGINT', onSigint);
      try {
        do {
          const rows = await topRound(targets, windowMs, limit, warn);
          if (opts.output === 'json') {
            process.stdout.write(JSON.stringify({ windowMs, rows }, null, 2) + '\n');
            return;
          }
          // Clear the screen between refreshes on a terminal; append otherwise (pipes, logs).
          if (interactive) process.stdout.write('\x1b[2J\x1b[H');
          process.stdout.write(formatTop(rows, windowMs));
        } while (opts.once !== true && !stop);
      } finally {
        process.off('SIGINT', onSigint);
      }
    });
}
