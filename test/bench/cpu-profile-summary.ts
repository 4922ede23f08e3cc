// Summarizes a V8 .cpuprofile (from `node --cpu-prof`): self time per function
// and per file, so a benchmark that misses its target says where the time went.
//
//   node test/bench/cpu-profile-summary.ts <file.cpuprofile> [top=25]
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { REPO_ROOT } from '../peers/paths.ts';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface HotSpot {
  name: string;
  location: string;
  selfMs: number;
  percent: number;
}

export interface ProfileSummary {
  /** Time the thread did work (percentages are of this). */
  busyMs: number;
  /** Time the event loop waited for I/O. */
  idleMs: number;
  functions: HotSpot[];
  files: HotSpot[];
}

function shortLocation(url: string): string {
  if (url === '') return '(native)';
  if (url.startsWith('file://')) return relative(REPO_ROOT, fileURLToPath(url));
  return url;
}

export function summarizeCpuProfile(profile: CpuProfile, top = 25): ProfileSummary {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfMicros = new Map<number, number>();
  // timeDeltas[i] is the time before sample i; attributing it to sample i is what DevTools does.
  for (let index = 0; index < profile.samples.length; index++) {
    const id = profile.samples[index];
    selfMicros.set(id, (selfMicros.get(id) ?? 0) + Math.max(0, profile.timeDeltas[index] ?? 0));
  }
  let total = 0;
  let idle = 0;
  const functions = new Map<string, HotSpot>();
  const files = new Map<string, HotSpot>();
  for (const [id, micros] of selfMicros) {
    const node = byId.get(id);
    if (node === undefined) continue;
    const frame = node.callFrame;
    // Idle is waiting, not cost: percentages are of the time the thread worked.
    if (frame.functionName === '(idle)' && frame.url === '') {
      idle += micros;
      continue;
    }
    total += micros;
    const location = shortLocation(frame.url);
    const name = frame.functionName || '(anonymous)';
    const functionKey = `${name}@${location}:${frame.lineNumber + 1}`;
    const fn = functions.get(functionKey) ?? { name, location: frame.url === '' ? location : `${location}:${frame.lineNumber + 1}`, selfMs: 0, percent: 0 };
    fn.selfMs += micros / 1000;
    functions.set(functionKey, fn);
    const fileKey = frame.url === '' ? name : location;
    const file = files.get(fileKey) ?? { name: fileKey, location, selfMs: 0, percent: 0 };
    file.selfMs += micros / 1000;
    files.set(fileKey, file);
  }
  const finish = (spots: Iterable<HotSpot>): HotSpot[] =>
    [...spots]
      .map((spot) => ({ ...spot, percent: total === 0 ? 0 : (spot.selfMs * 1000 * 100) / total }))
      .sort((a, b) => b.selfMs - a.selfMs)
      .slice(0, top);
  return { busyMs: total / 1000, idleMs: idle / 1000, functions: finish(functions.values()), files: finish(files.values()) };
}

export function formatSummary(summary: ProfileSummary): string {
  const row = (spot: HotSpot): string => `${spot.percent.toFixed(1).padStart(5)}%  ${spot.selfMs.toFixed(0).padStart(7)} ms  ${spot.name}  ${spot.location === spot.name ? '' : spot.location}`;
  return [
    `Busy ${summary.busyMs.toFixed(0)} ms, idle ${summary.idleMs.toFixed(0)} ms (${((summary.idleMs * 100) / (summary.busyMs + summary.idleMs || 1)).toFixed(0)} % idle). Top functions by self time, % of busy time:`,
    ...summary.functions.map(row),
    '',
    'By file (self time, % of busy time):',
    ...summary.files.map(row),
  ].join('\n');
}

if (import.meta.main) {
  const [file, top] = process.argv.slice(2);
  if (file === undefined) {
    process.stderr.write('usage: node test/bench/cpu-profile-summary.ts <file.cpuprofile> [top]\n');
    process.exit(2);
  }
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  process.stdout.write(`${formatSummary(summarizeCpuProfile(profile, top === undefined ? 25 : Number(top)))}\n`);
}
