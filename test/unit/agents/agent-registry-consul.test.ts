// `jibe agent join --registry consul` without Consul: what the agent would
// register (the same body `jibe consul register` sends) is fed, as Consul
// would answer it, through the consul platform's own converter, so the test
// proves the round trip the mesh depends on: the identity the certificate
// carries, labels, ports and protocol, health from Consul's check, and mesh
// mTLS only when capture and the sidecar both run.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { consulInstanceId, consulServiceSpecs } from '../../../agents/node/agent-registry-consul.ts';
import type { AgentState } from '../../../agents/node/agent-state.ts';
import { mergeOptions } from '../../../agents/node/node-agent.ts';
import type { JoinOptions } from '../../../agents/node/node-agent.ts';
import { workloadTakesMtls } from '../../../core/mesh/build-tls.ts';
import { agentRegistration, validateServiceSpec } from '../../../platforms/consul/consul-registration.ts';
import { DEFAULT_CONVERT_OPTIONS, toService } from '../../../platforms/consul/consul-converters.ts';
import type { ConvertedService } from '../../../platforms/consul/consul-converters.ts';
import type { ConsulCheck, ConsulHealthEntry } from '../../../platforms/consul/consul-types.ts';
import { joinedAgentState } from './agent-test-helpers.ts';

const NODE = { Node: 'vm-node', Address: '10.0.0.9', Datacenter: 'dc1' };

const state = (): AgentState => joinedAgentState('reviews-vm', 'shop', 'reviews-sa');

function options(extra: Partial<JoinOptions>): JoinOptions {
  return {
    stateDir: '/nonexistent', services: [{ name: 'reviews', port: 9080 }], labels: { version: 'v3', 'app.kubernetes.io/part-of': 'bookinfo' },
    health: { url: 'http://127.0.0.1:9080/health', intervalMs: 1000, failureThreshold: 2 },
    capture: true, proxy: true, proxyUid: 1337, proxyGid: 1337, dropPrivileges: true, jibeEntry: 'jibe.ts', log: () => {},
    registry: { kind: 'consul', address: 'http://127.0.0.1:8500' }, ...extra,
  };
}

/** Consul's view of what the agent registered: the instance and (when registered) its sidecar, with check states. */
function asConsulSees(s: AgentState, status: ConsulCheck['Status'] = 'passing'): ConvertedService {
  const entries: ConsulHealthEntry[] = [];
  const sidecars = new Map<string, ConsulHealthEntry>();
  for (const spec of consulServiceSpecs(s)) {
    assert.deepEqual(validateServiceSpec(spec), [], 'the spec passes `jibe consul register`\'s own validation');
    const body = agentRegistration(spec) as { ID: string; Name: string; Port: number; Address?: string; Tags: string[]; Meta: Record<string, string>; Check?: unknown; Connect?: { SidecarService: { Port: number; Meta: Record<string, string> } } };
    const check = (id: string): ConsulCheck[] => [{ Node: NODE.Node, CheckID: `service:${id}`, Status: status, ServiceID: id, ServiceName: body.Name }];
    entries.push({ Node: NODE, Service: { ID: body.ID, Service: body.Name, Port: body.Port, Address: body.Address, Tags: body.Tags, Meta: body.Meta }, Checks: body.Check ? check(body.ID) : [] });
    if (body.Connect) {
      const sc = body.Connect.SidecarService;
      const id = `${body.ID}-sidecar-proxy`;
      sidecars.set(`${NODE.Node}/${body.ID}`, { Node: NODE, Service: { ID: id, Service: `${body.Name}-sidecar-proxy`, Kind: 'connect-proxy', Port: sc.Port, Meta: sc.Meta, Proxy: { DestinationServiceID: body.ID } }, Checks: [] });
    }
  }
  return toService(entries, sidecars, DEFAULT_CONVERT_OPTIONS);
}

