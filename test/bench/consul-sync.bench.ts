// Consul platform at scale (issue 6): 1,000 services and 10,000 instances in a
// real Consul dev agent (registered in bulk through /v1/txn catalog
// operations, each instance with a check), followed by a control plane with
// the consul platform. Measures the control plane's memory, the time to its
// first full sync, and the time from a Consul health change until the mesh
// view has it and until a connected sidecar (a client of every service) has
// ACKed the config carrying it.
import type { ConsulClient } from '../../platforms/consul/consul-client.ts';
import { startConsulAgent } from '../integration/consul/consul-agent.ts';
import type { ConsulAgent } from '../integration/consul/consul-agent.ts';
import { machineDescription } from './benchmarks-md.ts';
import { formatLatencies } from './latency-percentiles.ts';
import { goalCell, memoryCell, runRegistrySyncBench } from './registry-sync-harness.ts';
import type { RegistrySyncBench } from './registry-sync-harness.ts';

export const name = 'consul-sync';
export const description = 'Consul, 1,000 services / 10,000 instances: control-plane memory, first sync, health change → mesh and proxy (issue 6)';
export const SECTION_TITLE = 'Consul platform at scale (issue 6)';

const NODES = 100;
const PER_SERVICE = 10;

const checkId = (s: number, i: number) => `svc-${s}-${i}-check`;
const nodeOf = (s: number, i: number) => `node-${(s * 10 + i) % NODES}`;

async function txn(client: ConsulClient, ops: object[]): Promise<void> {
  const res = await client.put<{ Errors?: unknown }>('/v1/txn', ops, { accept: [409], timeoutMs: 60_000 });
  if (res.status !== 200) throw new Error(`catalog txn failed: ${JSON.stringify(res.body).slice(0, 500)}`);
}

function checkOp(s: number, i: number, status: 'passing' | 'critical'): object {
  return { Check: { Verb: 'set', Check: { Node: nodeOf(s, i), CheckID: checkId(s, i), Name: 'app', Status: status, ServiceID: `svc-${s}-${i}`, ServiceName: `svc-${s}` } } };
}

/** Registers `services` × `perService` instances, 32 per transaction (a service and its check = 2 of Consul's 64 ops). */
async function populate(client: ConsulClient, services: number, perService: number): Promise<void> {
  for (let n = 0; n < NODES; n += 64) {
    await txn(client, Array.from({ length: Math.min(64, NODES - n) }, (_, k) => ({ Node: { Verb: 'set', Node: { Node: `node-${n + k}`, Address: `10.0.${Math.floor((n + k) / 250)}.${((n + k) % 250) + 1}` } } })));
  }
  const instances: Array<[number, number]> = [];
  for (let s = 0; s < services; s++) for (let i = 0; i < perService; i++) instances.push([s, i]);
  const batches: object[][] = [];
  for (let k = 0; k < instances.length; k += 32) {
    batches.push(
      instances.slice(k, k + 32).flatMap(([s, i]) => [
        { Service: { Verb: 'set', Node: nodeOf(s, i), Service: { ID: `svc-${s}-${i}`, Service: `svc-${s}`, Port: 8000 + i, Meta: { version: `v${i % 3}`, protocol: 'http' } } } },
        checkOp(s, i, 'passing'),
      ]),
    );
  }
  let next = 0;
  await Promise.all(Array.from({ length: 4 }, async () => {
    while (next < batches.length) await txn(client, batches[next++]);
  }));
}

interface Consul {
  agent: ConsulAgent;
  client: ConsulClient;
  stop(): Promise<void>;
}

const bench: RegistrySyncBench<Consul> = {
  name,
  platform: 'consul',
  perService: PER_SERVICE,
  sectionTitle: SECTION_TITLE,
  async start() {
    const agent = await startConsulAgent();
    return { agent, client: agent.client(), stop: () => agent.stop() };
  },
  pluginOptions: ({ agent }) => ({ address: agent.address }),
  populate: ({ client }, services) => populate(client, services, PER_SERVICE),
  populated: (services) => `registered ${services} services, ${services * PER_SERVICE} instances`,
  changeLabel: 'health change',
  change({ agent, client }, mesh, s, i) {
    const id = `svc-${s}-${i}.${nodeOf(s, i)}.${agent.datacenter}`;
    const present = () => mesh.snapshot().workloads.some((w) => w.name === id && w.health === 'healthy');
    const goingDown = present();
    return {
      make: () => txn(client, [checkOp(s, i, goingDown ? 'critical' : 'passing')]),
      made: () => present() !== goingDown,
      undo: () => txn(client, [checkOp(s, i, 'passing')]),
      undone: present,
    };
  },
  report: ({ agent }, r) => [
    `Command: \`node_modules/.bin/node --expose-gc test/bench/run.ts consul-sync\` (${new Date().toISOString().slice(0, 10)}; ${machineDescription()}).`,
    '',
    `Consul ${agent.datacenter} dev agent (real, in memory) with ${r.services} services × ${r.perService} instances on ${NODES} nodes, each instance with a check; the control plane runs the vm and consul platforms in one process, plus one sidecar that is a client of every service (its config carries all ${r.services * r.perService} endpoints). ${r.changes} health changes, each a check going critical (the instance's endpoint turns unhealthy) measured from the catalog write to the change being visible.`,
    '',
    '| Figure | Value | Target |',
    '| --- | --- | --- |',
    `| Control-plane memory for the Consul view (heap growth after GC; process RSS) | ${memoryCell(r)} | — |`,
    `| Time to first full sync (start → all ${r.services * r.perService} instances in the mesh view) | ${(r.firstSyncMs / 1000).toFixed(2)} s | — |`,
    `| Health change → mesh view | ${formatLatencies(r.toMesh)} | — |`,
    `| Health change → affected sidecar ACKed its new config | ${formatLatencies(r.toProxy)} | ${goalCell(r.toProxy)} |`,
    `| Registry changes during the measured changes: health-only (incremental path) / full | ${r.paths.incremental} / ${r.paths.full} | all health-only |`,
  ].join('\n'),
};

export function run(argv: string[]): Promise<void> {
  return runRegistrySyncBench(bench, argv);
}
