// The Consul platform registry: Consul's catalog and health, followed with
// blocking queries, as services and workloads of the mesh.
//
// Two blocking queries per datacenter tell what changed, whatever the catalog's
// size. `/v1/health/state/any?filter=Status != "passing"` carries only failing
// checks, so a health flap costs a small answer even with 10,000 instances; its
// diff names the services to reread. `/v1/catalog/services` wakes when instances
// come, go or move: its names and tags, plus one read of every check, say which
// services changed. Only those are read again (`/v1/health/service/<name>`, with
// bounded concurrency). Instances without checks are invisible to the check diff,
// so a catalog change nothing explains rereads every service at once, and any
// other catalog change is followed by a full reread once the catalog has been
// quiet for 2 s (bursts cost one); so do a periodic resync and every recovery.
//
// Failure: a loop that errors backs off with jitter and never spins; the mesh
// keeps the last view while Consul is away (proxies keep their endpoints) and
// resynchronizes in full when it answers again. A Consul restarted empty
// (indexes going backwards) is read afresh too.
import { isDeepStrictEqual } from 'node:util';
import type { Service } from '../../core/model/service.ts';
import type { Workload } from '../../core/model/workload.ts';
import type { PlatformRegistry, RegistryEvent } from '../../core/registry/platform-registry.ts';
import { DEFAULT_BACKOFF, backoffDelay, nextIndex, sleep } from './consul-backoff.ts';
import type { BackoffOptions } from './consul-backoff.ts';
import { pathSegment } from './consul-client.ts';
import type { ConsulClient } from './consul-client.ts';
import { isJibeSidecar, sidecarKey, toService } from './consul-converters.ts';
import type { ConsulConvertOptions, ConsulProblem, ConvertedService } from './consul-converters.ts';
import type { ConsulCheck, ConsulHealthEntry, ConsulServiceList } from './consul-types.ts';

/** The slice of pino's logger the registry uses. */
export interface RegistryLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface ConsulRegistryOptions {
  convert: ConsulConvertOptions;
  /** Datacenters to follow; empty = the agent's own. Several make one multi-DC view (datacenter = locality region). */
  datacenters?: string[];
  /** How long one blocking query may wait (Consul caps it at 10 min). */
  waitMs?: number;
  backoff?: BackoffOptions;
  /** Least time between two queries of one loop: Consul's advice against hot loops on busy catalogs. */
  minIntervalMs?: number;
  /** Services read in parallel during a refresh. */
  concurrency?: number;
  /** Full reread now and then, as a safety net; 0 = never. */
  resyncIntervalMs?: number;
  /** Quiet time after a catalog change before the full reread that catches instances without checks. */
  catalogSettleMs?: number;
  /** Consul service names that are not mesh services (Consul's own server service by default). */
  ignoreServices?: string[];
  logger?: RegistryLogger;
}

interface Datacenter {
  /** `dc` query parameter; undefined = the agent's datacenter. */
  dc: string | undefined;
  label: string;
  tags: ConsulServiceList;
  entries: Map<string, ConsulHealthEntry[]>;
  /** Destination service name → sidecar service names that front its instances. */
  sidecarsFor: Map<string, Set<string>>;
  /** Fingerprints of every check (read on catalog changes) and of the failing ones (the health loop). */
  allChecks: CheckPrints;
  failingChecks: CheckPrints;
  pending: { names: Set<string>; full: boolean };
  running: Promise<void> | undefined;
  settleTimer: NodeJS.Timeout | undefined;
}

/** Consul service name → fingerprint of its checks; node name → fingerprint of its node checks. */
interface CheckPrints {
  services: Map<string, string>;
  nodes: Map<string, string>;
}

/** Consul's filter for the health loop: only failing checks travel, however large the catalog. */
const FAILING = 'Status != "passing"';

const NOOP_LOGGER: RegistryLogger = { debug() {}, info() {}, warn() {} };

export class ConsulRegistry implements PlatformRegistry {
  readonly platform = 'consul' as const;
  private readonly client: ConsulClient;
  private readonly options: Required<Omit<ConsulRegistryOptions, 'datacenters' | 'logger'>>;
  private readonly logger: RegistryLogger;
  private readonly datacenters: Datacenter[];
  private readonly abort = new AbortController();
  private readonly loops: Promise<void>[] = [];
  private listener: ((events: RegistryEvent[]) => void) | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;

