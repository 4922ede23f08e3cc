// Writes one benchmark's figures into BENCHMARKS.md: its own `## ` section is
// replaced on a rerun, every other section is kept as it was.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '../peers/paths.ts';

export const BENCHMARKS_FILE = join(REPO_ROOT, 'BENCHMARKS.md');

const PREAMBLE = `# Benchmarks

Figures recorded by \`npm run bench\` (see test/bench/README.md). The machines are
shared and noisy, so each benchmark runs its comparisons side by side in one run and
the ratios matter more than the absolute numbers.
`;

/** Replaces (or appends) the section whose heading is `## <title>`; `body` excludes the heading. */
export function replaceSection(markdown: string, title: string, body: string): string {
  const heading = `## ${title}`;
  const section = `${heading}\n\n${body.trim()}\n`;
  const lines = markdown.split('\n');
  const start = lines.findIndex((line) => line.trimEnd() === heading);
  if (start === -1) return `${markdown.trimEnd()}\n\n${section}`;
  let end = lines.findIndex((line, index) => index > start && /^## /.test(line));
  if (end === -1) end = lines.length;
  const before = lines.slice(0, start).join('\n').trimEnd();
  const after = lines.slice(end).join('\n').trim();
  return `${before}\n\n${section}${after === '' ? '' : `\n${after}\n`}`;
}

export function writeSection(title: string, body: string, file = BENCHMARKS_FILE): void {
  const current = existsSync(file) ? readFileSync(file, 'utf8') : PREAMBLE;
  writeFileSync(file, replaceSection(current, title, body));
}

/** "nproc 2, AMD EPYC": CPUs this process may use, and the model from /proc/cpuinfo. */
export function machineDescription(): string {
  const model = cpus()[0]?.model.trim() ?? 'unknown CPU';
  return `nproc ${availableParallelism()}, ${model}`;
}

/** The checkout's short commit id, for a figure's provenance; 'unknown' outside git. */
export function gitRevision(): string {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}
