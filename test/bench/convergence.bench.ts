// Control-plane convergence benchmark (issue 2): how long a rule change takes to
// reach every proxy of the local mesh. It starts the mesh as users do
// (`jibe up`, BookInfo: 6 sidecars + the ingress gateway), applies a change the
// way `jibe apply` does, and measures from sending the apply until every proxy
// has ACKed the new mesh version — and, from the data plane's side, until the
// chosen sidecars' admin /config_dump carries the new weights.
//
// Each change flips the reviews VirtualService between two weight splits, so
// every apply is a real change that every sidecar must receive.

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { parseDocuments, type ParsedDocument } from '../../core/config/load-documents.ts';
import { freePort, onInterrupt, startProcess, type ManagedProcess } from './bench-processes.ts';
import { gitRevision, machineDescription, writeSection, BENCHMARKS_FILE } from './benchmarks-md.ts';
import { REPO_ROOT } from '../peers/paths.ts';
import { percentile } from './latency-percentiles.ts';

export const name = 'convergence';
export const description = 'rule change → every proxy of the local mesh (jibe up, 7 proxies) ACKed, p50/p90/p99 (issue 2)';
export const SECTION_TITLE = 'Control-plane convergence (issue 2)';

const JIBE_JS = join(REPO_ROOT, 'dist', 'cli', 'jibe.js');
const DISCOVERY_SERVER_SOURCE = join(REPO_ROOT, 'core', 'discovery', 'discovery-server.ts');
/** The issue's target: a rule change reaches every proxy in under this. */
const GOAL_MS = 1000;
const READY_LINE = 'Press Ctrl-C';
const READY_TIMEOUT_MS = 90_000;
const STOP_GRACE_MS = 20_000;
/** The two splits the reviews VirtualService alternates between: [v1, v3] weights. */
const SPLITS: ReadonlyArray<readonly [number, number]> = [[80, 20], [20, 80]];
const REVIEWS_HOST = 'reviews.default.svc.cluster.local';

interface Options {
  changes: number;
  warmups: number;
  pollMs: number;
  gapMs: number;
  timeoutMs: number;
  dataplane: string[];
  write: boolean;
  keepTemp: boolean;
}

interface ProxyRow {
  id: string;
  type: string;
  workload?: string;
  syncedVersion?: string;
  lastSentVersion?: string;
  pending: boolean;
  pushes: number;
}

interface ProxiesAnswer {
  version: string;
  proxies: ProxyRow[];
}

interface Sidecar {
  workload: string;
  adminPort: number;
}

interface Mesh {
  process: ManagedProcess;
  server: string;
  sidecars: Sidecar[];
  /** Last lines `jibe up` printed, for error messages. */
  output(): string;
}

interface ChangeResult {
  /** Sending the apply → the API's answer (validation + durable write). */
  applyMs: number;
  /** Sending the apply → the first /api/v1/proxies answer with every proxy synced to the new version. */
  ackedMs: number;
  /** Per data-plane sidecar: sending the apply → its /config_dump shows the new weights. */
  dataplaneMs: Map<string, number>;
  version: string;
}

function log(line: string): void {
  process.stdout.write(`[convergence] ${line}\n`);
}

function positiveInt(value: string | undefined, fallback: number, flag: string, min = 1): number {
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < min) throw new Error(`${flag}: expected an integer ≥ ${min}, got '${value}'`);
  return parsed;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      changes: { type: 'string' },
      warmups: { type: 'string' },
      'poll-ms': { type: 'string' },
      'gap-ms': { type: 'string' },
      'timeout-ms': { type: 'string' },
      dataplane: { type: 'string' },
      smoke: { type: 'boolean', default: false },
      write: { type: 'boolean' },
      'no-write': { type: 'boolean' },
      'keep-temp': { type: 'boolean', default: false },
    },
    strict: true,
  });
  const changes = positiveInt(values.changes, values.smoke ? 6 : 30, '--changes');
  const dataplane = (values.dataplane ?? 'productpage-v1').split(',').map((s) => s.trim()).filter((s) => s !== '' && s !== 'none');
  return {
    changes,
    warmups: positiveInt(values.warmups, 2, '--warmups', 0),
    pollMs: positiveInt(values['poll-ms'], 5, '--poll-ms'),
    gapMs: positiveInt(values['gap-ms'], 500, '--gap-ms', 0),
    timeoutMs: positiveInt(values['timeout-ms'], 15_000, '--timeout-ms'),
    dataplane,
    // A short run is a sanity check, not a figure worth recording.
    write: values['no-write'] ? false : (values.write ?? (!values.smoke && changes >= 30)),
    keepTemp: values['keep-temp'],
  };
}

