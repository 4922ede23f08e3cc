// "VMs" for tests and benchmarks: network namespaces on one LAN with the host,
// where the control plane runs in the calling process.
//
// The LAN is a bridge in a namespace of its own, so VMs reach each other and
// the host at layer 2: no forwarding, no host bridge, nothing the host's own
// firewall sees. Each caller passes its own /24 (a documentation or benchmark
// range), so files running side by side never share an address.
//
// Name resolution: `ip netns exec` bind-mounts /etc/netns/<ns>/hosts over
// /etc/hosts for whatever it runs (iproute2's convention for namespace-unaware
// programs), so an unmodified app in a VM resolves `ratings` with its usual
// resolver, as it would through DNS on a real VM.
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { registerPlugins } from '../../../cli/plugins.ts';
import { readAdminToken } from '../../../core/api/admin-token.ts';
import { parseDocuments } from '../../../core/config/load-documents.ts';
import type { RunningControlPlane } from '../../../core/control-plane.ts';
import { DEFAULT_MESH_SETTINGS } from '../../../core/mesh/mesh-snapshot.ts';
import type { Workload } from '../../../core/model/workload.ts';
import { startTestControlPlane } from '../../helpers/control-plane.ts';
import { netnsEnvironmentProblem } from '../capture/netns-environment.ts';

export const run = promisify(execFile);
const REPO = path.resolve(import.meta.dirname, '../../..');
export const JIBE = path.join(REPO, 'cli/jibe.ts');
const NEEDED = ['ip', 'iptables', 'iptables-save', 'iptables-restore', 'nft', 'curl', 'tcpdump'];

/** Registers cleanup, run in reverse order (a test's `t.after`, or a bench's own list). */
export type Defer = (fn: () => unknown) => void;

/** Why the netns VMs cannot run here, or undefined. */
export function vmEnvironmentProblem(): string | undefined {
  return netnsEnvironmentProblem(NEEDED, 'Debian: apt-get install iptables iproute2 nftables curl tcpdump; or node test/peers/install.ts iptables iproute2 tcpdump');
}

export interface Lan {
  /** e.g. `203.0.113`: the host is .1, VM n is .(n+1). */
  prefix: string;
  hostAddress: string;
  ns: string;
  tag: string;
}

/** A bridge in its own namespace, linked to the host (address `<prefix>.1/24`). */
export async function startLan(defer: Defer, prefix: string): Promise<Lan> {
  const tag = randomBytes(3).toString('hex');
  const ns = `jibe-lan-${tag}`;
  await run('ip', ['netns', 'add', ns]);
  defer(() => run('ip', ['netns', 'del', ns]).then(() => undefined, () => undefined));
  await run('ip', ['-n', ns, 'link', 'add', 'br0', 'type', 'bridge']);
  await run('ip', ['-n', ns, 'link', 'set', 'br0', 'up']);
  const hostIf = `jl${tag}`;
  await run('ip', ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', 'up0', 'netns', ns]);
  defer(() => run('ip', ['link', 'del', hostIf]).then(() => undefined, () => undefined));
  await run('ip', ['-n', ns, 'link', 'set', 'up0', 'master', 'br0', 'up']);
  const hostAddress = `${prefix}.1`;
  await run('ip', ['addr', 'add', `${hostAddress}/24`, 'dev', hostIf]);
  await run('ip', ['link', 'set', hostIf, 'up']);
  return { prefix, hostAddress, ns, tag };
}

export interface Mesh {
  cp: RunningControlPlane;
  /** Loopback HTTP API (admin). */
  api: string;
  admin: string;
  dataDir: string;
}

/** The control plane on the host; its TLS API and TLS discovery on the host's LAN address. */
export async function startMesh(defer: Defer, lan: Lan, options: { logLevel?: string } = {}): Promise<Mesh> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'jibe-vm-cp-'));
  const cp = await startTestControlPlane({
    container: registerPlugins(), dataDir, settings: DEFAULT_MESH_SETTINGS, host: '127.0.0.1', discoveryPort: 0, discoveryTlsPort: 0,
    apiPort: 0, apiTlsPort: 0, apiTlsHost: lan.hostAddress, configStore: 'file', stateStore: 'file', platforms: ['vm'], logger: pino({ level: options.logLevel ?? 'silent' }),
  });
  defer(async () => {
    await cp.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });
  return { cp, api: `http://127.0.0.1:${cp.ports.api}`, admin: await readAdminToken(dataDir), dataDir };
}

