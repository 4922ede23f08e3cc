#!/usr/bin/env node
// The `jibe` command. Each command lives in cli/commands/ and loads its heavy
// modules lazily, so `jibe proxy` never pulls in a platform client.
import { Command, CommanderError } from 'commander';
import { isJibeError } from '../core/errors/errors.ts';
import { registerAgent } from './commands/agent.ts';
import { registerAnalyze } from './commands/analyze.ts';
import { registerApply } from './commands/apply.ts';
import { registerCapture } from './commands/capture.ts';
import { registerCheck } from './commands/check.ts';
import { registerConsul } from './commands/consul.ts';
import { registerControlPlane } from './commands/control-plane.ts';
import { registerCredential } from './commands/credential.ts';
import { registerDelete } from './commands/delete.ts';
import { registerGet } from './commands/get.ts';
import { registerInstall } from './commands/install.ts';
import { registerKubeInject } from './commands/kube-inject.ts';
import { registerProxy } from './commands/proxy.ts';
import { registerProxyStatus } from './commands/proxy-status.ts';
import { registerUninstall } from './commands/uninstall.ts';
import { registerStat } from './commands/stat.ts';
import { registerTop } from './commands/top.ts';
import { registerUp } from './commands/up.ts';
import { registerVm } from './commands/vm.ts';
import { registerWorkload } from './commands/workload.ts';
import { exitWithParent } from './up/process-supervisor.ts';

const stopWatchingParent = exitWithParent();

const program = new Command('jibe')
  .description('Jibe: one service mesh for Kubernetes, Consul and bare VMs')
  .version('0.1.0')
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride();

registerUp(program);
registerApply(program);
registerGet(program);
registerDelete(program);
registerProxyStatus(program);
registerAnalyze(program);
registerStat(program);
registerTop(program);
registerWorkload(program);
registerControlPlane(program);
registerConsul(program);
registerProxy(program);
registerVm(program);
registerCredential(program);
registerAgent(program);
registerKubeInject(program);
registerCapture(program);
registerInstall(program);
registerUninstall(program);
registerCheck(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode;
  } else if (isJibeError(err)) {
    process.stderr.write(`error: ${err.format()}\n`);
    process.exitCode = 1;
  } else {
    process.stderr.write(`error: ${(err as Error).message}\n`);
    if (process.env.JIBE_DEBUG) process.stderr.write(`${(err as Error).stack}\n`);
    process.exitCode = 1;
  }
} finally {
  stopWatchingParent();
}
