// Soak (issue 3): the Jibe sidecar under a steady 1000 requests/s of
// HTTP/1.1 keep-alive traffic (or, with --grpc, 1000 gRPC calls/s over
// HTTP/2 both sides) for 5 minutes, its resident memory sampled throughout,
// so a leak shows as growth between the start and the end. Not
// part of `npm run bench`'s default set (it takes the full duration); run it
// by name.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { memoryFigures, onInterrupt, stopAll } from './bench-processes.ts';
import { gitRevision, machineDescription, writeSection, BENCHMARKS_FILE } from './benchmarks-md.ts';
import { median } from './latency-percentiles.ts';
import { runLoad, startFortioServer } from './fortio.ts';
import { startJibeSidecar } from './jibe-sidecar.ts';
import { PROXY_NODE_FLAGS } from '../../proxy/proxy-node-flags.ts';
import { installPeers } from '../peers/install.ts';
import { requirePeerBinary } from '../peers/paths.ts';

export const name = 'soak';
export const description = 'Jibe sidecar at 1000 rps for 5 minutes: RSS at start and end (issue 3; run by name only)';
export const SECTION_TITLE = 'Soak: sidecar memory at 1000 rps (issue 3)';
export const GRPC_SECTION_TITLE = 'Soak: sidecar memory at 1000 gRPC calls/s (issue 3)';

const LOAD_CPUS = '0';
const PROXY_CPUS = '1';
const SAMPLE_MS = 5000;
/** Growth beyond this between the first and the last minute's median counts as growth, not noise (V8 heap sizing moves a few MB). */
const GROWTH_TOLERANCE_BYTES = 5e6;

function log(line: string): void {
  process.stdout.write(`[bench] ${line}\n`);
}

