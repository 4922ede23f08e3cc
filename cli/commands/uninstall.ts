// `jibe uninstall`: deletes what `jibe install` applied; CRDs (and the rules in them) stay unless --crds.
import type { Command } from 'commander';

export function registerUninstall(program: Command): void {
  program
    .command('uninstall')
    .description('remove Jibe from a Kubernetes cluster; its CRDs and rules stay unless --crds')
    .option('--kubeconfig <file>', 'kubeconfig file (default KUBECONFIG, ~/.kube/config, in-cluster)')
    .option('--kube-context <name>', 'kubeconfig context (default: its current one)')
    .option('--manifests <dir>', 'manifest directory (default: the deploy/kubernetes shipped with this jibe)')
    .option('--crds', 'also delete the CRDs, and with them every Jibe rule in the cluster', false)
    .action(async (opts) => {
      const { KubeClient } = await import('../../platforms/kubernetes/kube-client.ts');
      const { loadManifests } = await import('../../platforms/kubernetes/kube-manifests.ts');
      const { uninstallManifests } = await import('../../platforms/kubernetes/kube-install.ts');
      const manifests = loadManifests(opts.manifests);
      const client = await KubeClient.load({ kubeconfig: opts.kubeconfig, context: opts.kubeContext });
      try {
        process.stdout.write(`removing Jibe from ${client.server}\n`);
        await uninstallManifests(client, manifests, { crds: opts.crds, progress: (line) => process.stdout.write(`${line}\n`) });
        process.stdout.write('Jibe is removed\n');
      } finally {
        client.close();
      }
    });
}
