// The capture path end to end with REAL iptables REDIRECT in a throw-away
// network namespace: an app connects to addresses:ports (IPv4 and IPv6 ULA
// addresses assigned inside the namespace), the kernel redirects to the
// proxy's capture ports, the proxy recovers the original destination with
// SO_ORIGINAL_DST and forwards to the right cluster, passes through to the
// original destination (ALLOW_ANY) or refuses (REGISTRY_ONLY). The proxy runs
// as uid 1337 (excluded from capture, as in production); run as root instead,
// its own relays are captured back to it and the loop guard must refuse them.
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { applyCapture } from '../../../agents/capture/capture-apply.ts';
import type { ProxyResource } from '../../../core/model/proxy-config.ts';
import { defineUnlessProblem, netnsEnvironmentProblem } from '../capture/netns-environment.ts';

const run = promisify(execFile);
const NEEDED = ['ip', 'iptables', 'iptables-save', 'iptables-restore', 'ip6tables-save', 'ip6tables-restore', 'setpriv'];
const RUNNER = fileURLToPath(new URL('./run-capture-proxy.ts', import.meta.url));

defineUnlessProblem('tcp capture integration: real iptables REDIRECT in a network namespace', netnsEnvironmentProblem(NEEDED, 'Debian: apt-get install iptables iproute2 util-linux'), defineTests);

const V4 = '192.0.2.1';
const V6 = 'fd00:a::1';

async function namespace(t: TestContext): Promise<string> {
  const ns = `jibe-tcp-${randomBytes(4).toString('hex')}`;
  await run('ip', ['netns', 'add', ns]);
  t.after(() => run('ip', ['netns', 'del', ns]).then(() => undefined));
  await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  // A veth whose far end stays in the namespace too: non-loopback addresses for the app to call.
  await run('ip', ['-n', ns, 'link', 'add', 'veth-a', 'type', 'veth', 'peer', 'name', 'veth-b']);
  await run('ip', ['-n', ns, 'addr', 'add', `${V4}/24`, 'dev', 'veth-a']);
  await run('ip', ['-n', ns, 'addr', 'add', `${V6}/64`, 'dev', 'veth-a', 'nodad']);
  await run('ip', ['-n', ns, 'link', 'set', 'veth-a', 'up']);
  await run('ip', ['-n', ns, 'link', 'set', 'veth-b', 'up']);
  return ns;
}

// Servers answering with their name on each port, on every address of the namespace.
const SERVER = `
const net = require('node:net');
const names = JSON.parse(process.argv[1]);
let ready = 0;
for (const [port, name] of Object.entries(names)) {
  net.createServer((s) => { s.on('error', () => {}); s.end(name); }).listen({ port: Number(port), host: '::', ipv6Only: false }, () => { if (++ready === Object.keys(names).length) console.log('ready'); });
}`;

const CLIENT = `
const s = require('node:net').connect(Number(process.argv[2]), process.argv[1]);
let data = '';
s.setTimeout(5000, () => { console.log('timeout'); process.exit(0); });
s.on('data', (d) => (data += d));
s.on('close', () => console.log(data === '' ? 'closed' : data));
s.on('error', () => {});`;

function started(child: ChildProcess, what: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready')) resolve(out);
    });
    child.on('exit', (code) => reject(new Error(`${what} exited with ${code}: ${out}`)));
  });
}

async function servers(t: TestContext, ns: string, names: Record<number, string>): Promise<void> {
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', SERVER, JSON.stringify(names)], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => { child.kill(); });
  await started(child, 'test servers');
}

