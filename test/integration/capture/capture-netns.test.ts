// Real iptables in throw-away network namespaces: install capture, prove that
// traffic is redirected (outbound to 15001, inbound to 15006) while loopback
// and the proxy's own uid are not, that a second install changes nothing,
// that removal restores iptables-save byte for byte (timestamps aside), and
// that a failure half way leaves no rule behind. Addresses come from the
// documentation ranges and exist only inside the namespaces made here.
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { applyCapture, captureStatus, removeCapture } from '../../../agents/capture/capture-apply.ts';
import { createCommandRunner } from '../../../agents/capture/capture-exec.ts';
import type { CommandRunner } from '../../../agents/capture/capture-exec.ts';
import { normalizeIptablesSave } from '../../../agents/capture/iptables-state.ts';
import { JibeError } from '../../../core/errors/errors.ts';
import { defineUnlessProblem, netnsEnvironmentProblem } from './netns-environment.ts';

const run = promisify(execFile);
const NEEDED = ['ip', 'iptables', 'iptables-save', 'iptables-restore', 'ip6tables-save', 'ip6tables-restore', 'nft', 'setpriv'];

defineUnlessProblem('capture integration: real iptables in network namespaces', netnsEnvironmentProblem(NEEDED, 'Debian: apt-get install iptables iproute2 nftables util-linux'), defineTests);

/** A fresh namespace with loopback up, deleted after the test whatever happens. */
async function netns(t: TestContext, tag = 'vm'): Promise<string> {
  const name = `jibe-cap-${tag}-${randomBytes(4).toString('hex')}`;
  await run('ip', ['netns', 'add', name]);
  t.after(() => run('ip', ['netns', 'del', name]).then(() => undefined));
  await run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  return name;
}

async function saves(exec: CommandRunner): Promise<{ v4: string; v6: string }> {
  return { v4: await exec('iptables-save', []), v6: await exec('ip6tables-save', []) };
}

const normalized = (s: { v4: string; v6: string }) => ({ v4: normalizeIptablesSave(s.v4), v6: normalizeIptablesSave(s.v6) });

/** Someone else's nat rules (as docker leaves them) that capture must keep. */
async function addForeignRules(exec: CommandRunner): Promise<void> {
  await exec('iptables-restore', ['--noflush'], '*nat\n:DOCKER - [0:0]\n-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\n-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE\nCOMMIT\n');
}

// One process answers on several ports with the port's name, so the client
// learns where its connection really landed.
const SERVER = `
const net = require('node:net');
const names = JSON.parse(process.argv[1]);
let ready = 0;
for (const [port, name] of Object.entries(names)) {
  net.createServer((s) => s.end(name)).listen(Number(port), '0.0.0.0', () => { if (++ready === Object.keys(names).length) console.log('ready'); });
}`;

const CLIENT = `
const s = require('node:net').connect(Number(process.argv[2]), process.argv[1]);
let data = '';
s.setTimeout(5000, () => { console.log('timeout'); process.exit(0); });
s.on('data', (d) => (data += d));
s.on('end', () => console.log(data));
s.on('error', (e) => console.log('error:' + e.code));`;

async function startServer(t: TestContext, ns: string, names: Record<number, string>): Promise<void> {
  const child: ChildProcess = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', SERVER, JSON.stringify(names)], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => { child.kill(); });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('ready')) resolve(); });
    child.on('exit', (code) => reject(new Error(`test server in ${ns} exited with ${code}`)));
  });
}

async function connect(ns: string, host: string, port: number, asUid?: number): Promise<string> {
  const prefix = asUid === undefined ? [] : ['setpriv', `--reuid=${asUid}`, `--regid=${asUid}`, '--clear-groups'];
  const { stdout } = await run('ip', ['netns', 'exec', ns, ...prefix, process.execPath, '-e', CLIENT, host, String(port)], { timeout: 20_000 });
  return stdout.trim();
}