/** The reviews VirtualService as a user would write it, parsed exactly as `jibe apply -f` parses files. */
function reviewsSplit([v1, v3]: readonly [number, number]): ParsedDocument[] {
  const yaml = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
        subset: v1
      weight: ${v1}
    - destination:
        host: reviews
        subset: v3
      weight: ${v3}
`;
  return parseDocuments(yaml, `virtual-service-reviews-${v1}-${v3}-v3.yaml`);
}

// One connection per endpoint would be ideal; fetch keeps connections alive,
// which is enough for polling at a few hundred requests a second.
async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}: ${text.slice(0, 300)}`);
  return JSON.parse(text) as T;
}

async function applyDocuments(server: string, documents: ParsedDocument[]): Promise<string[]> {
  const res = await fetch(`${server}/api/v1/config/apply`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ documents }),
    signal: AbortSignal.timeout(30_000),
  });
  const payload = (await res.json().catch(() => ({}))) as { results?: Array<{ resource: string; action: string }>; error?: { code?: string; message?: string } };
  if (!res.ok) throw new Error(`apply refused: HTTP ${res.status} ${payload.error?.code ?? ''} ${payload.error?.message ?? ''}`);
  return (payload.results ?? []).map((r) => `${r.resource} ${r.action}`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Reads the admin ports of the sidecars from `jibe up`'s table (WORKLOAD … ADMIN). */
export function parseWorkloadTable(output: string): Sidecar[] {
  const lines = output.split('\n');
  const header = lines.findIndex((line) => /^WORKLOAD\s/.test(line) && /\sADMIN\s*$/.test(line));
  if (header === -1) return [];
  const sidecars: Sidecar[] = [];
  for (const line of lines.slice(header + 1)) {
    if (line.trim() === '') break;
    const fields = line.trim().split(/\s+/);
    const admin = /^:(\d+)$/.exec(fields[fields.length - 1] ?? '');
    if (!admin) throw new Error(`cannot read the admin port from jibe up's table row '${line}'`);
    sidecars.push({ workload: fields[0], adminPort: Number(admin[1]) });
  }
  return sidecars;
}

async function startMesh(dataDir: string): Promise<Mesh> {
  if (!existsSync(JIBE_JS)) throw new Error(`${JIBE_JS} is missing: build first (\`npm run bench\` runs \`npm run build\`)`);
  const [gatewayPort, discoveryPort, apiPort] = [await freePort(), await freePort(), await freePort()];
  let stdout = '';
  let sawReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => (sawReady = resolve));
  const args = [JIBE_JS, 'up', '--data-dir', dataDir, '--gateway-port', String(gatewayPort), '--discovery-port', String(discoveryPort), '--api-port', String(apiPort)];
  log(`starting: node ${args.map((a) => a.replace(`${REPO_ROOT}/`, '')).join(' ')}`);
  const up = startProcess({
    name: 'jibe up',
    command: process.execPath,
    args,
    cwd: REPO_ROOT,
    onStdout: (chunk) => {
      stdout += chunk;
      if (stdout.includes(READY_LINE)) sawReady();
    },
  });
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    ready.then(() => 'ready' as const),
    up.exited.then((code) => `exited (${code})`),
    new Promise<string>((resolve) => (timer = setTimeout(() => resolve(`not ready after ${READY_TIMEOUT_MS / 1000} s`), READY_TIMEOUT_MS))),
  ]);
  clearTimeout(timer);
  if (outcome !== 'ready') throw new Error(`jibe up ${outcome} before printing '${READY_LINE}'; logs in ${join(dataDir, 'logs')}; its output ends with:\n${up.output()}`);
  const sidecars = parseWorkloadTable(stdout);
  if (sidecars.length === 0) throw new Error(`jibe up printed no workload table:\n${stdout}`);
  return { process: up, server: `http://127.0.0.1:${apiPort}`, sidecars, output: () => up.output() };
}

