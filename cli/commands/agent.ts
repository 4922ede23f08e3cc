// `jibe agent join|status|leave`: the node agent that joins a VM to the mesh
// (agents/node). join runs in the foreground (systemd: deploy/vm/jibe-agent.service).
// `--registry consul` publishes the VM in the local Consul agent instead of the control plane's vm registry.
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { parseLabels, parsePort } from '../options.ts';
import { waitForSignal } from './control-plane.ts';

const DEFAULT_STATE_DIR = process.env.JIBE_AGENT_STATE_DIR ?? '/var/lib/jibe-agent';

/** `name:port[:targetPort][/portName]`; the port name follows Istio's naming (`tcp-echo`, `grpc`, `http-api`) and sets the protocol (default http). */
export function parseService(value: string, previous: Array<{ name: string; port: number; targetPort?: number; portName?: string }> = []) {
  const slash = value.indexOf('/');
  const portName = slash < 0 ? undefined : value.slice(slash + 1);
  const [name, port, targetPort, extra] = (slash < 0 ? value : value.slice(0, slash)).split(':');
  const p = Number(port);
  const t = targetPort === undefined ? undefined : Number(targetPort);
  if (!name || extra !== undefined || !Number.isInteger(p) || p < 1 || p > 65535 || (t !== undefined && (!Number.isInteger(t) || t < 1 || t > 65535))) {
    throw new InvalidArgumentError(`"${value}" is not name:port[:targetPort][/portName], e.g. reviews:9080 or echo:9000/tcp-echo`);
  }
  if (portName !== undefined && !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(portName)) {
    throw new InvalidArgumentError(`"${portName}" in "${value}" is not a port name like tcp-echo, http or grpc-api (its prefix is the protocol)`);
  }
  return [...previous, { name, port: p, ...(t === undefined ? {} : { targetPort: t }), ...(portName === undefined ? {} : { portName }) }];
}

function parseMs(value: string): number {
  const m = /^(\d+)(ms|s|m)?$/.exec(value);
  if (!m) throw new InvalidArgumentError(`"${value}" is not a duration (e.g. 500ms, 5s, 1m)`);
  return Number(m[1]) * (m[2] === 'm' ? 60_000 : m[2] === 's' || m[2] === undefined ? 1000 : 1);
}

function parseRegistry(value: string): 'vm' | 'consul' {
  if (value !== 'vm' && value !== 'consul') throw new InvalidArgumentError(`"${value}" is not a registry: vm or consul`);
  return value;
}

