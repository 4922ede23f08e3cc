// `jibe vm token create|list|revoke`: join tokens for VMs (platforms/vm). The
// admin token is read from the control plane's data directory, so these run
// where the operator can read it (the control plane's host).
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { adminCall, DEFAULT_SERVER } from '../api-client.ts';
import { collect, parseLabels } from '../options.ts';
import { formatTable } from '../table.ts';
import { DEFAULT_DATA_DIR } from './control-plane.ts';

function parseTtl(value: string): number {
  const m = /^(\d+)(s|m|h|d)?$/.exec(value);
  if (!m || Number(m[1]) === 0) throw new InvalidArgumentError(`"${value}" is not a duration (e.g. 30m, 12h, 7d)`);
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86_400 }[(m[2] ?? 's') as 's' | 'm' | 'h' | 'd'];
}

function parseUses(value: string): number | null {
  if (value === 'unlimited') return null;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError(`"${value}" is not a number of uses (>= 1) or "unlimited"`);
  return n;
}


export function registerVm(program: Command): void {
  const vm = program.command('vm').description('virtual machines: join tokens');
  const token = vm.command('token').description('create, list and revoke VM join tokens');
  const common = (c: Command) => c.option('--server <url>', 'control plane API', DEFAULT_SERVER).option('--data-dir <dir>', 'the control plane\'s data directory (holds the admin token)', DEFAULT_DATA_DIR);
  common(
    token
      .command('create')
      .description('a token a VM joins with (`jibe agent join --token …`); printed once, stored only as a hash')
      .requiredOption('-n, --namespace <ns>', 'namespace of the VM\'s workload')
      .requiredOption('--service-account <sa>', 'service account (identity) the VM gets')
      .option('--ttl <duration>', 'how long the token may be used, e.g. 30m, 12h, 7d', parseTtl, 86_400)
      .option('--labels <k=v,...>', 'labels the VM\'s workload gets', parseLabels, {})
      .option('--uses <n>', 'how many VMs may join with it, or "unlimited"', parseUses, 1)
      .option('--address <host:port>', 'control plane TLS API address to put in the token (repeatable; default: what the control plane advertises)', collect),
  ).action(async (opts) => {
    const r = await adminCall<{ token: string; id: string; spiffeId: string; expiresAt: string; usesLeft: number | null; addresses: string[] }>(opts, 'POST', '/api/v1/vm/tokens', {
      namespace: opts.namespace,
      serviceAccount: opts.serviceAccount,
      ttlSeconds: opts.ttl,
      labels: opts.labels,
      uses: opts.uses,
      ...(opts.address ? { addresses: opts.address } : {}),
    });
    process.stdout.write(`${r.token}\n`);
    process.stderr.write(`token ${r.id} for ${r.spiffeId}, ${r.usesLeft === null ? 'unlimited uses' : `${r.usesLeft} use(s)`}, expires ${r.expiresAt}; control plane at ${r.addresses.join(', ')}\n`);
  });
  common(token.command('list').description('tokens with their id, identity, uses and expiry (never the secret)').option('-o, --output <format>', 'table or json', 'table')).action(async (opts) => {
    const { tokens } = await adminCall<{ tokens: Array<{ id: string; namespace: string; serviceAccount: string; usesLeft: number | null; uses: number; expiresAt: string; revokedAt?: string; labels: Record<string, string> }> }>(opts, 'GET', '/api/v1/vm/tokens');
    if (opts.output === 'json') return void process.stdout.write(JSON.stringify(tokens, null, 2) + '\n');
    const now = Date.now();
    process.stdout.write(
      formatTable(
        ['ID', 'NAMESPACE', 'SERVICE ACCOUNT', 'USES', 'LEFT', 'EXPIRES', 'STATE'],
        tokens.map((t) => [
          t.id, t.namespace, t.serviceAccount, String(t.uses), t.usesLeft === null ? 'unlimited' : String(t.usesLeft), t.expiresAt,
          t.revokedAt ? 'revoked' : Date.parse(t.expiresAt) <= now ? 'expired' : t.usesLeft === 0 ? 'used' : 'valid',
        ]),
      ),
    );
  });
  common(token.command('revoke').description('make a token unusable at once (VMs that already joined keep their certificates)').argument('<id-or-token>', 'the id from `list`, or the token itself')).action(async (idOrToken: string, opts) => {
    const r = await adminCall<{ revoked: string }>(opts, 'DELETE', `/api/v1/vm/tokens/${encodeURIComponent(idOrToken)}`);
    process.stdout.write(`token ${r.revoked} revoked\n`);
  });
}