  /** What the mesh has been told: contributions per (datacenter, Consul service), and their merge. */
  private readonly contributions = new Map<string, ConvertedService>();
  private readonly hostContributions = new Map<string, Set<string>>();
  private readonly services = new Map<string, Service>();
  private readonly workloads = new Map<string, Workload>();
  private readonly reported = new Map<string, Set<string>>();

  constructor(client: ConsulClient, options: ConsulRegistryOptions) {
    this.client = client;
    this.logger = options.logger ?? NOOP_LOGGER;
    this.options = {
      convert: options.convert,
      waitMs: options.waitMs ?? 60_000,
      backoff: options.backoff ?? DEFAULT_BACKOFF,
      minIntervalMs: options.minIntervalMs ?? 50,
      concurrency: options.concurrency ?? 16,
      resyncIntervalMs: options.resyncIntervalMs ?? 300_000,
      catalogSettleMs: options.catalogSettleMs ?? 2_000,
      ignoreServices: options.ignoreServices ?? ['consul'],
    };
    const dcs = options.datacenters?.length ? options.datacenters : [undefined];
    this.datacenters = dcs.map((dc) => ({
      dc,
      label: dc ?? 'local',
      tags: {},
      entries: new Map(),
      sidecarsFor: new Map(),
      allChecks: { services: new Map(), nodes: new Map() },
      failingChecks: { services: new Map(), nodes: new Map() },
      pending: { names: new Set(), full: false },
      running: undefined,
      settleTimer: undefined,
    }));
  }

  /** Reads the whole catalog (failing if Consul cannot be reached), sends it as one sync, then follows changes. */
  async watch(listener: (events: RegistryEvent[]) => void): Promise<void> {
    const initial: { catalog: number; health: number }[] = [];
    for (const dc of this.datacenters) initial.push(await this.readAll(dc));
    this.listener = listener;
    listener([{ kind: 'sync', services: [...this.services.values()], workloads: [...this.workloads.values()] }]);
    this.datacenters.forEach((dc, i) => {
      this.loops.push(this.catalogLoop(dc, initial[i].catalog), this.healthLoop(dc, initial[i].health));
    });
    if (this.options.resyncIntervalMs > 0) {
      this.resyncTimer = setInterval(() => {
        for (const dc of this.datacenters) this.schedule(dc, [], true);
      }, this.options.resyncIntervalMs);
      this.resyncTimer.unref();
    }
  }

  async stop(): Promise<void> {
    this.listener = undefined;
    clearInterval(this.resyncTimer);
    for (const dc of this.datacenters) clearTimeout(dc.settleTimer);
    this.abort.abort();
    await Promise.allSettled([...this.loops, ...this.datacenters.map((dc) => dc.running)]);
  }

  /** Counts for status and benchmarks. */
  size(): { services: number; workloads: number } {
    return { services: this.services.size, workloads: this.workloads.size };
  }

  private get signal(): AbortSignal {
    return this.abort.signal;
  }

  private query(dc: Datacenter): Record<string, string | undefined> {
    return { dc: dc.dc };
  }

  /** Full read of one datacenter; returns the indexes the loops start waiting from. */
  private async readAll(dc: Datacenter): Promise<{ catalog: number; health: number }> {
    const [catalog, health] = await Promise.all([
      this.client.get<ConsulServiceList>('/v1/catalog/services', { query: this.query(dc), signal: this.signal }),
      this.client.get<ConsulCheck[]>('/v1/health/state/any', { query: this.query(dc), signal: this.signal }),
    ]);
    dc.tags = catalog.body ?? {};
    const checks = health.body ?? [];
    this.diffChecks(dc, 'allChecks', checks);
    this.diffChecks(dc, 'failingChecks', checks.filter((c) => c.Status !== 'passing'));
    await this.refreshNames(dc, this.allNames(dc));
    return { catalog: catalog.index ?? 0, health: health.index ?? 0 };
  }