/** SIGINT as a user's Ctrl-C; then whatever is left of its process group is killed. */
async function stopMesh(mesh: Mesh): Promise<void> {
  const { pid } = mesh.process;
  try {
    process.kill(pid, 'SIGINT');
  } catch {
    // Already gone.
  }
  let timer: NodeJS.Timeout | undefined;
  const stopped = await Promise.race([
    mesh.process.exited.then(() => true),
    new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), STOP_GRACE_MS))),
  ]);
  clearTimeout(timer);
  if (!stopped) log(`jibe up did not stop within ${STOP_GRACE_MS / 1000} s of SIGINT; killing its process group`);
  // stop() also kills anything of the group that outlived `jibe up` itself.
  await mesh.process.stop();
  if (groupAlive(pid)) {
    await sleep(500);
    if (groupAlive(pid)) throw new Error(`processes of jibe up's group ${pid} are still running after SIGKILL`);
  }
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Every expected proxy runs the control plane's current version and has nothing in flight. */
function settled(answer: ProxiesAnswer, expected: number): boolean {
  return answer.proxies.length === expected && answer.proxies.every((p) => p.syncedVersion === answer.version && !p.pending);
}

// The mesh version moves when the control plane has rebuilt its snapshot, which
// may be after the apply's answer: until then the old version is "synced" too.
function converged(answer: ProxiesAnswer, before: string, expected: number): boolean {
  return answer.version !== before && settled(answer, expected);
}

/** The [v1, v3] weights of the reviews route in a proxy's config dump, or undefined if it has none. */
function reviewsWeights(dump: { resources?: Array<{ type: string; virtualHosts?: Array<{ name: string; routes: Array<{ action: { clusters?: Array<{ cluster: string; weight: number }> } }> }> }> }): string | undefined {
  for (const resource of dump.resources ?? []) {
    if (resource.type !== 'route') continue;
    for (const host of resource.virtualHosts ?? []) {
      if (!host.name.startsWith(`${REVIEWS_HOST}:`)) continue;
      const clusters = host.routes[0]?.action.clusters ?? [];
      const weight = (subset: string) => clusters.find((c) => c.cluster.split('|')[2] === subset)?.weight ?? 0;
      return `${weight('v1')}/${weight('v3')}`;
    }
  }
  return undefined;
}

/** Polls until `done` answers true; returns ms since `start` at the answer that said so. */
async function pollUntil(start: number, options: Options, what: string, done: () => Promise<boolean>): Promise<number> {
  const deadline = start + options.timeoutMs;
  for (;;) {
    const sent = performance.now();
    if (await done()) return performance.now() - start;
    const now = performance.now();
    if (now > deadline) throw new Error(`timed out after ${options.timeoutMs} ms waiting for ${what}`);
    await sleep(Math.max(0, options.pollMs - (now - sent)));
  }
}

async function measureChange(mesh: Mesh, options: Options, split: readonly [number, number], expectedProxies: number, dataplane: Sidecar[]): Promise<ChangeResult> {
  const documents = reviewsSplit(split);
  const wanted = `${split[0]}/${split[1]}`;
  const before = await getJson<ProxiesAnswer>(`${mesh.server}/api/v1/proxies`);
  if (!settled(before, expectedProxies)) {
    throw new Error(`the mesh was not settled before the change: ${JSON.stringify(before.proxies.map((p) => [p.id, p.syncedVersion, p.pending]))} (version ${before.version})`);
  }
  const pushesBefore = new Map(before.proxies.map((p) => [p.id, p.pushes]));

  const start = performance.now();
  let applyMs = 0;
  const applied = applyDocuments(mesh.server, documents).then((results) => {
    applyMs = performance.now() - start;
    return results;
  });
  let last: ProxiesAnswer = before;
  const acked = pollUntil(start, options, `every proxy to ACK the change to ${wanted}`, async () => {
    last = await getJson<ProxiesAnswer>(`${mesh.server}/api/v1/proxies`);
    return converged(last, before.version, expectedProxies);
  });
  const dataplaneDone = dataplane.map((sidecar) =>
    pollUntil(start, options, `${sidecar.workload}'s /config_dump to show reviews ${wanted}`, async () => {
      const dump = await getJson<Parameters<typeof reviewsWeights>[0]>(`http://127.0.0.1:${sidecar.adminPort}/config_dump`);
      return reviewsWeights(dump) === wanted;
    }).then((ms) => [sidecar.workload, ms] as const),
  );
  const [results, ackedMs, dataplaneMs] = await Promise.all([applied, acked, Promise.all(dataplaneDone)]).catch((error: unknown) => {
    throw new Error(`${error instanceof Error ? error.message : String(error)}; last proxy status: ${JSON.stringify(last)}; jibe up output ends with:\n${mesh.output().slice(-2000)}`);
  });
  if (!results.some((r) => r.startsWith('VirtualService/default/reviews '))) throw new Error(`the apply did not touch the reviews VirtualService: ${results.join(', ')}`);

  // A version bump from something else would make the ACK check pass early:
  // every sidecar carries the reviews route, so each must have been pushed.
  const unpushed = last.proxies.filter((p) => p.type === 'sidecar' && p.pushes <= (pushesBefore.get(p.id) ?? Infinity)).map((p) => p.id);
  if (unpushed.length > 0) throw new Error(`version ${last.version} was ACKed but these sidecars got no push for the change: ${unpushed.join(', ')}`);
  return { applyMs, ackedMs, dataplaneMs: new Map(dataplaneMs), version: last.version };
}

