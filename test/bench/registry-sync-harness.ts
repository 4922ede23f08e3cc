// The measuring skeleton the single-registry sync benches (consul-sync,
// kubernetes-sync) share, so both measure the same way and a fix to one
// reaches the other: a real registry filled with `services` × `perService`
// endpoints, a control plane with the vm platform and the one under test, the
// time to its first full view and its memory for it, a sidecar that calls
// every service, then N changes each timed to the mesh view and to the
// sidecar's ACK, each undone outside the measurement so all start alike.
// What differs (the registry, how it is filled, what one change is and how it
// shows in the mesh, the BENCHMARKS.md text) comes from the bench.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import pino from 'pino';
import type { RunningControlPlane } from '../../core/control-plane.ts';
import type { MeshService } from '../../core/mesh/mesh-service.ts';
import type { RunningProxy } from '../../proxy/proxy.ts';
import { startTestControlPlane } from '../helpers/control-plane.ts';
import { BENCHMARKS_FILE, writeSection } from './benchmarks-md.ts';
import { formatLatencies, percentile } from './latency-percentiles.ts';
import { countChangePaths, startSyncSidecar } from './sync-sidecar.ts';

/** The issues' target for a registry change to reach an affected sidecar. */
export const GOAL_MS = 1000;

/** One measured change: made and then undone, each visible in the mesh view once its predicate holds. */
export interface SyncChange {
  make(): Promise<void>;
  /** The mesh view shows the change. */
  made(): boolean;
  undo(): Promise<void>;
  /** The mesh view is back to the state before the change. */
  undone(): boolean;
}

export interface RegistrySyncResult {
  services: number;
  perService: number;
  changes: number;
  /** Heap and RSS before the control plane started and after its first full sync, both after a GC when --expose-gc. */
  before: NodeJS.MemoryUsage;
  after: NodeJS.MemoryUsage;
  /** Control-plane start → every endpoint of the platform in the mesh view. */
  firstSyncMs: number;
  /** Sidecar start → it ACKed the then-current mesh version. */
  proxySyncMs: number;
  /** Per change, ascending: write → mesh view, write → sidecar ACKed. */
  toMesh: number[];
  toProxy: number[];
  /** Registry changes during the measured changes: health-only (incremental path) / anything changed. */
  paths: { incremental: number; full: number };
}

export interface RegistrySyncBench<R extends { stop(): Promise<void> }> {
  /** Bench name: log prefix and temp dir name. */
  name: string;
  /** The platform under test, as workloads carry it and as `platforms` names it. */
  platform: string;
  perService: number;
  sectionTitle: string;
  /** Starts the real registry (agent, API server); stopped last. */
  start(): Promise<R>;
  pluginOptions(registry: R): Record<string, unknown>;
  /** Writes `services` × `perService` endpoints into the registry, all healthy. */
  populate(registry: R, services: number): Promise<void>;
  /** What `populate` wrote, for the log: "registered 100 services, 1000 instances". */
  populated(services: number): string;
  /** How the change reads in the summary lines: "health change". */
  changeLabel: string;
  /** Endpoint `i` of service `s` (both chosen by the harness) changed against `mesh`. */
  change(registry: R, mesh: MeshService, s: number, i: number): SyncChange;
  /** After the summary lines, with the registry still up: the BENCHMARKS.md section body (written only when recording). */
  report(registry: R, result: RegistrySyncResult): string;
}

const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(0);

/** The memory cell both sections print: "+<heap growth> MiB; <rss> MiB". */
export function memoryCell(r: RegistrySyncResult): string {
  return `+${mib(r.after.heapUsed - r.before.heapUsed)} MiB; ${mib(r.after.rss)} MiB`;
}

/** The target cell for the change → sidecar ACKed figures. */
export function goalCell(toProxy: number[]): string {
  return `p99 < ${GOAL_MS} ms (${percentile(toProxy, 99) < GOAL_MS ? 'met' : 'NOT met'})`;
}