  private async catalogLoop(dc: Datacenter, startIndex: number): Promise<void> {
    await this.follow(dc, '/v1/catalog/services', startIndex, {}, async (body: ConsulServiceList | undefined, resync) => {
      const next = body ?? {};
      const dirty = new Set<string>();
      for (const name of new Set([...Object.keys(next), ...Object.keys(dc.tags)])) {
        if (!isDeepStrictEqual(next[name], dc.tags[name])) dirty.add(name);
      }
      dc.tags = next;
      if (resync) return this.schedule(dc, dirty, true);
      // Instances came, went or moved: their checks say which services (one read of every check, only on catalog changes).
      const checks = await this.client.get<ConsulCheck[]>('/v1/health/state/any', { query: this.query(dc), signal: this.signal });
      for (const name of this.diffChecks(dc, 'allChecks', checks.body ?? [])) dirty.add(name);
      // Instances without checks are invisible to that diff, and a burst of writes arrives as one
      // answer: unless nothing explains the change (then at once), a full read follows once the catalog settles.
      this.schedule(dc, dirty, dirty.size === 0);
      clearTimeout(dc.settleTimer);
      if (dirty.size > 0) {
        dc.settleTimer = setTimeout(() => this.schedule(dc, [], true), this.options.catalogSettleMs);
        dc.settleTimer.unref();
      }
    });
  }

  private async healthLoop(dc: Datacenter, startIndex: number): Promise<void> {
    await this.follow(dc, '/v1/health/state/any', startIndex, { filter: FAILING }, (body: ConsulCheck[] | undefined, resync) => {
      this.schedule(dc, this.diffChecks(dc, 'failingChecks', body ?? []), resync);
    });
  }

  /**
   * One blocking-query loop: waits past the last index, hands each change to
   * `onChange`, backs off on errors, and after an outage or an index reset
   * asks for a full resync.
   */
  private async follow<T>(
    dc: Datacenter,
    path: string,
    startIndex: number,
    query: Record<string, string>,
    onChange: (body: T | undefined, resync: boolean) => void | Promise<void>,
  ): Promise<void> {
    let index = startIndex;
    let failures = 0;
    let resync = false;
    while (!this.signal.aborted) {
      const started = Date.now();
      try {
        const response = await this.client.blockingGet<T>(path, index, this.options.waitMs, { query: { ...this.query(dc), ...query }, signal: this.signal });
        const next = nextIndex(index, response.index);
        if (failures > 0) this.logger.info({ datacenter: dc.label, path }, 'Consul answers again; resynchronizing');
        failures = 0;
        if (next.reset && index > 0) resync = true;
        if (next.index !== index || resync) {
          await onChange(response.body, resync);
          index = next.index;
          resync = false;
        }
        // A reset index reads everything again at once; otherwise pace the loop.
        const elapsed = Date.now() - started;
        if (index > 0 && elapsed < this.options.minIntervalMs && !(await sleep(this.options.minIntervalMs - elapsed, this.signal))) return;
      } catch (err) {
        if (this.signal.aborted) return;
        if (failures === 0) this.logger.warn({ datacenter: dc.label, path, err: (err as Error).message }, 'Consul query failed; keeping the last known services and endpoints');
        // After an outage the state may be anything (a restarted dev agent is empty): read it whole.
        index = 0;
        resync = true;
        if (!(await sleep(backoffDelay(failures++, this.options.backoff), this.signal))) return;
      }
    }
  }

  /** Updates one set of check fingerprints; returns the services whose checks (or whose nodes' checks) changed. */
  private diffChecks(dc: Datacenter, which: 'allChecks' | 'failingChecks', checks: ConsulCheck[]): Set<string> {
    const services = new Map<string, string[]>();
    const nodes = new Map<string, string[]>();
    for (const c of checks) {
      const line = `${c.Node}\u0000${c.ServiceID}\u0000${c.CheckID}\u0000${c.Status}`;
      const [map, key] = c.ServiceName ? [services, c.ServiceName] : [nodes, c.Node];
      const lines = map.get(key);
      if (lines) lines.push(line);
      else map.set(key, [line]);
    }
    const dirty = new Set<string>();
    const diff = (previous: Map<string, string>, next: Map<string, string[]>, changed: (key: string) => void) => {
      const prints = new Map<string, string>();
      for (const [key, lines] of next) prints.set(key, lines.sort().join('\n'));
      for (const key of new Set([...previous.keys(), ...prints.keys()])) if (previous.get(key) !== prints.get(key)) changed(key);
      return prints;
    };
    const previous = dc[which];
    dc[which] = {
      services: diff(previous.services, services, (name) => dirty.add(name)),
      nodes: diff(previous.nodes, nodes, (node) => {
        for (const [name, entries] of dc.entries) if (entries.some((e) => e.Node?.Node === node)) dirty.add(name);
      }),
    };
    return dirty;
  }

