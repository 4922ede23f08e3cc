// What telemetry costs the sidecar (issue 8): the same Jibe sidecar as the
// http-sidecar benchmark (`jibe proxy` fed by `jibe control-plane`, HTTP/1.1
// keep-alive through fortio), once with Istio metrics and JSON access logs on
// and once with both off (`--no-metrics --access-log off`), side by side in
// alternating rounds: max throughput and the latency quantiles at a fixed
// rate. The budget is a throughput cost under 10%.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { peerBinary } from '../peers/paths.ts';
import { machineDescription, writeSection } from './benchmarks-md.ts';
import { loadJsonPath, runLoad, startFortioServer, type LoadResult } from './fortio.ts';
import { startJibeSidecar, type JibeSidecar } from './jibe-sidecar.ts';

export const name = 'telemetry-overhead';
export const description = 'Jibe sidecar with Istio metrics + JSON access logs on vs off: max rps and p50/p90/p99 (issue 8)';

const LOAD_CPUS = '0';
const PROXY_CPUS = '1';
const SECTION = 'Telemetry overhead (issue 8)';
/** A throughput cost above this fails the benchmark's verdict (the budget). */
const BUDGET = 0.1;

const VARIANTS = [
  { name: 'telemetry off', args: ['--no-metrics', '--access-log', 'off', '--metrics-port', 'off'] },
  { name: 'metrics + access log on', args: ['--access-log', 'json', '--metrics-port', 'off'] },
] as const;

interface Measured {
  maxRps: number[];
  latency: LoadResult[];
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

function log(line: string): void {
  process.stdout.write(`[bench] ${line}\n`);
}

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      smoke: { type: 'boolean', default: false },
      rounds: { type: 'string' },
      'throughput-duration': { type: 'string' },
      'latency-duration': { type: 'string' },
      connections: { type: 'string', default: '16' },
      qps: { type: 'string', default: '1000' },
      'no-write': { type: 'boolean', default: false },
    },
  });
  const smoke = values.smoke;
  const rounds = Number(values.rounds ?? (smoke ? 1 : 3));
  const throughputSeconds = Number(values['throughput-duration'] ?? (smoke ? 3 : 15));
  const latencySeconds = Number(values['latency-duration'] ?? (smoke ? 3 : 15));
  const connections = Number(values.connections);
  const qps = Number(values.qps);
  const fortio = peerBinary('fortio');
  if (fortio === undefined) throw new Error('fortio is missing: node test/peers/install.ts fortio');
  const dir = mkdtempSync(join(tmpdir(), 'jibe-bench-telemetry-'));
  const upstream = await startFortioServer(fortio, LOAD_CPUS);
  const sidecars: JibeSidecar[] = [];
  const measured: Measured[] = VARIANTS.map(() => ({ maxRps: [], latency: [] }));
  try {
    for (const variant of VARIANTS) {
      const sidecar = await startJibeSidecar({ upstreamPort: upstream.port, cpus: PROXY_CPUS, controlPlaneCpus: LOAD_CPUS, proxyArgs: [...variant.args] });
      sidecars.push(sidecar);
      log(`${variant.name}: jibe proxy ${variant.args.join(' ')} on 127.0.0.1:${sidecar.port} (core ${PROXY_CPUS})`);
    }
    const url = (s: JibeSidecar): string => `http://127.0.0.1:${s.port}/echo?size=1024`;
    const common = { connections, headers: ['Host: upstream:8080'], cpus: LOAD_CPUS };
    for (let i = 0; i < sidecars.length; i++) {
      await runLoad(fortio, { ...common, qps, url: url(sidecars[i]), durationSeconds: smoke ? 1 : 5, jsonFile: loadJsonPath(dir, `v${i}`, 'warmup', 0) });
    }
    for (let round = 1; round <= rounds; round++) {
      // Alternating within each round, so drift on the shared machine hits both alike.
      for (let i = 0; i < sidecars.length; i++) {
        const max = await runLoad(fortio, { ...common, qps: 0, url: url(sidecars[i]), durationSeconds: throughputSeconds, jsonFile: loadJsonPath(dir, `v${i}`, 'max', round) });
        const fixed = await runLoad(fortio, { ...common, qps, url: url(sidecars[i]), durationSeconds: latencySeconds, resolution: 0.00005, jsonFile: loadJsonPath(dir, `v${i}`, 'latency', round) });
        if (max.errors > 0 || fixed.errors > 0) throw new Error(`${VARIANTS[i].name}: ${max.errors + fixed.errors} requests failed`);
        measured[i].maxRps.push(max.actualQps);
        measured[i].latency.push(fixed);
        log(`round ${round} ${VARIANTS[i].name}: max ${max.actualQps.toFixed(0)} rps; @${qps} rps p50 ${ms(fixed, 50)} p90 ${ms(fixed, 90)} p99 ${ms(fixed, 99)} ms`);
      }
    }
  } finally {
    for (const s of sidecars) {
      await s.process.stop();
      await s.controlPlane?.stop();
    }
    await upstream.process.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const off = median(measured[0].maxRps);
  const on = median(measured[1].maxRps);
  const cost = 1 - on / off;
  const rows = VARIANTS.map((v, i) => {
    const m = measured[i];
    const q = (p: number): string => median(m.latency.map((l) => (l.percentiles.get(p) ?? NaN) * 1000)).toFixed(3);
    const vs = i === 0 ? '—' : `${((median(m.maxRps) / off - 1) * 100).toFixed(1)}%`;
    return `| ${v.name} | \`${v.args.join(' ')}\` | ${median(m.maxRps).toFixed(0)} | ${vs} | ${q(50)} / ${q(90)} / ${q(99)} |`;
  });
  const verdict = cost < BUDGET ? `within the ${BUDGET * 100}% budget` : `OVER the ${BUDGET * 100}% budget`;
  log(`throughput cost of metrics + access log: ${(cost * 100).toFixed(1)}% (${verdict})`);
  if (smoke || values['no-write']) return;
  const uptime = execFileSync('uptime', { encoding: 'utf8' }).trim();
  writeSection(
    SECTION,
    [
      `\`npm run bench -- telemetry-overhead\` (${rounds} alternating rounds, ${throughputSeconds} s max-rate and ${latencySeconds} s at ${qps} rps each; fortio, ${connections} keep-alive connections, 1 KiB responses, \`Host: upstream:8080\`). Same sidecar setup as the http-sidecar benchmark: \`jibe proxy\` from dist/ fed by \`jibe control-plane\`, proxy on core ${PROXY_CPUS}, fortio and the control plane on core ${LOAD_CPUS}. Medians over the rounds.`,
      '',
      '| Sidecar | Flags | Max rps | vs off | p50 / p90 / p99 ms @' + qps + ' rps |',
      '|---|---|---|---|---|',
      ...rows,
      '',
      `Throughput cost of Istio metrics + one JSON access log line per request: **${(cost * 100).toFixed(1)}%** (${verdict}). Metrics are plain numbers on pre-resolved series objects (prom-client renders them only on scrape); access log lines go through pino into a 4 KiB buffer written asynchronously to stdout (here a pipe the benchmark drains).`,
      '',
      `Machine: ${machineDescription()}; \`uptime\` at the end: \`${uptime}\` (shared machine: other engineers' work runs beside it).`,
    ].join('\n'),
  );
  log(`recorded in BENCHMARKS.md (## ${SECTION})`);
}

function ms(result: LoadResult, p: number): string {
  return ((result.percentiles.get(p) ?? NaN) * 1000).toFixed(3);
}