export async function runRegistrySyncBench<R extends { stop(): Promise<void> }>(bench: RegistrySyncBench<R>, argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { smoke: { type: 'boolean', default: false }, changes: { type: 'string' }, services: { type: 'string' }, 'no-write': { type: 'boolean', default: false } },
  });
  const services = Number(values.services ?? (values.smoke ? 100 : 1000));
  const changes = Number(values.changes ?? (values.smoke ? 10 : 100));
  const record = !values.smoke && !values['no-write'];
  const { perService, platform } = bench;
  const log = (message: string) => process.stdout.write(`[${bench.name}] ${message}\n`);
  let registry: R | undefined;
  let cp: RunningControlPlane | undefined;
  let proxy: RunningProxy | undefined;
  const dir = mkdtempSync(join(tmpdir(), `jibe-${bench.name}-`));
  try {
    registry = await bench.start();
    let started = performance.now();
    await bench.populate(registry, services);
    log(`${bench.populated(services)} in ${((performance.now() - started) / 1000).toFixed(1)} s`);

    globalThis.gc?.();
    const before = process.memoryUsage();
    started = performance.now();
    cp = await startTestControlPlane({
      dataDir: dir,
      platforms: ['vm', platform],
      pluginOptions: { [platform]: bench.pluginOptions(registry) },
      logger: pino({ level: 'warn' }),
    });
    const mesh = cp.mesh;
    const platformCount = () => mesh.snapshot().workloads.reduce((n, w) => n + (w.platform === platform ? 1 : 0), 0);
    while (platformCount() < services * perService) await delay(5);
    const firstSyncMs = performance.now() - started;
    globalThis.gc?.();
    const after = process.memoryUsage();
    log(`first full sync ${firstSyncMs.toFixed(0)} ms; heap +${mib(after.heapUsed - before.heapUsed)} MiB, rss ${mib(after.rss)} MiB`);

    const sidecar = await startSyncSidecar(cp);
    proxy = sidecar.proxy;
    const syncedVersion = sidecar.syncedVersion;
    log(`sidecar with every service synced in ${sidecar.firstSyncMs.toFixed(0)} ms`);

    const toMesh: number[] = [];
    const toProxy: number[] = [];
    // Whether each measured change reached the mesh as health-only (the incremental path) or as "anything changed".
    const { paths, measuring } = countChangePaths(cp);
    for (let c = 0; c < changes; c++) {
      const change = bench.change(registry, mesh, (c * 37) % services, c % perService);
      measuring.on = true;
      const t0 = performance.now();
      await change.make();
      while (!change.made()) await delay(2);
      toMesh.push(performance.now() - t0);
      const version = mesh.snapshot().version;
      while ((await syncedVersion()) < version) await delay(5);
      toProxy.push(performance.now() - t0);
      measuring.on = false;
      if ((c + 1) % 10 === 0) log(`${c + 1}/${changes} changes; last: mesh ${toMesh[c].toFixed(0)} ms, sidecar ${toProxy[c].toFixed(0)} ms`);
      // Undone outside the measurement, so every change starts from the same state.
      await change.undo();
      while (!change.undone()) await delay(2);
      while ((await syncedVersion()) < mesh.snapshot().version) await delay(5);
    }
    toMesh.sort((a, b) => a - b);
    toProxy.sort((a, b) => a - b);
    log(`${bench.changeLabel} → mesh view: ${formatLatencies(toMesh)}`);
    log(`${bench.changeLabel} → sidecar ACKed: ${formatLatencies(toProxy)}`);
    log(`registry changes during the measured changes: ${paths.incremental} health-only (incremental), ${paths.full} full`);
    const body = bench.report(registry, { services, perService, changes, before, after, firstSyncMs, proxySyncMs: sidecar.firstSyncMs, toMesh, toProxy, paths });
    if (record) {
      writeSection(bench.sectionTitle, body);
      log(`written to ${BENCHMARKS_FILE}`);
    }
  } finally {
    await proxy?.close();
    await cp?.close();
    await registry?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