interface Summary {
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

function summarize(values: number[]): Summary {
  const sorted = [...values].sort((a, b) => a - b);
  return { p50: percentile(sorted, 50), p90: percentile(sorted, 90), p99: percentile(sorted, 99), max: sorted[sorted.length - 1] };
}

function ms(value: number): string {
  return value.toFixed(1);
}

/** The push debouncer's defaults as the discovery server sets them (they set the floor of every figure here). */
function debounceDefaults(): { quietMs: number; capMs: number } | undefined {
  try {
    const source = readFileSync(DISCOVERY_SERVER_SOURCE, 'utf8');
    const match = /new PushDebouncer\([^,]+,\s*options\.debounceMs \?\? (\d+),\s*options\.maxDebounceMs \?\? (\d+)\)/.exec(source);
    if (match) return { quietMs: Number(match[1]), capMs: Number(match[2]) };
  } catch {
    // Reported as unknown by the caller.
  }
  return undefined;
}


export async function run(argv: string[]): Promise<void> {
  const options = parseOptions(argv);
  const dataDir = mkdtempSync(join(tmpdir(), 'jibe-bench-convergence-'));
  const removeTemp = (): void => {
    if (options.keepTemp) log(`data dir kept in ${dataDir}`);
    else rmSync(dataDir, { recursive: true, force: true });
  };
  const forgetInterrupt = onInterrupt(removeTemp);
  let mesh: Mesh | undefined;
  let failed = true;
  try {
    const loadBefore = loadavg()[0];
    log(`load average (1 min) ${loadBefore.toFixed(2)}`);
    mesh = await startMesh(dataDir);
    const expectedProxies = mesh.sidecars.length + 1;
    const dataplane = options.dataplane.map((workload) => {
      const sidecar = mesh!.sidecars.find((s) => s.workload === workload);
      if (!sidecar) throw new Error(`--dataplane ${workload}: no such workload; jibe up started ${mesh!.sidecars.map((s) => s.workload).join(', ')}`);
      return sidecar;
    });
    log(`mesh up: ${mesh.sidecars.length} sidecars + gateway, API ${mesh.server}; data-plane check on ${dataplane.map((s) => `${s.workload} (admin :${s.adminPort})`).join(', ') || 'none'}`);

    const started = new Date();
    const warmups: number[] = [];
    const results: ChangeResult[] = [];
    for (let i = 0; i < options.warmups + options.changes; i++) {
      const split = SPLITS[i % SPLITS.length];
      const result = await measureChange(mesh, options, split, expectedProxies, dataplane);
      const label = i < options.warmups ? `warm-up ${i + 1}` : `change ${i - options.warmups + 1}/${options.changes}`;
      const dp = [...result.dataplaneMs].map(([w, t]) => `${w} ${ms(t)} ms`).join(', ');
      log(`${label}: reviews ${split[0]}/${split[1]} (version ${result.version}) apply ${ms(result.applyMs)} ms, all ${expectedProxies} proxies ACKed ${ms(result.ackedMs)} ms${dp ? `, config_dump ${dp}` : ''}`);
      if (i < options.warmups) warmups.push(result.ackedMs);
      else results.push(result);
      await sleep(options.gapMs);
    }
    const loadAfter = loadavg()[0];

    const acked = summarize(results.map((r) => r.ackedMs));
    const apply = summarize(results.map((r) => r.applyMs));
    const met = acked.max < GOAL_MS;
    const rows = [
      `| all ${expectedProxies} proxies ACKed (primary) | ${results.length} | ${ms(acked.p50)} | ${ms(acked.p90)} | ${ms(acked.p99)} | ${ms(acked.max)} | ${met ? 'met' : 'missed'} |`,
      ...dataplane.map((sidecar) => {
        const s = summarize(results.map((r) => r.dataplaneMs.get(sidecar.workload) ?? NaN));
        return `| ${sidecar.workload} /config_dump shows the new weights | ${results.length} | ${ms(s.p50)} | ${ms(s.p90)} | ${ms(s.p99)} | ${ms(s.max)} | ${s.max < GOAL_MS ? 'met' : 'missed'} |`;
      }),
      `| apply answered (validate + durable write) | ${results.length} | ${ms(apply.p50)} | ${ms(apply.p90)} | ${ms(apply.p99)} | ${ms(apply.max)} | – |`,
    ];
    const table = ['| Measured from sending the apply to | Changes | p50 ms | p90 ms | p99 ms | max ms | Target < 1 s |', '|---|---:|---:|---:|---:|---:|---|', ...rows].join('\n');
    const debounce = debounceDefaults();
    const debounceText = debounce ? `quiet period ${debounce.quietMs} ms, cap ${debounce.capMs} ms` : 'unknown: see core/discovery/discovery-server.ts';
    const rest = debounce ? acked.p50 - apply.p50 - debounce.quietMs : NaN;
    const analysis =
      `Analysis: target < 1 s ${met ? 'met' : 'missed'} (max ${ms(acked.max)} ms over ${results.length} changes). ` +
      `The floor is the discovery server's push debouncer (core/discovery/push-debouncer.ts; defaults set in discovery-server.ts, which the control plane keeps: ${debounceText}): ` +
      `a change is pushed no sooner than one quiet period after the config store announced it. ` +
      (debounce
        ? `Roughly, the p50 of ${ms(acked.p50)} ms = ${ms(apply.p50)} ms until the apply is answered (validation, durable write) + ${debounce.quietMs} ms quiet period + ${ms(rest)} ms for the snapshot rebuild, per-proxy diff, push, apply in each proxy, the ACKs and the polling resolution. `
        : '') +
      `The cap only bounds changes that keep arriving faster than the quiet period; here they are ${options.gapMs} ms apart, so it does not come into play. ` +
      `Warm-up changes (not in the table; the first creates the VirtualService): ${warmups.map((w) => `${ms(w)} ms`).join(', ') || 'none'}.`;
    process.stdout.write(`\n${table}\n\n${analysis}\n`);

    if (!options.write) {
      log('not written to BENCHMARKS.md (shortened run; pass --write to record it)');
    } else {
      const command = `npm run bench -- ${[name, ...argv].join(' ')}`.trimEnd();
      const body = [
        `Command: \`${command}\``,
        '',
        `Date: ${started.toISOString().replace(/\.\d+Z$/, 'Z')} · machine: ${machineDescription()} · Node ${process.version} · commit ${gitRevision()} · load average (1 min) ${loadBefore.toFixed(2)} before, ${loadAfter.toFixed(2)} after`,
        '',
        `Setup: \`jibe up\` (control plane, BookInfo: ${mesh.sidecars.length} sidecars, ingress gateway — ${expectedProxies} proxies) started from dist/ on free ports with a temp data dir; ` +
          `${options.warmups} warm-up changes, then ${results.length} changes ${options.gapMs} ms apart, each a POST /api/v1/config/apply (as \`jibe apply\`) that flips the reviews VirtualService between ` +
          `${SPLITS.map(([a, b]) => `${a}/${b}`).join(' and ')} (v1/v3). "ACKed": the first GET /api/v1/proxies (polled every ${options.pollMs} ms) where the mesh version has moved on and every proxy reports ` +
          `\`syncedVersion === version\` and \`pending === false\` (each sidecar is also checked to have been pushed). ` +
          `${dataplane.length > 0 ? `Data plane: ${dataplane.map((s) => s.workload).join(', ')}'s admin /config_dump polled every ${options.pollMs} ms until the reviews route carries the new weights. ` : ''}` +
          `Times are taken when the answer that showed it arrived, so they include up to one poll interval plus one round trip. p99 is nearest-rank: with fewer than 100 changes it is the max.`,
        '',
        table,
        '',
        analysis,
      ].join('\n');
      // writeSection re-reads the file now, so sections others rewrote meanwhile are kept.
      writeSection(SECTION_TITLE, body);
      log(`written to ${BENCHMARKS_FILE}`);
    }
    failed = false;
  } finally {
    if (mesh) {
      log('stopping the mesh (SIGINT)');
      await stopMesh(mesh);
    }
    forgetInterrupt();
    if (failed && !options.keepTemp) log(`run failed; the mesh's logs are kept in ${join(dataDir, 'logs')}`);
    else removeTemp();
  }
}
