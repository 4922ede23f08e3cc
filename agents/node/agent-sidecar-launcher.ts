// The sidecar's process, started before the agent knows the sidecar's
// arguments. Joining a VM needs the discovery port, which the control plane
// names when the workload registers; starting Node and loading the proxy's
// modules takes about as long as the whole join before that (≈1.2 s of the
// ≈3 s from `jibe agent join` to traffic, measured by test/bench/vm-join).
// So the agent starts this first: it loads the proxy while the agent proves
// the control plane, gets the certificate, installs capture and registers;
// then it receives its argv over IPC and runs `jibe proxy` exactly as the
// command line would (the CLI's lazy import of the proxy hits the module cache).
//
//   node <proxy node flags> agent-sidecar-launcher.ts <jibe entry>
//   ← IPC {args: ['proxy', …]}
// An agent that goes away before sending (a refused join) closes the channel,
// and the launcher exits.
import path from 'node:path';
import { pathToFileURL } from 'node:url';

export interface LaunchMessage {
  args: string[];
}

const entry = process.argv[2];
if (!entry || !process.send) {
  process.stderr.write('agent-sidecar-launcher: started without a jibe entry point or an IPC channel; the node agent starts it\n');
  process.exit(2);
}
// The layout is the repository's (cli/jibe.*, proxy/proxy.*), in sources and in a build alike.
const proxyModule = path.join(path.dirname(entry), '..', 'proxy', `proxy${path.extname(entry)}`);
// A failed warm-up only loses the head start: the CLI imports the module itself and reports any error.
const warming = import(pathToFileURL(proxyModule).href).catch(() => undefined);
let launched = false;

process.once('message', (message: LaunchMessage) => {
  launched = true;
  void warming.then(async () => {
    process.argv = [process.argv[0], entry, ...message.args];
    // From here on the sidecar owes the agent nothing but its exit status; signals stop it as usual.
    process.disconnect();
    await import(pathToFileURL(entry).href);
  });
});
process.once('disconnect', () => {
  if (!launched) process.exit(0);
});
