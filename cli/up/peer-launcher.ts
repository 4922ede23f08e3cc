// Runs a peer binary (Consul, etcd, kube-apiserver) for `jibe up` under the
// process supervisor, which starts Node processes: `node peer-launcher.ts
// <binary> <args…>`. The launcher forwards SIGTERM/SIGINT to the binary and
// exits with it, and stops it when `jibe up` goes away (its stdin closes), so
// no peer outlives the mesh.
import { spawn } from 'node:child_process';
import { exitWithParent } from './process-supervisor.ts';

const [binary, ...args] = process.argv.slice(2);
if (!binary) {
  process.stderr.write('usage: peer-launcher <binary> [args…]\n');
  process.exit(2);
}
const child = spawn(binary, args, { stdio: ['ignore', 'inherit', 'inherit'] });
const stop = () => {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
exitWithParent();
child.on('error', (err) => {
  process.stderr.write(`cannot run ${binary}: ${err.message}\n`);
  process.exit(127);
});
child.on('exit', (code, signal) => process.exit(code ?? (signal === 'SIGTERM' ? 0 : 1)));
