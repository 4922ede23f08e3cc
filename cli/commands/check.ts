// `jibe check`: verifies a cluster before (--pre) and after installing Jibe; exits 1 when a check fails.
import type { Command } from 'commander';

export function registerCheck(program: Command): void {
  program
    .command('check')
    .description('check that a Kubernetes cluster is ready for Jibe (--pre) or that Jibe runs well in it')
    .option('--kubeconfig <file>', 'kubeconfig file (default KUBECONFIG, ~/.kube/config, in-cluster)')
    .option('--kube-context <name>', 'kubeconfig context (default: its current one)')
    .option('--manifests <dir>', 'manifest directory (default: the deploy/kubernetes shipped with this jibe)')
    .option('--pre', 'before installing: API, version, permission to install', false)
    .option('--skip-workloads', 'do not require the Deployments to be available', false)
    .action(async (opts) => {
      const { KubeClient } = await import('../../platforms/kubernetes/kube-client.ts');
      const { loadManifests } = await import('../../platforms/kubernetes/kube-manifests.ts');
      const { formatChecks, runChecks } = await import('../../platforms/kubernetes/kube-check.ts');
      const manifests = loadManifests(opts.manifests);
      const client = await KubeClient.load({ kubeconfig: opts.kubeconfig, context: opts.kubeContext });
      try {
        const results = await runChecks(client, manifests, { mode: opts.pre ? 'pre' : 'post', skipWorkloads: opts.skipWorkloads });
        process.stdout.write(formatChecks(results));
        if (results.some((r) => !r.ok)) process.exitCode = 1;
      } finally {
        client.close();
      }
    });
}
