// `jibe capture apply|status|remove`: the node agent's traffic capture as a
// command of its own, for the Kubernetes init container (which runs it as
// root inside the pod's network namespace and exits) and for operators.
import type { Command } from 'commander';
import { parsePort } from '../options.ts';

function ports(value: string): '*' | number[] {
  if (value.trim() === '*') return '*';
  return value.split(',').map((s) => s.trim()).filter(Boolean).map((s) => parsePort(s));
}

function portList(value: string): number[] {
  const p = ports(value);
  if (p === '*') throw new Error('"*" is not allowed here; list ports');
  return p;
}

function withCaptureOptions(cmd: Command): Command {
  return cmd
    .option('--proxy-uid <uid>', 'the proxy runs as this user; its own traffic is not captured', (v) => parsePort(v), 1337)
    .option('--proxy-gid <gid>', 'the proxy\'s group', (v) => parsePort(v), 1337)
    .option('--inbound-port <port>', 'where captured inbound TCP goes', parsePort, 15006)
    .option('--outbound-port <port>', 'where captured outbound TCP goes', parsePort, 15001)
    .option('--include-inbound-ports <list>', 'inbound ports to capture, or "*"', ports, '*' as const)
    .option('--exclude-inbound-ports <list>', 'inbound ports never captured', portList, [15021, 15090])
    .option('--exclude-outbound-ports <list>', 'outbound ports never captured', portList, [])
    .option('--exclude-outbound-cidrs <list>', 'outbound destinations never captured', (v: string) => v.split(',').map((s) => s.trim()).filter(Boolean), [])
    .option('--ipv6', 'also install the rules with ip6tables', false);
}

export function registerCapture(program: Command): void {
  const capture = program.command('capture').description('install, check or remove iptables traffic capture for a sidecar (the Kubernetes init container runs "capture apply")');
  const options = (opts: Record<string, unknown>) => ({
    proxyUid: opts.proxyUid as number,
    proxyGid: opts.proxyGid as number,
    inboundPort: opts.inboundPort as number,
    outboundPort: opts.outboundPort as number,
    includeInboundPorts: opts.includeInboundPorts as '*' | number[],
    excludeInboundPorts: opts.excludeInboundPorts as number[],
    excludeOutboundPorts: opts.excludeOutboundPorts as number[],
    excludeOutboundCidrs: opts.excludeOutboundCidrs as string[],
    ipv6: opts.ipv6 === true,
  });
  withCaptureOptions(capture.command('apply').description('install capture idempotently'))
    .option('--dry-run', 'print the rules instead of installing them', false)
    .action(async (opts) => {
      if (opts.dryRun) {
        const { buildCaptureRules, renderDryRun } = await import('../../agents/capture/capture-rules.ts');
        process.stdout.write(renderDryRun(buildCaptureRules(options(opts))) + '\n');
        return;
      }
      const { applyCapture } = await import('../../agents/capture/capture-apply.ts');
      const result = await applyCapture(options(opts));
      process.stdout.write(result.changed ? `capture installed (${result.changedFamilies.join(', ')})\n` : 'capture already in place\n');
    });
  withCaptureOptions(capture.command('status').description('say whether capture is installed as configured')).action(async (opts) => {
    const { captureStatus } = await import('../../agents/capture/capture-apply.ts');
    const status = await captureStatus(options(opts));
    process.stdout.write(`${status.state}\n`);
    if (status.state !== 'installed') process.exitCode = 1;
  });
  capture.command('remove').description('remove every Jibe capture rule').action(async () => {
    const { removeCapture } = await import('../../agents/capture/capture-apply.ts');
    const result = await removeCapture();
    process.stdout.write(result.removedFamilies.length ? `removed (${result.removedFamilies.join(', ')})\n` : 'nothing to remove\n');
  });
}
