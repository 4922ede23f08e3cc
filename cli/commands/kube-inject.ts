// `jibe kube-inject -f app.yaml`: adds the Jibe sidecar to every pod template
// of a manifest, offline (no cluster needed), as `istioctl kube-inject` does.
import type { Command } from 'commander';

export function registerKubeInject(program: Command): void {
  program
    .command('kube-inject')
    .description('add the Jibe sidecar and capture init container to every pod template in a Kubernetes manifest (offline)')
    .requiredOption('-f, --filename <file>', 'manifest to read ("-" for standard input)')
    .option('-o, --output <file>', 'write the result here instead of standard output')
    .option('--image <image>', 'Jibe image for the proxy and init containers', 'jibe/jibe:0.1.0')
    .option('--discovery-address <host:port>', 'control plane discovery address the sidecars dial (15012: TLS)', 'jibe-control-plane.jibe-system.svc:15012')
    .option('--api-address <url>', 'control plane TLS API where sidecars trade their service-account token for a certificate (verified with the jibe-ca-root-cert ConfigMap)', 'https://jibe-control-plane.jibe-system.svc:15015')
    .action(async (opts) => {
      const { readFile, writeFile } = await import('node:fs/promises');
      const { JibeError } = await import('../../core/errors/errors.ts');
      const { injectManifest } = await import('../../platforms/kubernetes/inject-manifest.ts');
      const file = String(opts.filename);
      let text: string;
      try {
        text = file === '-' ? await readStdin() : await readFile(file, 'utf8');
      } catch (err) {
        throw new JibeError('JIBE_ERR_FILE_READ', `cannot read ${file}: ${(err as Error).message}`, { file, hint: 'check the path given to -f' });
      }
      const result = injectManifest(text, { image: opts.image, discoveryAddress: opts.discoveryAddress, apiAddress: opts.apiAddress, imagePullPolicy: 'IfNotPresent' }, file === '-' ? undefined : file);
      if (opts.output) await writeFile(opts.output, result.yaml);
      else process.stdout.write(result.yaml);
      process.stderr.write(result.injected.length ? `injected: ${result.injected.join(', ')}\n` : 'no pod template needed a sidecar\n');
    });
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString();
}