describe('the VM agent registering in Consul', () => {
  it('with capture and the sidecar: same identity as the certificate, labels (dotted ones as tags), mesh mTLS on the app port', () => {
    const s = mergeOptions(state(), options({}));
    assert.equal(s.registry?.kind, 'consul');
    const [spec] = consulServiceSpecs(s);
    assert.equal(spec.id, 'reviews-reviews-vm');
    assert.deepEqual(spec.sidecar, { port: 9080 }, 'with capture the sidecar takes the app port\'s connections');
    assert.equal(spec.check, 'http://127.0.0.1:9080/health');
    assert.equal(spec.checkInterval, '1000ms');
    assert.equal(spec.checkFailures, 2);
    assert.ok(spec.tags?.includes('security.istio.io/tlsMode=istio'), 'Consul Meta keys cannot hold dots or slashes: tlsMode travels as a tag');

    const seen = asConsulSees(s);
    assert.deepEqual(seen.problems, []);
    const [w] = seen.workloads;
    assert.equal(w.name, 'reviews-reviews-vm.vm-node.dc1');
    assert.equal(w.platform, 'consul');
    assert.equal(w.identity, s.identity.spiffeId, 'the mesh expects the identity the VM\'s certificate carries');
    assert.equal(w.address, '198.51.100.3');
    assert.equal(w.labels.version, 'v3');
    assert.equal(w.labels['app.kubernetes.io/part-of'], 'bookinfo');
    assert.deepEqual(w.proxy, { inboundPorts: { 9080: 9080 } }, 'capture: peers dial the app port, and the sidecar gets its inbound listener');
    assert.deepEqual(w.proxy, s.registration.proxy, 'the same inbound layout the vm registry path registers');
    assert.equal(workloadTakesMtls(w), true);
    assert.deepEqual(seen.services.map((x) => [x.hostname, x.ports]), [['reviews.shop.svc.cluster.local', [{ name: 'http-9080', port: 9080, protocol: 'http' }]]]);
    assert.equal(w.health, 'healthy');
    assert.equal(asConsulSees(s, 'critical').workloads[0].health, 'unhealthy', 'Consul\'s failing check makes the VM unhealthy');
  });

  it('without capture (or without the sidecar) no sidecar is registered and peers dial the app in plain text', () => {
    for (const extra of [{ capture: false }, { proxy: false }]) {
      const s = mergeOptions(state(), options(extra));
      assert.equal(consulServiceSpecs(s)[0].sidecar, false);
      const [w] = asConsulSees(s).workloads;
      assert.equal(w.proxy, undefined);
      assert.equal(workloadTakesMtls(w), false);
    }
  });

  it('service port vs app port, port names as protocols, one instance per service with stable distinct IDs', () => {
    const s = mergeOptions(state(), options({ proxy: false, services: [{ name: 'reviews', port: 80, targetPort: 9080 }, { name: 'echo', port: 9000, portName: 'tcp-echo' }, { name: 'echo', port: 9001, portName: 'tcp-echo' }] }));
    const specs = consulServiceSpecs(s);
    assert.deepEqual(specs.map((x) => [x.id, x.port, x.protocol, x.meta?.['jibe-service-port']]), [
      ['reviews-reviews-vm', 9080, 'http', '80'],
      ['echo-reviews-vm-9000', 9000, 'tcp', undefined],
      ['echo-reviews-vm-9001', 9001, 'tcp', undefined],
    ]);
    assert.equal(consulInstanceId('vm', { name: 'a', port: 1 }, [{ name: 'a' }]), 'a-vm');
    const seen = asConsulSees(s);
    assert.deepEqual(seen.problems, []);
    const reviews = seen.services.find((x) => x.name === 'reviews');
    assert.deepEqual(reviews?.ports.map((p) => p.port), [80]);
    assert.deepEqual(seen.workloads.find((w) => w.name.startsWith('reviews'))?.services[0].ports, { 80: 9080 });
  });

  it('a resume without --registry keeps Consul (and what was registered); an explicit vm leaves it', () => {
    const joined = mergeOptions(state(), options({}));
    joined.registry!.instances = [{ id: 'reviews-reviews-vm', workload: 'reviews-reviews-vm.vm-node.dc1' }];
    const resumed = mergeOptions(joined, options({ registry: undefined }));
    assert.deepEqual(resumed.registry, joined.registry);
    const moved = mergeOptions(joined, options({ registry: { kind: 'consul', address: 'http://10.0.0.2:8500', tokenFile: '/etc/jibe/consul-token' } }));
    assert.deepEqual(moved.registry, { kind: 'consul', address: 'http://10.0.0.2:8500', tokenFile: '/etc/jibe/consul-token', instances: joined.registry!.instances });
    assert.equal(mergeOptions(joined, options({ registry: { kind: 'vm' } })).registry, undefined);
  });
});

describe('leaving Consul', () => {
  it('a Consul that could not be told gets the exact jibe consul deregister steps, per instance', async () => {
    const { formatLeaveResult } = await import('../../../agents/node/agent-leave.ts');
    const base = { workload: { namespace: 'default', name: 'reviews-vm' }, controlPlane: '198.51.100.1:15015', captureRemoved: true };
    const ok = formatLeaveResult({ ...base, deregistered: true, registry: { kind: 'consul', address: 'http://127.0.0.1:8500', instances: ['reviews-reviews-vm'], failed: [] } });
    assert.match(ok.stdout, /deregistered from Consul \(reviews-reviews-vm\)/);
    assert.equal(ok.stderr, '');
    const down = formatLeaveResult({ ...base, deregistered: false, deregisterError: 'Consul at http://127.0.0.1:8500 could not be reached', registry: { kind: 'consul', address: 'http://127.0.0.1:8500', instances: ['a-vm', 'b-vm'], failed: ['a-vm', 'b-vm'] } });
    assert.match(down.stdout, /left the mesh locally/);
    assert.match(down.stderr, /jibe consul deregister a-vm --consul-address http:\/\/127\.0\.0\.1:8500 --ignore-missing\n {4}jibe consul deregister b-vm/);
    assert.doesNotMatch(down.stderr, /jibe workload deregister/, 'the control plane has nothing to remove');
  });
});