export interface Vm {
  ns: string;
  address: string;
  /** This VM's port on the LAN bridge (in the LAN's namespace). */
  lanPort: string;
  /** A world-readable scratch directory of this VM (its agent's state dir is `stateDir` inside). */
  dir: string;
  stateDir: string;
  /** Touch to make the app's health check fail. */
  failFlag: string;
  save(): Promise<string>;
  /** Runs a command in the VM; never throws, the result says how it ended. */
  exec(command: string, args: string[], options?: { timeoutMs?: number }): Promise<{ code: number | null; stdout: string; stderr: string }>;
  jibe(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }>;
}

export interface VmOptions {
  /** `/etc/hosts` lines of this VM: name → address. */
  hosts?: Record<string, string>;
  /**
   * The app (a Node script run in the VM, as root, unmodified by the mesh). It must print `ready`
   * once it listens; `JIBE_FAIL_FLAG` in its environment names the file that makes its health fail.
   */
  app?: string;
}

/**
 * An HTTP app on 9080: `/health` fails while the flag file exists; anything else answers the VM's name, the
 * path and the peer address it saw (127.0.0.1 when its sidecar delivered the request, the caller's otherwise).
 */
export const HTTP_APP = `
const fs = require('node:fs');
require('node:http').createServer((q, s) => {
  if (q.url === '/health') return s.writeHead(fs.existsSync(process.env.JIBE_FAIL_FLAG) ? 503 : 200).end();
  s.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ vm: process.env.JIBE_VM, path: q.url, from: q.socket.remoteAddress }));
}).listen(9080, '0.0.0.0', () => console.log('ready'));
`;

/** HTTP_APP plus a TCP echo server on 9000 that prefixes what it echoes, so a reply proves who answered. */
export const HTTP_AND_ECHO_APP = `${HTTP_APP}
require('node:net').createServer((c) => { c.write('echo ' + process.env.JIBE_VM + ': '); c.pipe(c); }).listen(9000, '0.0.0.0');
`;

/** A namespace on the LAN at `<prefix>.<index+1>`, running `options.app` if given. */
export async function startVm(defer: Defer, lan: Lan, index: number, options: VmOptions = {}): Promise<Vm> {
  const ns = `jibe-vm-${lan.tag}-${index}`;
  const address = `${lan.prefix}.${index + 1}`;
  if (options.hosts) {
    const etc = `/etc/netns/${ns}`;
    fs.mkdirSync(etc, { recursive: true });
    fs.writeFileSync(path.join(etc, 'hosts'), `127.0.0.1 localhost\n${Object.entries(options.hosts).map(([n, a]) => `${a} ${n}`).join('\n')}\n`);
    defer(() => fs.rmSync(etc, { recursive: true, force: true }));
  }
  await run('ip', ['netns', 'add', ns]);
  defer(() => run('ip', ['netns', 'del', ns]).then(() => undefined, () => undefined));
  await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  await run('ip', ['link', 'add', `v${index}`, 'netns', lan.ns, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
  await run('ip', ['-n', lan.ns, 'link', 'set', `v${index}`, 'master', 'br0', 'up']);
  await run('ip', ['-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
  await run('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jibe-vm-'));
  fs.chmodSync(dir, 0o755);
  defer(() => fs.rmSync(dir, { recursive: true, force: true }));
  const failFlag = path.join(dir, 'unhealthy');
  // No proxy settings anywhere: the app is what it would be without a mesh.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(https?|no|all)_proxy$/i.test(k)));
  if (options.app) {
    const app: ChildProcess = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', options.app], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...env, JIBE_FAIL_FLAG: failFlag, JIBE_VM: ns },
    });
    defer(() => void app.kill());
    await new Promise<void>((resolve, reject) => {
      app.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
      app.once('exit', (code) => reject(new Error(`app in ${ns} exited with ${code}`)));
    });
  }
  const exec = (command: string, args: string[], o: { timeoutMs?: number } = {}) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn('ip', ['netns', 'exec', ns, command, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
      let stdout = '';
      let stderr = '';
      const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 60_000);
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('exit', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    });
  return {
    ns, address, lanPort: `v${index}`, dir, stateDir: path.join(dir, 'state'), failFlag,
    save: async () => (await run('ip', ['netns', 'exec', ns, 'iptables-save'])).stdout,
    exec,
    jibe: (args) => exec(process.execPath, [JIBE, ...args]),
  };
}

/** `curl` in the VM: plain HTTP, no proxy settings; status and body. */
export async function curl(vm: Vm, url: string): Promise<{ status: number; body: string }> {
  const r = await vm.exec('curl', ['-sS', '--max-time', '10', '-w', '\n%{http_code}', url]);
  const lines = r.stdout.split('\n');
  return { status: Number(lines.pop()), body: lines.join('\n') };
}

/** The Istio metrics of the sidecar in `vm` (its admin port serves them too). */
export async function metrics(vm: Vm): Promise<string[]> {
  return (await vm.exec('curl', ['-sS', '--max-time', '5', 'http://127.0.0.1:15000/stats/prometheus'])).stdout.split('\n');
}

/** The sum of a Prometheus series' samples over the lines whose labels include all of `labels`. */
export function series(lines: string[], name: string, labels: Record<string, string>): number {
  let total = 0;
  for (const l of lines) {
    if (!l.startsWith(`${name}{`)) continue;
    if (Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`))) total += Number(l.slice(l.lastIndexOf(' ') + 1));
  }
  return total;
}

export async function mint(mesh: Mesh, body: Record<string, unknown>): Promise<string> {
  const res = await fetch(`${mesh.api}/api/v1/vm/tokens`, { method: 'POST', headers: { authorization: `Bearer ${mesh.admin}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const json = (await res.json()) as { token: string };
  if (res.status !== 200) throw new Error(`minting a join token: HTTP ${res.status} ${JSON.stringify(json)}`);
  return json.token;
}

export async function workloads(mesh: Mesh): Promise<Workload[]> {
  return ((await (await fetch(`${mesh.api}/api/v1/workloads`)).json()) as { workloads: Workload[] }).workloads;
}

/** Applies rules (YAML text) through the control plane's API. */
export async function applyRules(mesh: Mesh, yaml: string): Promise<void> {
  const res = await fetch(`${mesh.api}/api/v1/config/apply`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ documents: parseDocuments(yaml) }) });
  if (res.status !== 200) throw new Error(`applying rules: HTTP ${res.status} ${await res.text()}`);
}

