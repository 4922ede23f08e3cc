// `jibe credential create|list|delete`: operators' TLS credentials, what a
// Gateway server's `tls.credentialName` names (a Kubernetes TLS Secret in
// Istio). The files are read here and sent to the control plane's loopback
// API with the admin token from its data directory; the control plane checks
// them (PEM, key matches certificate) and keeps them owner-only.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { JibeError } from '../../core/errors/errors.ts';
import { adminCall, DEFAULT_SERVER } from '../api-client.ts';
import { formatTable } from '../table.ts';
import { DEFAULT_DATA_DIR } from './control-plane.ts';

interface AdminOptions {
  server: string;
  dataDir: string;
}


async function readPem(file: string, flag: string): Promise<string> {
  try {
    return await readFile(path.resolve(file), 'utf8');
  } catch (err) {
    throw new JibeError('JIBE_ERR_FILE_READ', `cannot read ${flag} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { file, field: flag });
  }
}

const credentialPath = (namespace: string, name: string) => `/api/v1/credentials/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}`;

export function registerCredential(program: Command): void {
  const credential = program.command('credential').description("gateway TLS credentials (a Gateway server's tls.credentialName)");
  const common = (c: Command) =>
    c.option('--server <url>', 'control plane API', DEFAULT_SERVER).option('--data-dir <dir>', "the control plane's data directory (holds the admin token)", DEFAULT_DATA_DIR);
  common(
    credential
      .command('create')
      .description('store (or replace) a certificate and key; gateways whose servers name it terminate TLS with it')
      .argument('<name>', 'the credentialName Gateways use')
      .option('-n, --namespace <ns>', "namespace: the gateway proxy's, or the Gateway resource's", 'default')
      .requiredOption('--cert <file>', 'PEM certificate chain, leaf first (tls.crt)')
      .requiredOption('--key <file>', 'PEM private key of that certificate (tls.key)')
      .option('--ca <file>', 'PEM roots client certificates must chain to, for MUTUAL servers (ca.crt)'),
  ).action(async (name: string, opts: AdminOptions & { namespace: string; cert: string; key: string; ca?: string }) => {
    const body = { cert: await readPem(opts.cert, '--cert'), key: await readPem(opts.key, '--key'), ...(opts.ca ? { ca: await readPem(opts.ca, '--ca') } : {}) };
    const r = await adminCall<{ credential: { namespace: string; name: string; subject: string; subjectAltNames: string[]; notAfter: string; hasCa: boolean } }>(opts, 'PUT', credentialPath(opts.namespace, name), body);
    const c = r.credential;
    process.stdout.write(`credential ${c.namespace}/${c.name} stored: ${c.subject}${c.subjectAltNames.length ? ` (${c.subjectAltNames.join(', ')})` : ''}, valid until ${c.notAfter}${c.hasCa ? ', with client CA' : ''}\n`);
  });
  common(credential.command('list').description('stored credentials: names, subjects and expiry (never a key)').option('-o, --output <format>', 'table or json', 'table')).action(async (opts: AdminOptions & { output: string }) => {
    const { credentials } = await adminCall<{ credentials: Array<{ namespace: string; name: string; subject: string; subjectAltNames: string[]; notAfter: string; hasCa: boolean }> }>(opts, 'GET', '/api/v1/credentials');
    if (opts.output === 'json') return void process.stdout.write(JSON.stringify(credentials, null, 2) + '\n');
    process.stdout.write(formatTable(['NAMESPACE', 'NAME', 'SUBJECT ALT NAMES', 'NOT AFTER', 'CLIENT CA'], credentials.map((c) => [c.namespace, c.name, c.subjectAltNames.join(',') || '-', c.notAfter, c.hasCa ? 'yes' : 'no'])));
  });
  common(credential.command('delete').description('remove a credential; gateways naming it refuse TLS on that port until it is back').argument('<name>').option('-n, --namespace <ns>', 'namespace', 'default')).action(
    async (name: string, opts: AdminOptions & { namespace: string }) => {
      const r = await adminCall<{ deleted: string }>(opts, 'DELETE', credentialPath(opts.namespace, name));
      process.stdout.write(`credential ${r.deleted} deleted\n`);
    },
  );
}
