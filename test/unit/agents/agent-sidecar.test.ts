// What the agent asks of its sidecar and tells the control plane, without
// root: the `jibe proxy` command line is checked against the real command's
// options (so a renamed flag fails here, not on a VM), and the registration a
// capturing agent makes is one core/mesh marks mtlsReady.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Command } from 'commander';
import { registerAgent, parseService } from '../../../cli/commands/agent.ts';
import { registerProxy } from '../../../cli/commands/proxy.ts';
import { workloadTakesMtls } from '../../../core/mesh/build-tls.ts';
import type { Workload } from '../../../core/model/workload.ts';
import { sidecarCommand } from '../../../agents/node/agent-sidecar.ts';
import { PROXY_NODE_FLAGS } from '../../../proxy/proxy-node-flags.ts';
import { mergeOptions } from '../../../agents/node/node-agent.ts';
import type { JoinOptions } from '../../../agents/node/node-agent.ts';
import type { AgentState } from '../../../agents/node/agent-state.ts';
import { JOINED_CONTROL_PLANE_ID, joinedAgentState } from './agent-test-helpers.ts';

const SPEC = {
  namespace: 'default',
  workload: 'ratings-vm',
  discovery: '198.51.100.1:40123',
  certDir: '/var/lib/jibe-agent/certs',
  controlPlane: JOINED_CONTROL_PLANE_ID,
  outboundPort: 15001,
  adminPort: 15000,
};

/** The `jibe proxy` command as the CLI defines it, parsing without running. */
function proxyCommand(): Command {
  const program = new Command().exitOverride();
  registerProxy(program);
  const proxy = program.commands.find((c) => c.name() === 'proxy')!;
  proxy.exitOverride().action(() => {});
  return proxy;
}

function proxyArgs(args: string[]): string[] {
  assert.equal(args[0], 'proxy', 'the command runs `jibe proxy`');
  return args.slice(1);
}

describe('sidecarCommand', () => {
  it('runs a capture-mode sidecar with the agent\'s certificate and TLS discovery; every flag is one `jibe proxy` knows', () => {
    const { args, nodeArgs, entry } = sidecarCommand('/opt/jibe/cli/jibe.ts', { ...SPEC, inboundCapturePort: 15006 });
    assert.equal(entry, '/opt/jibe/cli/jibe.ts');
    assert.deepEqual(nodeArgs, [...PROXY_NODE_FLAGS]);
    const argv = proxyArgs(args);
    const proxy = proxyCommand();
    proxy.parse(argv, { from: 'user' });
    const opts = proxy.opts();
    assert.equal(opts.type, 'sidecar');
    assert.equal(opts.workload, 'ratings-vm');
    assert.equal(opts.platform, 'vm');
    assert.equal(opts.discovery, '198.51.100.1:40123');
    assert.equal(opts.discoveryTls, true, 'TLS even on a port other than 15012');
    assert.equal(opts.capture, true);
    assert.equal(opts.inboundCapturePort, 15006);
    assert.equal(opts.outboundPort, 15001);
    assert.equal(opts.certDir, SPEC.certDir);
    assert.equal(opts.controlPlaneId, SPEC.controlPlane);
  });

  it('without capture: no capture flags (the sidecar is an explicit outbound proxy)', () => {
    const { args } = sidecarCommand('/opt/jibe/cli/jibe.ts', SPEC);
    const proxy = proxyCommand();
    proxy.parse(proxyArgs(args), { from: 'user' });
    assert.equal(proxy.opts().capture, false);
    assert.equal(proxy.opts().inboundCapturePort, undefined);
  });

  it('rejects a flag `jibe proxy` does not know (the check above can fail)', () => {
    const proxy = proxyCommand();
    proxy.configureOutput({ writeErr: () => {} });
    assert.throws(() => proxy.parse(['--workload', 'x', '--no-such-flag'], { from: 'user' }), /unknown option/);
  });
});

const state = (): AgentState => joinedAgentState('ratings-vm', 'default', 'ratings');

function options(extra: Partial<JoinOptions>): JoinOptions {
  return {
    stateDir: '/nonexistent', services: [{ name: 'ratings', port: 9080 }, { name: 'echo', port: 9000, portName: 'tcp-echo' }], labels: { version: 'v1' },
    capture: true, proxy: true, proxyUid: 1337, proxyGid: 1337, dropPrivileges: true, jibeEntry: 'jibe.ts', log: () => {}, ...extra,
  };
}

/** The workload core/mesh sees for a registration (the fields workloadTakesMtls reads). */
function asWorkload(s: AgentState): Workload {
  const r = s.registration;
  return { name: r.name, namespace: 'default', platform: 'vm', address: r.address, labels: r.labels ?? {}, serviceAccount: 'ratings', identity: s.identity.spiffeId, health: 'healthy', services: [], proxy: r.proxy };
}

describe('the registration of a joined VM', () => {
  it('with capture and sidecar: tlsMode=istio and inbound on the app ports, so peers dial it with mTLS', () => {
    const s = mergeOptions(state(), options({}));
    assert.equal(s.registration.labels?.['security.istio.io/tlsMode'], 'istio');
    assert.equal(s.registration.labels?.version, 'v1');
    assert.deepEqual(s.registration.proxy, { inboundPorts: { 9080: 9080, 9000: 9000 } });
    assert.deepEqual(s.capture.options?.includeInboundPorts, [9080, 9000]);
    assert.equal(workloadTakesMtls(asWorkload(s)), true);
  });

  it('without capture (or without the sidecar) nothing terminates mTLS: plain, and a kept tlsMode=istio is dropped', () => {
    const joined = mergeOptions(state(), options({}));
    for (const extra of [{ capture: false }, { proxy: false }]) {
      const s = mergeOptions(joined, options(extra));
      assert.equal(s.registration.labels?.['security.istio.io/tlsMode'], undefined);
      assert.equal(s.registration.proxy, undefined);
      assert.equal(workloadTakesMtls(asWorkload(s)), false);
    }
  });

  it('an operator\'s own tlsMode label wins', () => {
    const s = mergeOptions(state(), options({ labels: { 'security.istio.io/tlsMode': 'disabled' } }));
    assert.equal(s.registration.labels?.['security.istio.io/tlsMode'], 'disabled');
    assert.equal(workloadTakesMtls(asWorkload(s)), false);
  });
});

describe('jibe agent join --service', () => {
  it('parses name:port[:targetPort][/portName]', () => {
    assert.deepEqual(parseService('reviews:9080'), [{ name: 'reviews', port: 9080 }]);
    assert.deepEqual(parseService('echo:9000:19000/tcp-echo'), [{ name: 'echo', port: 9000, targetPort: 19000, portName: 'tcp-echo' }]);
    assert.throws(() => parseService('echo:9000/TCP Echo'), /not a port name/);
    assert.throws(() => parseService('echo'), /not name:port/);
  });

  it('is wired into `jibe agent join`', () => {
    const program = new Command().exitOverride();
    registerAgent(program);
    const join = program.commands.find((c) => c.name() === 'agent')!.commands.find((c) => c.name() === 'join')!;
    join.exitOverride().action(() => {});
    join.parse(['--service', 'ratings:9080', '--service', 'echo:9000/tcp-echo'], { from: 'user' });
    assert.deepEqual(join.opts().service, [{ name: 'ratings', port: 9080 }, { name: 'echo', port: 9000, portName: 'tcp-echo' }]);
  });
});