  /**
   * Queues names to reread (or everything) and runs one refresh at a time per
   * datacenter; what arrives meanwhile is merged into the next pass.
   */
  private schedule(dc: Datacenter, names: Iterable<string>, full: boolean): void {
    for (const n of names) dc.pending.names.add(n);
    if (full) dc.pending.full = true;
    if (dc.running || this.signal.aborted) return;
    dc.running = this.drain(dc).finally(() => {
      dc.running = undefined;
    });
  }

  private async drain(dc: Datacenter): Promise<void> {
    // Let the other loop's answer for the same raft write arrive, so one change is one pass.
    await sleep(10, this.signal);
    let failures = 0;
    while (!this.signal.aborted && (dc.pending.full || dc.pending.names.size > 0)) {
      const full = dc.pending.full;
      const names = full ? this.allNames(dc) : new Set(dc.pending.names);
      dc.pending = { names: new Set(), full: false };
      try {
        await this.refreshNames(dc, names);
        failures = 0;
      } catch (err) {
        if (this.signal.aborted) return;
        for (const n of names) dc.pending.names.add(n);
        if (full) dc.pending.full = true;
        this.logger.warn({ datacenter: dc.label, err: (err as Error).message }, 'reading services from Consul failed; retrying');
        if (!(await sleep(backoffDelay(failures++, this.options.backoff), this.signal))) return;
      }
    }
  }

  /** Every service of a datacenter: those in the catalog now and those the mesh still has (refreshNames drops ignored ones). */
  private allNames(dc: Datacenter): Set<string> {
    return new Set([...Object.keys(dc.tags), ...dc.entries.keys()]);
  }

