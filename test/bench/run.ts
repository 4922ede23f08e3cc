// Entry point of `npm run bench`: runs one benchmark by name, or all of them.
// Benchmarks are not tests — they take minutes, need real peers, and record
// figures in BENCHMARKS.md instead of asserting on them.
//
//   npm run bench                          every benchmark, full length
//   npm run bench -- http-sidecar --smoke  one benchmark, shortened (not recorded)
//   npm run bench -- --list
import { stopAll } from './bench-processes.ts';

interface Benchmark {
  name: string;
  description: string;
  run(argv: string[]): Promise<void>;
}

// Loaded lazily so one benchmark's dependencies never slow or break another.
const BENCHMARKS: Record<string, () => Promise<Benchmark>> = {
  'http-sidecar': () => import('./http-sidecar.bench.ts'),
  convergence: () => import('./convergence.bench.ts'),
  'grpc-proxy': () => import('./grpc-proxy.bench.ts'),
  soak: () => import('./soak.bench.ts'),
  'consul-sync': () => import('./consul-sync.bench.ts'),
  'kubernetes-sync': () => import('./kubernetes-sync.bench.ts'),
  'scale-convergence': () => import('./scale-convergence.bench.ts'),
  'three-registries': () => import('./three-registries.bench.ts'),
  'telemetry-overhead': () => import('./telemetry-overhead.bench.ts'),
  'vm-join': () => import('./vm-join.bench.ts'),
  mtls: () => import('./mtls.bench.ts'),
  'mixed-path': () => import('./mixed-path.bench.ts'),
};

/** Run only when named: the soak takes its full five minutes whatever the flags. */
const BY_NAME_ONLY = new Set(['soak']);

async function main(argv: string[]): Promise<void> {
  if (argv.includes('--list') || argv.includes('--help')) {
    for (const [benchName, load] of Object.entries(BENCHMARKS)) {
      const benchmark = await load();
      process.stdout.write(`${benchName.padEnd(16)} ${benchmark.description}\n`);
    }
    process.stdout.write('\nusage: npm run bench -- [name] [flags]   (see test/bench/README.md for each benchmark\'s flags)\n');
    return;
  }
  const [first, ...rest] = argv;
  const named = first !== undefined && !first.startsWith('-');
  if (named && !(first in BENCHMARKS)) {
    throw new Error(`unknown benchmark '${first}'; known: ${Object.keys(BENCHMARKS).join(', ')}`);
  }
  const selected = named ? [first] : Object.keys(BENCHMARKS).filter((benchName) => !BY_NAME_ONLY.has(benchName));
  const flags = named ? rest : argv;
  for (const benchName of selected) {
    process.stdout.write(`[bench] === ${benchName} ===\n`);
    const benchmark = await BENCHMARKS[benchName]();
    await benchmark.run(flags);
  }
}

main(process.argv.slice(2)).catch(async (error: unknown) => {
  process.stderr.write(`[bench] failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  await stopAll();
  process.exit(1);
});
