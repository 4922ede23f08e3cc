// Issue 9's latency figure: the mixed path k8s → VM → Consul against the same
// chain on one platform, side by side. Two BookInfo meshes run at once (the
// harness of the three-platform e2e test, test/e2e/fixtures/bookinfo-mesh.ts),
// each with its own control plane, API server and Consul agent:
//   mixed           gateway → productpage (k8s pod) → reviews-v3 (VM, capture) → ratings (Consul, sidecar on the host)
//   all-kubernetes  gateway → productpage (pod)     → reviews-v3 (pod)         → ratings (pod)
// Every request to reviews goes to v3 (virtual-service-reviews-v3.yaml), so each
// page crosses gateway + 3 sidecar pairs over mTLS; details (a WorkloadEntry,
// no sidecar) is on the page in both. fortio loads each gateway in turn,
// rounds interleaved, and the figure is the median of the rounds' percentiles.
// Needs root (network namespaces, iptables) and the etcd, kube-apiserver,
// consul and fortio peers.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ALL_KUBERNETES, MIXED, bookinfoMeshProblem, startBookinfoMesh } from '../e2e/fixtures/bookinfo-mesh.ts';
import type { BookinfoMesh, Placement } from '../e2e/fixtures/bookinfo-mesh.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { BOOKINFO_NETWORKING_DIR } from '../../deploy/samples/bookinfo/bookinfo.ts';
import { requirePeerBinary } from '../peers/paths.ts';
import { machineDescription, writeSection } from './benchmarks-md.ts';
import { median } from './latency-percentiles.ts';
import { PERCENTILES, runLoad } from './fortio.ts';
import type { LoadResult } from './fortio.ts';

export const name = 'mixed-path';
export const description = 'BookInfo page latency, k8s → VM → Consul vs the same chain all on Kubernetes, side by side through the ingress gateway (issue 9)';

const log = (line: string) => process.stdout.write(`[mixed-path] ${line}\n`);
const PATHS: Array<{ key: string; label: string; placement: Placement; prefix: string }> = [
  { key: 'mixed', label: 'mixed: productpage (k8s) → reviews-v3 (VM) → ratings (Consul)', placement: MIXED, prefix: '100.72.10' },
  { key: 'kubernetes', label: 'one platform: productpage → reviews-v3 → ratings, all k8s pods', placement: ALL_KUBERNETES, prefix: '100.72.11' },
];

