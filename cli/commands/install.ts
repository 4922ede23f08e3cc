// `jibe install`: applies deploy/kubernetes with server-side apply and waits until it is ready.
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';

export function registerInstall(program: Command): void {
  program
    .command('install')
    .description('install Jibe into a Kubernetes cluster (server-side apply of deploy/kubernetes), waiting until it is ready')
    .option('--kubeconfig <file>', 'kubeconfig file (default KUBECONFIG, ~/.kube/config, in-cluster)')
    .option('--kube-context <name>', 'kubeconfig context (default: its current one)')
    .option('--manifests <dir>', 'manifest directory (default: the deploy/kubernetes shipped with this jibe)')
    .option('--dry-run', 'validate every object against the API server (dryRun=All) and change nothing', false)
    .option('--wait <bool>', 'wait for the control plane and gateway Deployments to be available (CRDs are always waited for)', parseBool, true)
    .option('--timeout <seconds>', 'give up waiting after this long', parseSeconds, 300)
    .action(async (opts) => {
      const { KubeClient } = await import('../../platforms/kubernetes/kube-client.ts');
      const { loadManifests } = await import('../../platforms/kubernetes/kube-manifests.ts');
      const { installManifests } = await import('../../platforms/kubernetes/kube-install.ts');
      const manifests = loadManifests(opts.manifests);
      const client = await KubeClient.load({ kubeconfig: opts.kubeconfig, context: opts.kubeContext });
      try {
        process.stdout.write(`installing Jibe into ${client.server}${opts.dryRun ? ' (dry run)' : ''}\n`);
        await installManifests(client, manifests, { dryRun: opts.dryRun, wait: opts.wait, timeoutMs: opts.timeout * 1000, progress: (line) => process.stdout.write(`${line}\n`) });
        process.stdout.write(opts.dryRun ? 'every object is valid\n' : `Jibe is installed${opts.wait ? ' and ready' : ''}; verify with: jibe check\n`);
      } finally {
        client.close();
      }
    });
}

export function parseBool(value: string): boolean {
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw new InvalidArgumentError(`expected true or false, got "${value}"`);
}

function parseSeconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`expected a number of seconds > 0, got "${value}"`);
  return n;
}