const mb = (bytes: number): string => (bytes / 1e6).toFixed(1);

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      smoke: { type: 'boolean', default: false },
      duration: { type: 'string' },
      qps: { type: 'string', default: '1000' },
      grpc: { type: 'boolean', default: false },
      write: { type: 'boolean' },
      'no-write': { type: 'boolean', default: false },
    },
  });
  const seconds = Number(values.duration ?? (values.smoke ? 30 : 300));
  const qps = Number(values.qps);
  const write = values.write ?? (!values.smoke && values.duration === undefined && !values['no-write']);
  const failed = await installPeers(['fortio']);
  if (failed.length > 0) throw new Error(`peers missing: ${failed.join(', ')}`);
  const fortio = requirePeerBinary('fortio');
  const dir = mkdtempSync(join(tmpdir(), 'jibe-bench-soak-'));
  const forgetInterrupt = onInterrupt(() => rmSync(dir, { recursive: true, force: true }));
  try {
    const grpc = values.grpc;
    const upstream = await startFortioServer(fortio, LOAD_CPUS, grpc);
    const sidecar = grpc
      ? await startJibeSidecar({ upstreamPort: upstream.grpcPort!, cpus: PROXY_CPUS, controlPlaneCpus: LOAD_CPUS, portName: 'grpc' })
      : await startJibeSidecar({ upstreamPort: upstream.port, cpus: PROXY_CPUS, controlPlaneCpus: LOAD_CPUS });
    const pid = sidecar.process.pid;
    log(`sidecar pid ${pid} on 127.0.0.1:${sidecar.port}; ${qps} rps for ${seconds} s`);
    const idle = memoryFigures(pid);
    const loadBefore = readFileSync('/proc/loadavg', 'utf8').trim();
    const samples: Array<{ t: number; rss: number }> = [];
    const started = performance.now();
    const timer = setInterval(() => {
      const figures = memoryFigures(pid);
      if (figures !== undefined) samples.push({ t: (performance.now() - started) / 1000, rss: figures.vmRss });
    }, SAMPLE_MS);
    let result;
    try {
      result = await runLoad(fortio, {
        url: grpc ? `127.0.0.1:${sidecar.port}` : `http://127.0.0.1:${sidecar.port}/echo?size=1024`,
        grpc,
        connections: 16,
        qps,
        durationSeconds: seconds,
        uniform: true,
        headers: ['Host: upstream:8080'],
        cpus: LOAD_CPUS,
        jsonFile: join(dir, 'soak.json'),
      });
    } finally {
      clearInterval(timer);
    }
    const loadAfter = readFileSync('/proc/loadavg', 'utf8').trim();
    if (samples.length < 4) throw new Error(`too few RSS samples (${samples.length})`);
    // First and last minute (or fifth of the run): medians, so one GC's swing does not decide.
    const window = Math.max(1, Math.floor(Math.min(60, seconds / 5) / (SAMPLE_MS / 1000)));
    const startRss = median(samples.slice(0, window).map((s) => s.rss));
    const endRss = median(samples.slice(-window).map((s) => s.rss));
    const maxRss = Math.max(...samples.map((s) => s.rss));
    const growth = endRss - startRss;
    const verdict = growth <= GROWTH_TOLERANCE_BYTES ? 'no growth' : '**grew**';
    const summary =
      `| Duration | Rate (actual) | Requests | Errors | VmRSS idle | VmRSS start (median, first ${window * SAMPLE_MS / 1000} s) | VmRSS end (median, last ${window * SAMPLE_MS / 1000} s) | VmRSS max | Growth |\n` +
      '|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n' +
      `| ${seconds} s | ${qps} (${result.actualQps.toFixed(1)}) | ${result.requests} | ${result.errors} | ${idle !== undefined ? mb(idle.vmRss) : '–'} MB | ${mb(startRss)} MB | ${mb(endRss)} MB | ${mb(maxRss)} MB | ${growth >= 0 ? '+' : ''}${mb(growth)} MB — ${verdict} |`;
    const trace = samples.filter((_, i) => i % Math.max(1, Math.floor(samples.length / 12)) === 0).map((s) => `${Math.round(s.t)} s: ${mb(s.rss)}`).join(' · ');
    process.stdout.write(`\n${summary}\n\nRSS samples (MB): ${trace}\nload average before/after: ${loadBefore} / ${loadAfter}\n`);
    if (result.errors > 0) process.exitCode = 1;
    if (!write) {
      log('not written to BENCHMARKS.md (shortened run; pass --write to record it)');
      return;
    }
    const body = [
      `Command: \`npm run bench -- ${[name, ...argv].join(' ')}\``,
      '',
      `Date: ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')} · machine: ${machineDescription()} · load average before/after: ${loadBefore} / ${loadAfter} · Node ${process.version} · commit ${gitRevision()}`,
      '',
      `Setup: the sidecar as \`jibe up\` runs it (compiled dist/, \`${PROXY_NODE_FLAGS.join(' ')}\`, fed by \`jibe control-plane\`) pinned to core ${PROXY_CPUS}; fortio server and ` +
        (grpc
          ? `\`fortio load -grpc -ping -uniform -c 16 -qps ${qps}\` (gRPC unary calls, HTTP/2 from the client to the sidecar and from the sidecar to fortio's ping service, whose port is registered as \`grpc\`)`
          : `\`fortio load -uniform -c 16 -qps ${qps}\` (HTTP/1.1 keep-alive, 1 KiB answers)`) +
        ` on core ${LOAD_CPUS}. VmRSS sampled every ${SAMPLE_MS / 1000} s; growth = end median − start median, tolerance ${mb(GROWTH_TOLERANCE_BYTES)} MB.`,
      '',
      summary,
      '',
      `RSS samples (MB): ${trace}`,
      '',
    ].join('\n');
    writeSection(grpc ? GRPC_SECTION_TITLE : SECTION_TITLE, body);
    log(`recorded in ${BENCHMARKS_FILE}`);
  } finally {
    await stopAll();
    forgetInterrupt();
    rmSync(dir, { recursive: true, force: true });
  }
}
