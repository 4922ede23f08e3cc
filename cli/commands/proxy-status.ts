// `jibe proxy-status`: each connected proxy's config version and ACK state (as istioctl proxy-status).
import type { Command } from 'commander';
import type { ProxyStatus } from '../../core/discovery/discovery-subscriber.ts';
import { DEFAULT_SERVER, callApi } from '../api-client.ts';
import { age, formatTable } from '../table.ts';

type ProxyStatusRow = ProxyStatus;

export function registerProxyStatus(program: Command): void {
  program
    .command('proxy-status')
    .description('show every connected proxy: the config version it runs and whether it is in sync')
    .option('-o, --output <format>', 'table or json', 'table')
    .option('--server <url>', 'control plane API', DEFAULT_SERVER)
    .action(async (opts) => {
      const { version, proxies } = await callApi<{ version: string; proxies: ProxyStatusRow[] }>(opts.server, 'GET', '/api/v1/proxies');
      if (opts.output === 'json') {
        process.stdout.write(JSON.stringify({ version, proxies }, null, 2) + '\n');
        return;
      }
      if (proxies.length === 0) {
        process.stdout.write('No proxies are connected.\n');
        return;
      }
      const rows = proxies.map((p) => [
        p.id,
        p.type,
        p.namespace,
        p.syncedVersion ?? p.lastAckedVersion ?? '-',
        syncState(p, version),
        p.lastNack ? `NACK v${p.lastNack.version}: ${p.lastNack.message}` : '',
        age(p.connectedAt),
      ]);
      process.stdout.write(formatTable(['PROXY', 'TYPE', 'NAMESPACE', 'VERSION', 'STATE', 'LAST ERROR', 'CONNECTED'], rows));
    });
}

/**
 * SYNCED: runs the control plane's current config; STALE: a push is on its way
 * or awaits its ACK; NACKED: refused the last push and runs its previous config.
 */
export function syncState(p: Pick<ProxyStatusRow, 'lastSentVersion' | 'lastAckedVersion' | 'syncedVersion' | 'lastNack' | 'pending'>, current: string): string {
  if (!p.lastSentVersion) return 'NOT SENT';
  if (p.lastNack && p.lastAckedVersion !== p.lastSentVersion) return 'NACKED';
  if (p.pending || p.syncedVersion !== current) return 'STALE';
  return 'SYNCED';
}