function defineTests(): void {
  test('outbound TCP is captured to 15001; loopback and the proxy uid are not; inbound goes to 15006', async (t) => {
    const vm = await netns(t, 'vm');
    const peer = await netns(t, 'peer');
    // A link from a peer for inbound traffic; its second address (192.0.2.1) is a
    // non-loopback destination for the app's outbound calls. (A veth, not a
    // dummy interface: containers often lack the dummy module.)
    await run('ip', ['-n', vm, 'link', 'add', 'veth-vm', 'type', 'veth', 'peer', 'name', 'veth-peer', 'netns', peer]);
    await run('ip', ['-n', vm, 'addr', 'add', '198.51.100.1/24', 'dev', 'veth-vm']);
    await run('ip', ['-n', vm, 'addr', 'add', '192.0.2.1/24', 'dev', 'veth-vm']);
    await run('ip', ['-n', peer, 'addr', 'add', '198.51.100.2/24', 'dev', 'veth-peer']);
    await run('ip', ['-n', vm, 'link', 'set', 'veth-vm', 'up']);
    await run('ip', ['-n', peer, 'link', 'set', 'veth-peer', 'up']);
    await startServer(t, vm, { 8080: 'app', 9080: 'app-inbound', 15001: 'outbound-proxy', 15006: 'inbound-proxy', 15021: 'proxy-health' });

    assert.equal(await connect(vm, '192.0.2.1', 8080), 'app', 'before capture the app is reached directly');
    assert.equal(await connect(peer, '198.51.100.1', 9080), 'app-inbound');

    await applyCapture({}, { netns: vm });

    assert.equal(await connect(vm, '192.0.2.1', 8080), 'outbound-proxy', 'outbound TCP goes to the proxy');
    assert.equal(await connect(vm, '192.0.2.77', 80), 'outbound-proxy', 'even to an address nobody has');
    assert.equal(await connect(vm, '127.0.0.1', 8080), 'app', 'loopback is not captured');
    assert.equal(await connect(vm, '192.0.2.1', 8080, 1337), 'app', 'the proxy uid is not captured');
    assert.equal(await connect(peer, '198.51.100.1', 9080), 'inbound-proxy', 'inbound TCP goes to the proxy');
    assert.equal(await connect(peer, '198.51.100.1', 15021), 'proxy-health', 'excluded inbound ports answer directly');
  });

  test('second apply changes nothing; remove restores iptables-save byte for byte (fresh namespace and one with foreign rules)', async (t) => {
    for (const foreign of [false, true]) {
      const ns = await netns(t, foreign ? 'fr' : 'fresh');
      const exec = createCommandRunner({ netns: ns });
      if (foreign) await addForeignRules(exec);
      const before = await saves(exec);
      const options = { ipv6: true, dns: { enabled: true }, excludeOutboundCidrs: ['10.0.0.0/8', 'fd00::/8'], controlPlane: { address: '192.0.2.9', port: 15012 } };

      const first = await applyCapture(options, { exec });
      assert.deepEqual(first.changedFamilies, ['v4', 'v6']);
      const installed = await saves(exec);
      for (const chain of ['JIBE_INBOUND', 'JIBE_IN_REDIRECT', 'JIBE_OUTPUT', 'JIBE_REDIRECT']) {
        assert.match(installed.v4, new RegExp(`^:${chain} - `, 'm'));
        assert.match(installed.v6, new RegExp(`^:${chain} - `, 'm'));
      }
      assert.ok(installed.v4.split('\n').filter((l) => l.startsWith('-A JIBE_') || l.includes('-j JIBE_')).every((l) => l.includes('--comment "jibe: ')), 'every rule is commented');
      assert.equal((await captureStatus(options, { exec })).state, 'installed');

      const second = await applyCapture(options, { exec });
      assert.equal(second.changed, false);
      assert.deepEqual(normalized(await saves(exec)), normalized(installed), 'a second apply changes nothing');

      const removed = await removeCapture({ exec });
      assert.deepEqual(removed.removedFamilies, ['v4', 'v6']);
      assert.deepEqual(normalized(await saves(exec)), normalized(before), 'iptables-save after removal equals before install');
      assert.equal((await captureStatus(options, { exec })).state, 'absent');
      assert.deepEqual((await removeCapture({ exec })).removedFamilies, [], 'removing twice is harmless');
      if (foreign) assert.match(before.v4, /-j MASQUERADE/);
    }
  });

  test('a failure half way (bad v6 restore after v4 installed, or a bad v4 restore) leaves no rule behind', async (t) => {
    for (const [failing, foreign] of [['ip6tables-restore', false], ['ip6tables-restore', true], ['iptables-restore', true]] as const) {
      const ns = await netns(t, 'fail');
      const real = createCommandRunner({ netns: ns });
      if (foreign) await addForeignRules(real);
      const before = await saves(real);
      // Test-only corruption of the install transaction: an unknown target makes the restore fail.
      const exec: CommandRunner = (command, args, input) =>
        real(command, args, command === failing && args.includes('--noflush') && input ? input.replace('COMMIT', '-A JIBE_OUTPUT -j JIBE_NO_SUCH_CHAIN\nCOMMIT') : input);
      await assert.rejects(applyCapture({ ipv6: true }, { exec, netns: ns }), (e: unknown) => {
        assert.ok(e instanceof JibeError, String(e));
        assert.equal(e.code, 'JIBE_ERR_CAPTURE');
        assert.match(e.message, new RegExp(`\`${failing} -w 5 --noflush\` failed`));
        return true;
      });
      assert.deepEqual(normalized(await saves(real)), normalized(before), `after a failing ${failing}${foreign ? ' with foreign rules' : ''} nothing is left`);
    }
  });
}