const ms = (seconds: number | undefined) => (seconds === undefined ? NaN : seconds * 1000);

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      smoke: { type: 'boolean', default: false },
      rounds: { type: 'string' },
      duration: { type: 'string' },
      qps: { type: 'string', default: '20' },
      connections: { type: 'string', default: '4' },
    },
    strict: true,
  });
  const problem = bookinfoMeshProblem();
  if (problem) throw new Error(`the mixed-path benchmark cannot run here: ${problem}`);
  const fortio = requirePeerBinary('fortio');
  const rounds = Number(values.rounds ?? (values.smoke ? 1 : 5));
  const durationSeconds = Number(values.duration ?? (values.smoke ? 5 : 30));
  const qps = Number(values.qps);
  const connections = Number(values.connections);
  const command = `node_modules/.bin/node test/bench/run.ts mixed-path${argv.length ? ` ${argv.join(' ')}` : ''}`;

  const cleanups: Array<() => unknown> = [];
  const defer = (fn: () => unknown) => cleanups.push(fn);
  const dir = mkdtempSync(join(tmpdir(), 'jibe-bench-mixed-'));
  const results = new Map<string, LoadResult[]>(PATHS.map((p) => [p.key, []]));
  try {
    const meshes = new Map<string, BookinfoMesh>();
    for (const p of PATHS) {
      log(`starting the ${p.key} mesh`);
      const mesh = await startBookinfoMesh(defer, { prefix: p.prefix, placement: p.placement });
      await mesh.applyYaml(readFileSync(join(BOOKINFO_NETWORKING_DIR, 'virtual-service-reviews-v3.yaml'), 'utf8'));
      await waitFor(mesh.converged, `the ${p.key} mesh to ACK reviews → v3`, 60_000);
      // Every page through v3: the chain under test, checked before measuring it.
      await waitFor(async () => {
        const html = await (await fetch(`${mesh.gateway}/productpage`, { signal: AbortSignal.timeout(10_000) })).text();
        return html.includes('Reviews served by: reviews-v3') && html.includes('&#9733;');
      }, `the ${p.key} page to come from reviews-v3 with ratings`, 60_000);
      meshes.set(p.key, mesh);
    }
    const url = (key: string) => `${meshes.get(key)!.gateway}/productpage`;
    // Warm-up: connections, JIT, certificates' first handshakes.
    for (const p of PATHS) await runLoad(fortio, { url: url(p.key), connections, qps, durationSeconds: 3, cpus: '0-1', jsonFile: join(dir, `warm-${p.key}.json`) });
    for (let round = 0; round < rounds; round++) {
      for (const p of round % 2 === 0 ? PATHS : [...PATHS].reverse()) {
        const result = await runLoad(fortio, { url: url(p.key), connections, qps, durationSeconds, uniform: true, resolution: 0.0001, cpus: '0-1', jsonFile: join(dir, `${p.key}-${round}.json`) });
        results.get(p.key)!.push(result);
        log(`round ${round + 1} ${p.key}: ${result.actualQps.toFixed(1)} qps, ${result.errors} errors, ${PERCENTILES.map((q) => `p${q} ${ms(result.percentiles.get(q)).toFixed(1)} ms`).join(', ')}`);
      }
    }
  } finally {
    for (const fn of cleanups.reverse()) await Promise.resolve().then(fn).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }

  const row = (key: string) => {
    const list = results.get(key)!;
    const pct = PERCENTILES.map((q) => median(list.map((r) => ms(r.percentiles.get(q)))));
    return { pct, qps: median(list.map((r) => r.actualQps)), errors: list.reduce((n, r) => n + r.errors, 0), requests: list.reduce((n, r) => n + r.requests, 0) };
  };
  const range = (key: string, q: number) => {
    const v = results.get(key)!.map((r) => ms(r.percentiles.get(q)));
    return `${Math.min(...v).toFixed(1)}–${Math.max(...v).toFixed(1)} ms`;
  };
  const mixed = row('mixed');
  const single = row('kubernetes');
  const lines = PATHS.map((p) => {
    const r = p.key === 'mixed' ? mixed : single;
    return `| ${p.label} | ${r.pct.map((v) => v.toFixed(1)).join(' | ')} | ${r.qps.toFixed(1)} | ${r.errors} / ${r.requests} |`;
  });
  const uptime = execFileSync('uptime', { encoding: 'utf8' }).trim();
  const body = `Command: \`${command}\` (${new Date().toISOString().slice(0, 10)}; ${machineDescription()}; \`uptime\` at the end: ${uptime}).

Two BookInfo meshes side by side (test/e2e/fixtures/bookinfo-mesh.ts, the harness of test/e2e/bookinfo-three-platforms.test.ts), each with its own \`jibe control-plane --platforms vm,consul,kubernetes\`, kube-apiserver + etcd and Consul dev agent; reviews pinned to v3, so each page is gateway → productpage → reviews-v3 → ratings (plus details, a WorkloadEntry without sidecar, in both), every sidecar hop mTLS. Kubernetes pods are network namespaces with the app and \`jibe proxy\` (explicit outbound port); the VM is a namespace joined with \`jibe agent join\` (iptables capture); ratings in Consul has its sidecar on the host. fortio \`load -c ${connections} -qps ${qps} -uniform -r 0.0001 -t ${durationSeconds}s\` on the gateway's \`/productpage\`, ${rounds} round(s) per path interleaved (order alternating), after a 3 s warm-up each; medians of the rounds' percentiles. Nothing is pinned: both meshes share the 2 cores with each other and with other work, so compare the two rows, not absolute numbers.

| Path | p50 ms | p90 ms | p99 ms | qps | errors / requests |
| --- | --- | --- | --- | --- | --- |
${lines.join('\n')}

Mixed minus one platform: p50 ${(mixed.pct[0] - single.pct[0]).toFixed(1)} ms, p90 ${(mixed.pct[1] - single.pct[1]).toFixed(1)} ms, p99 ${(mixed.pct[2] - single.pct[2]).toFixed(1)} ms. Per-round ranges: ${PATHS.map((p) => `${p.key} p50 ${range(p.key, 50)}, p99 ${range(p.key, 99)}`).join('; ')} — where the ranges overlap, the difference is the shared machine's, not the platforms'.
`;
  process.stdout.write(`\n${body}\n`);
  if (values.smoke) {
    log('smoke run: not recorded in BENCHMARKS.md');
    return;
  }
  writeSection('Mixed-platform path: k8s → VM → Consul vs one platform (issue 9)', body);
  log('recorded in BENCHMARKS.md');
}