export interface JoinedAgent {
  child: ChildProcess;
  output(): string;
  /** Resolves with the exit code once `jibe agent join` exits. */
  exited: Promise<number | null>;
}

/** `jibe agent join` running in the VM (stopped by `leave` or at cleanup). */
export function joinVm(defer: Defer, vm: Vm, token: string, args: string[]): JoinedAgent {
  let output = '';
  const child = spawn('ip', ['netns', 'exec', vm.ns, process.execPath, JIBE, 'agent', 'join', '--token', token, '--state-dir', vm.stateDir, '--address', vm.address, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  defer(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
  });
  return { child, output: () => output + (fs.existsSync(path.join(vm.stateDir, 'proxy.log')) ? `\n--- proxy.log\n${fs.readFileSync(path.join(vm.stateDir, 'proxy.log'), 'utf8').slice(-4000)}` : ''), exited };
}

export interface WireCapture {
  /** Stops capturing; the packets' payloads as tcpdump prints them (-A), and how many packets there were. */
  stop(): Promise<{ text: string; packets: number }>;
}

/**
 * tcpdump on `vm`'s port of the LAN bridge, for its traffic with `peer` (capturing when this resolves). On a
 * bridge port, not the bridge: br0 itself sees only frames flooded or addressed to it, not those it forwards.
 * Immediate mode: otherwise packets wait in the kernel's ring for a block timeout, and a stop within it loses them.
 */
export async function captureWire(defer: Defer, lan: Lan, vm: Vm, peer: string, dir: string): Promise<WireCapture> {
  const file = path.join(dir, `wire-${randomBytes(3).toString('hex')}.pcap`);
  const child = spawn('ip', ['netns', 'exec', lan.ns, 'tcpdump', '-i', vm.lanPort, '--immediate-mode', '-U', '-n', '-w', file, `host ${vm.address} and host ${peer}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  defer(() => {
    child.kill('SIGINT');
    return exited;
  });
  await new Promise<void>((resolve, reject) => {
    let err = '';
    child.stderr!.on('data', (d: Buffer) => {
      err += d;
      if (err.includes('listening on')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`tcpdump exited with ${code}: ${err}`)));
  });
  return {
    async stop() {
      child.kill('SIGINT');
      await exited;
      const { stdout } = await run('tcpdump', ['-r', file, '-n', '-A'], { maxBuffer: 64 * 1024 * 1024 });
      const packets = stdout.split('\n').filter((l) => /^\d\d:\d\d:\d\d\.\d+ IP /.test(l)).length;
      return { text: stdout, packets };
    },
  };
}