  /** Rereads the named services of one datacenter and tells the mesh what changed. */
  private async refreshNames(dc: Datacenter, names: Set<string>): Promise<void> {
    const read = new Map<string, ConsulHealthEntry[]>();
    const list = [...names].filter((n) => !this.options.ignoreServices.includes(n));
    let next = 0;
    const worker = async () => {
      while (next < list.length) {
        const name = list[next++];
        if (dc.tags[name] === undefined) {
          read.set(name, []);
          continue;
        }
        const response = await this.client.get<ConsulHealthEntry[]>(`/v1/health/service/${pathSegment(name)}`, { query: this.query(dc), signal: this.signal });
        read.set(name, Array.isArray(response.body) ? response.body : []);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.options.concurrency, list.length) }, worker));

    // Which services must be converted again: the ones read, and those whose sidecars were.
    const affected = new Set<string>();
    for (const [name, entries] of read) {
      affected.add(name);
      for (const dest of sidecarDestinations(dc.entries.get(name))) {
        affected.add(dest);
        dc.sidecarsFor.get(dest)?.delete(name);
      }
      for (const dest of sidecarDestinations(entries)) {
        affected.add(dest);
        let set = dc.sidecarsFor.get(dest);
        if (!set) dc.sidecarsFor.set(dest, (set = new Set()));
        set.add(name);
      }
      if (entries.length) dc.entries.set(name, entries);
      else dc.entries.delete(name);
    }
    const converted = new Map<string, ConvertedService>();
    for (const name of affected) {
      const sidecars = new Map<string, ConsulHealthEntry>();
      for (const sidecarName of dc.sidecarsFor.get(name) ?? []) {
        for (const e of dc.entries.get(sidecarName) ?? []) {
          if (isJibeSidecar(e) && e.Service.Proxy?.DestinationServiceName === name) sidecars.set(sidecarKey(e.Node.Node, e.Service.Proxy.DestinationServiceID as string), e);
        }
      }
      converted.set(`${dc.label}\u0000${name}`, toService(dc.entries.get(name) ?? [], sidecars, this.options.convert));
    }
    this.publish(converted);
  }

  /** Replaces contributions, then tells the listener exactly what changed in the merged view. */
  private publish(changed: Map<string, ConvertedService>): void {
    const hosts = new Set<string>();
    const workloadEvents: RegistryEvent[] = [];
    for (const [key, next] of changed) {
      const previous = this.contributions.get(key);
      for (const s of previous?.services ?? []) {
        hosts.add(s.hostname);
        this.hostContributions.get(s.hostname)?.delete(key);
      }
      for (const s of next.services) {
        hosts.add(s.hostname);
        let set = this.hostContributions.get(s.hostname);
        if (!set) this.hostContributions.set(s.hostname, (set = new Set()));
        set.add(key);
      }
      const nextKeys = new Set(next.workloads.map((w) => `${w.namespace}/${w.name}`));
      for (const w of previous?.workloads ?? []) {
        const k = `${w.namespace}/${w.name}`;
        if (nextKeys.has(k)) continue;
        this.workloads.delete(k);
        workloadEvents.push({ kind: 'workload', op: 'delete', namespace: w.namespace, name: w.name });
      }
      for (const w of next.workloads) {
        const k = `${w.namespace}/${w.name}`;
        if (isDeepStrictEqual(this.workloads.get(k), w)) continue;
        this.workloads.set(k, w);
        workloadEvents.push({ kind: 'workload', op: 'upsert', workload: w });
      }
      if (next.services.length || next.workloads.length || next.problems.length) this.contributions.set(key, next);
      else this.contributions.delete(key);
      this.report(key, next.problems);
    }
    const serviceUpserts: RegistryEvent[] = [];
    const serviceDeletes: RegistryEvent[] = [];
    for (const host of hosts) {
      const merged = this.mergeHost(host);
      if (!merged) {
        this.hostContributions.delete(host);
        if (this.services.delete(host)) serviceDeletes.push({ kind: 'service', op: 'delete', hostname: host });
      } else if (!isDeepStrictEqual(this.services.get(host), merged)) {
        this.services.set(host, merged);
        serviceUpserts.push({ kind: 'service', op: 'upsert', service: merged });
      }
    }
    const events = [...serviceUpserts, ...workloadEvents, ...serviceDeletes];
    if (events.length && this.listener) this.listener(events);
  }

  /** One host from every datacenter and Consul service that names it: ports are the union. */
  private mergeHost(host: string): Service | undefined {
    let merged: Service | undefined;
    for (const key of [...(this.hostContributions.get(host) ?? [])].sort()) {
      const service = this.contributions.get(key)?.services.find((s) => s.hostname === host);
      if (!service) continue;
      if (!merged) {
        merged = { ...service, ports: [...service.ports] };
        continue;
      }
      for (const p of service.ports) if (!merged.ports.some((q) => q.port === p.port)) merged.ports.push(p);
    }
    merged?.ports.sort((a, b) => a.port - b.port);
    return merged;
  }

  /** Logs each skipped registration once, when it first appears (not on every pass). */
  private report(key: string, problems: ConsulProblem[]): void {
    const before = this.reported.get(key) ?? new Set<string>();
    const now = new Set<string>();
    for (const p of problems) {
      const id = `${p.node}\u0000${p.instance}\u0000${p.message}`;
      now.add(id);
      if (!before.has(id)) this.logger.warn({ service: p.service, instance: p.instance, node: p.node }, `Consul registration skipped: ${p.message}`);
    }
    if (now.size) this.reported.set(key, now);
    else this.reported.delete(key);
  }
}

function sidecarDestinations(entries: ConsulHealthEntry[] | undefined): Set<string> {
  const out = new Set<string>();
  for (const e of entries ?? []) {
    const dest = e.Service?.Proxy?.DestinationServiceName;
    if (isJibeSidecar(e) && dest) out.add(dest);
  }
  return out;
}