async function proxy(t: TestContext, ns: string, resources: ProxyResource[], asUid: number | undefined): Promise<ChildProcess> {
  const prefix = asUid === undefined ? [] : ['setpriv', `--reuid=${asUid}`, `--regid=${asUid}`, '--clear-groups'];
  const child = spawn('ip', ['netns', 'exec', ns, ...prefix, process.execPath, RUNNER, JSON.stringify(resources)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  t.after(async () => {
    child.stdin!.end();
    await exited;
  });
  await started(child, 'proxy');
  return child;
}

async function stats(child: ChildProcess): Promise<Record<string, number>> {
  return new Promise((resolve) => {
    const onData = (d: Buffer): void => {
      const line = d.toString().split('\n').find((l) => l.startsWith('stats '));
      if (line === undefined) return;
      child.stdout!.removeListener('data', onData);
      resolve(JSON.parse(line.slice(6)));
    };
    child.stdout!.on('data', onData);
    child.stdin!.write('stats\n');
  });
}

async function connect(ns: string, host: string, port: number): Promise<string> {
  const { stdout } = await run('ip', ['netns', 'exec', ns, process.execPath, '-e', CLIENT, host, String(port)], { timeout: 20_000 });
  return stdout.trim();
}

function config(policy: 'ALLOW_ANY' | 'REGISTRY_ONLY'): ProxyResource[] {
  const endpoints = (name: string, address: string, port: number): ProxyResource[] => [
    { type: 'cluster', name, service: `${name}.default.svc.cluster.local`, port, lbPolicy: 'ROUND_ROBIN', protocol: 'tcp' },
    { type: 'endpoints', name, endpoints: [{ address, port, healthy: true }] },
  ];
  return [
    { type: 'mesh', name: 'mesh', outboundTrafficPolicy: policy },
    ...endpoints('outbound|5432||db.default.svc.cluster.local', V4, 7001),
    ...endpoints('outbound|5432||db6.default.svc.cluster.local', V6, 7003),
    { type: 'listener', name: `${V4}_5432`, direction: 'outbound', address: '0.0.0.0', port: 5432, protocol: 'tcp', destinationAddresses: [V4], tcpRoute: { clusters: [{ cluster: 'outbound|5432||db.default.svc.cluster.local', weight: 100 }] } },
    { type: 'listener', name: `${V6}_5432`, direction: 'outbound', address: '0.0.0.0', port: 5432, protocol: 'tcp', destinationAddresses: [V6], tcpRoute: { clusters: [{ cluster: 'outbound|5432||db6.default.svc.cluster.local', weight: 100 }] } },
  ];
}

function defineTests(): void {
  test('outbound capture: original destination (IPv4 and IPv6) picks the cluster; unknown destinations pass through under ALLOW_ANY', async (t) => {
    const ns = await namespace(t);
    await servers(t, ns, { 7001: 'db-v4', 7002: 'direct', 7003: 'db-v6', 5432: 'not-the-proxy' });
    await applyCapture({ ipv6: true }, { netns: ns });
    const p = await proxy(t, ns, config('ALLOW_ANY'), 1337);

    assert.equal(await connect(ns, V4, 5432), 'db-v4', 'IPv4 virtual listener → its cluster');
    assert.equal(await connect(ns, V6, 5432), 'db-v6', 'IPv6 virtual listener → its cluster');
    assert.equal(await connect(ns, V4, 7002), 'direct', 'IPv4 passthrough to the original destination');
    assert.equal(await connect(ns, V6, 7002), 'direct', 'IPv6 passthrough to the original destination');
    assert.equal(await connect(ns, '127.0.0.1', 5432), 'not-the-proxy', 'loopback is not captured');
    assert.deepEqual(await stats(p), { loop: 0, blackhole: 0, passthrough: 2 });
  });

  test('outbound capture under REGISTRY_ONLY refuses unknown destinations and still serves known ones', async (t) => {
    const ns = await namespace(t);
    await servers(t, ns, { 7001: 'db-v4', 7002: 'direct', 7003: 'db-v6' });
    await applyCapture({ ipv6: true }, { netns: ns });
    const p = await proxy(t, ns, config('REGISTRY_ONLY'), 1337);

    assert.equal(await connect(ns, V4, 7002), 'closed');
    assert.equal(await connect(ns, V6, 7002), 'closed');
    assert.equal(await connect(ns, V4, 5432), 'db-v4');
    assert.deepEqual(await stats(p), { loop: 0, blackhole: 2, passthrough: 0 });
  });

  test('a proxy whose own traffic is captured refuses the looped connection instead of relaying forever', async (t) => {
    const ns = await namespace(t);
    await servers(t, ns, { 7002: 'direct' });
    await applyCapture({ ipv6: true }, { netns: ns });
    const p = await proxy(t, ns, config('ALLOW_ANY'), undefined);

    assert.equal(await connect(ns, V4, 7002), 'closed');
    const s = await stats(p);
    assert.deepEqual(s, { loop: 1, blackhole: 0, passthrough: 1 }, 'the first relay comes back once and is refused there');
  });
}
