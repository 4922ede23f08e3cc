// Consul platform at scale (issue 6): 1,000 services and 10,000 instances in a
// real Consul dev agent (registered in bulk through /v1/txn catalog
// operations, each instance with a check), followed by a control plane with
// the consul platform. Measures the control plane's memory, the time to its
// first full sync, and the time from a Consul health change until the mesh
// view has it and until a connected sidecar (a client of every service) has
// ACKed the config carrying it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import pino from 'pino';
import type { RunningControlPlane } from '../../core/control-plane.ts';
import type { RunningProxy } from '../../proxy/proxy.ts';
import type { ConsulClient } from '../../platforms/consul/consul-client.ts';
import { startConsulAgent } from '../integration/consul/consul-agent.ts';
import type { ConsulAgent } from '../integration/consul/consul-agent.ts';
import { machineDescription, writeSection, BENCHMARKS_FILE } from './benchmarks-md.ts';
import { startTestControlPlane } from '../helpers/control-plane.ts';
import { countChangePaths, startSyncSidecar } from './sync-sidecar.ts';
import { formatLatencies, percentile } from './latency-percentiles.ts';

export const name = 'consul-sync';
export const description = 'Consul, 1,000 services / 10,000 instances: control-plane memory, first sync, health change → mesh and proxy (issue 6)';
export const SECTION_TITLE = 'Consul platform at scale (issue 6)';

const NODES = 100;
const GOAL_MS = 1000;

function log(message: string): void {
  process.stdout.write(`[consul-sync] ${message}\n`);
}

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

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { smoke: { type: 'boolean', default: false }, changes: { type: 'string' }, services: { type: 'string' }, 'no-write': { type: 'boolean', default: false } },
  });
  const services = Number(values.services ?? (values.smoke ? 100 : 1000));
  const perService = 10;
  const changes = Number(values.changes ?? (values.smoke ? 10 : 100));
  const record = !values.smoke && !values['no-write'];
  let agent: ConsulAgent | undefined;
  let cp: RunningControlPlane | undefined;
  let proxy: RunningProxy | undefined;
  const dir = mkdtempSync(join(tmpdir(), 'jibe-consul-bench-'));
  try {
    agent = await startConsulAgent();
    const client = agent.client();
    let started = performance.now();
    await populate(client, services, perService);
    log(`registered ${services} services, ${services * perService} instances in ${((performance.now() - started) / 1000).toFixed(1)} s`);

    globalThis.gc?.();
    const before = process.memoryUsage();
    started = performance.now();
    cp = await startTestControlPlane({
      dataDir: dir,
      platforms: ['vm', 'consul'],
      pluginOptions: { consul: { address: agent.address } },
      logger: pino({ level: 'warn' }),
    });
    const mesh = cp.mesh;
    const consulCount = () => mesh.snapshot().workloads.reduce((n, w) => n + (w.platform === 'consul' ? 1 : 0), 0);
    while (consulCount() < services * perService) await delay(5);
    const firstSyncMs = performance.now() - started;
    globalThis.gc?.();
    const after = process.memoryUsage();
    log(`first full sync ${firstSyncMs.toFixed(0)} ms; heap +${((after.heapUsed - before.heapUsed) / 2 ** 20).toFixed(0)} MiB, rss ${(after.rss / 2 ** 20).toFixed(0)} MiB`);

    const sidecar = await startSyncSidecar(cp);
    proxy = sidecar.proxy;
    const syncedVersion = sidecar.syncedVersion;
    const proxySyncMs = sidecar.firstSyncMs;
    log(`sidecar with every service synced in ${proxySyncMs.toFixed(0)} ms`);

    const toMesh: number[] = [];
    const toProxy: number[] = [];
    // Whether each measured change reached the mesh as health-only (the incremental path) or as "anything changed".
    const { paths, measuring } = countChangePaths(cp);
    for (let c = 0; c < changes; c++) {
      const s = (c * 37) % services;
      const i = c % perService;
      const id = `svc-${s}-${i}.${nodeOf(s, i)}.${agent.datacenter}`;
      const present = () => mesh.snapshot().workloads.some((w) => w.name === id && w.health === 'healthy');
      const goingDown = present();
      measuring.on = true;
      const t0 = performance.now();
      await txn(client, [checkOp(s, i, goingDown ? 'critical' : 'passing')]);
      while (present() === goingDown) await delay(2);
      toMesh.push(performance.now() - t0);
      const version = mesh.snapshot().version;
      while ((await syncedVersion()) < version) await delay(5);
      toProxy.push(performance.now() - t0);
      measuring.on = false;
      if ((c + 1) % 10 === 0) log(`${c + 1}/${changes} changes; last: mesh ${toMesh[c].toFixed(0)} ms, sidecar ${toProxy[c].toFixed(0)} ms`);
      // Flip it back outside the measurement, so every change starts from all-passing.
      await txn(client, [checkOp(s, i, 'passing')]);
      while (!present()) await delay(2);
      while ((await syncedVersion()) < mesh.snapshot().version) await delay(5);
    }
    toMesh.sort((a, b) => a - b);
    toProxy.sort((a, b) => a - b);
    log(`health change → mesh view: ${formatLatencies(toMesh)}`);
    log(`health change → sidecar ACKed: ${formatLatencies(toProxy)}`);
    log(`registry changes during the measured changes: ${paths.incremental} health-only (incremental), ${paths.full} full`);
    if (record) {
      const body = [
        `Command: \`node_modules/.bin/node --expose-gc test/bench/run.ts consul-sync\` (${new Date().toISOString().slice(0, 10)}; ${machineDescription()}).`,
        '',
        `Consul ${agent.datacenter} dev agent (real, in memory) with ${services} services × ${perService} instances on ${NODES} nodes, each instance with a check; the control plane runs the vm and consul platforms in one process, plus one sidecar that is a client of every service (its config carries all ${services * perService} endpoints). ${changes} health changes, each a check going critical (the instance's endpoint turns unhealthy) measured from the catalog write to the change being visible.`,
        '',
        '| Figure | Value | Target |',
        '| --- | --- | --- |',
        `| Control-plane memory for the Consul view (heap growth after GC; process RSS) | +${((after.heapUsed - before.heapUsed) / 2 ** 20).toFixed(0)} MiB; ${(after.rss / 2 ** 20).toFixed(0)} MiB | — |`,
        `| Time to first full sync (start → all ${services * perService} instances in the mesh view) | ${(firstSyncMs / 1000).toFixed(2)} s | — |`,
        `| Health change → mesh view | ${formatLatencies(toMesh)} | — |`,
        `| Health change → affected sidecar ACKed its new config | ${formatLatencies(toProxy)} | p99 < ${GOAL_MS} ms (${percentile(toProxy, 99) < GOAL_MS ? 'met' : 'NOT met'}) |`,
        `| Registry changes during the measured changes: health-only (incremental path) / full | ${paths.incremental} / ${paths.full} | all health-only |`,
      ].join('\n');
      writeSection(SECTION_TITLE, body);
      log(`written to ${BENCHMARKS_FILE}`);
    }
  } finally {
    await proxy?.close();
    await cp?.close();
    await agent?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