export function registerAgent(program: Command): void {
  const agent = program.command('agent').description('the node agent: join this VM to the mesh, show its state, leave');
  agent
    .command('join')
    .description('join this VM: verify the control plane, get a certificate, install capture, start the proxy, register, report health')
    .option('--token <token>', 'join token from `jibe vm token create` (or env JIBE_JOIN_TOKEN; not needed to resume)', process.env.JIBE_JOIN_TOKEN)
    .option('--service <name:port[:targetPort][/portName]>', 'a service this VM serves (repeatable); /portName names the port Istio-style, e.g. echo:9000/tcp-echo for TCP', parseService, [])
    .option('--labels <k=v,...>', 'labels of this workload, e.g. version=v3', parseLabels, {})
    .option('--name <name>', 'workload name (default: the host name)')
    .option('--address <ip>', 'address peers dial (default: the default-route interface\'s IPv4)')
    .option('--health <url>', 'HTTP health check of the app, e.g. http://127.0.0.1:9080/health')
    .option('--health-interval <duration>', 'between health checks', parseMs, 5000)
    .option('--health-timeout <duration>', 'a check slower than this fails', parseMs, 2000)
    .option('--health-failures <n>', 'consecutive failures before the VM leaves the endpoints', (v) => parsePort(v), 3)
    .option('--heartbeat <duration>', 'how often health is re-reported (and a lost registration noticed)', parseMs, 10_000)
    .option('--state-dir <dir>', 'where the agent keeps its key, certificate and state', DEFAULT_STATE_DIR)
    .option('--registry <registry>', 'where the workload is registered: vm (the control plane\'s own) or consul (the local Consul agent, whose check then judges health); default: vm, or what a resumed agent joined with', parseRegistry)
    .option('--consul-address <url>', 'with --registry consul: the Consul agent\'s HTTP API (default CONSUL_HTTP_ADDR, else http://127.0.0.1:8500)')
    .option('--consul-token-file <file>', 'with --registry consul: a file holding the Consul ACL token (default CONSUL_HTTP_TOKEN)')
    .option('--discovery-port <port>', 'the control plane\'s discovery TLS port (default: told at registration with the vm registry, else 15012)', parsePort)
    .option('--no-capture', 'do not install iptables capture (then the agent need not run as root)')
    .option('--no-proxy', 'do not start the sidecar (registration and health only)')
    .option('--proxy-uid <uid>', 'the proxy\'s user: exempt from capture; the agent continues as it after capture', (v) => parsePort(v), 1337)
    .option('--proxy-gid <gid>', 'the proxy\'s group (default: the uid)', (v) => parsePort(v))
    .option('--keep-root', 'do not drop root after installing capture')
    .action(async (opts) => {
      const { NodeAgent } = await import('../../agents/node/node-agent.ts');
      const log = (m: string) => process.stdout.write(`${new Date().toISOString()} ${m}\n`);
      if ((opts.consulAddress !== undefined || opts.consulTokenFile !== undefined) && opts.registry !== 'consul') {
        const { JibeError } = await import('../../core/errors/errors.ts');
        throw new JibeError('JIBE_ERR_AGENT', '--consul-address and --consul-token-file only apply with --registry consul', { hint: 'add --registry consul, or drop them' });
      }
      const running = await NodeAgent.join({
        token: opts.token,
        stateDir: opts.stateDir,
        services: opts.service,
        labels: opts.labels,
        name: opts.name,
        address: opts.address,
        health: opts.health ? { url: opts.health, intervalMs: opts.healthInterval, timeoutMs: opts.healthTimeout, failureThreshold: opts.healthFailures } : undefined,
        heartbeatMs: opts.heartbeat,
        registry: opts.registry === 'consul' ? { kind: 'consul', address: opts.consulAddress, tokenFile: opts.consulTokenFile } : opts.registry === 'vm' ? { kind: 'vm' } : undefined,
        discoveryTlsPort: opts.discoveryPort,
        capture: opts.capture,
        proxy: opts.proxy,
        proxyUid: opts.proxyUid,
        proxyGid: opts.proxyGid ?? opts.proxyUid,
        dropPrivileges: !opts.keepRoot,
        jibeEntry: process.argv[1],
        log,
      });
      log('agent running; stop with SIGTERM (systemctl stop jibe-agent), leave with `jibe agent leave`');
      await waitForSignal();
      await running.stop();
      log('agent stopped (capture and registration kept; the workload is reported unhealthy)');
    });
  agent
    .command('status')
    .description('identity, certificate expiry, capture, proxy and registration of this VM')
    .option('--state-dir <dir>', 'the agent\'s state directory', DEFAULT_STATE_DIR)
    .option('-o, --output <format>', 'text or json', 'text')
    .action(async (opts) => {
      const { agentStatus, formatAgentStatus } = await import('../../agents/node/agent-leave.ts');
      const report = await agentStatus(opts.stateDir);
      process.stdout.write(opts.output === 'json' ? JSON.stringify(report, null, 2) + '\n' : formatAgentStatus(report));
      if (!report.joined) process.exitCode = 1;
    });
  agent
    .command('leave')
    .description('deregister this VM, stop its proxy and remove every capture rule the agent added; with the control plane down, leaves locally, prints the one manual step left and exits 1')
    .option('--state-dir <dir>', 'the agent\'s state directory', DEFAULT_STATE_DIR)
    .action(async (opts) => {
      const { formatLeaveResult, leave } = await import('../../agents/node/agent-leave.ts');
      const result = await leave(opts.stateDir, { log: (m) => process.stdout.write(`${m}\n`) });
      const out = formatLeaveResult(result);
      process.stdout.write(out.stdout);
      process.stderr.write(out.stderr);
      // Local cleanup is complete either way; 1 says a manual step remains on the control plane.
      if (result.deregisterError) process.exitCode = 1;
    });
}
