// Whether this machine can run the network-namespace integration tests
// (capture, tcp-capture, vm, consul+vm), and the one rule for when it cannot:
// under CI that is a failure, elsewhere a visible skip.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

/** Why namespaces with the `needed` commands cannot be made here, or undefined; `installHint` says how to get them. */
export function netnsEnvironmentProblem(needed: string[], installHint: string): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'needs root to create network namespaces and change iptables';
  const missing = needed.filter((cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status !== 0);
  if (missing.length) return `missing ${missing.join(', ')} (${installHint})`;
  const probe = `jibe-probe-${randomBytes(3).toString('hex')}`;
  const added = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' });
  if (added.status !== 0) return `cannot create a network namespace: ${added.stderr.trim()}`;
  spawnSync('ip', ['netns', 'del', probe]);
  return undefined;
}

/** Defines the tests when `problem` is undefined; otherwise one test named `name` that fails under CI=true and is skipped elsewhere. */
export function defineUnlessProblem(name: string, problem: string | undefined, defineTests: () => void): void {
  if (problem === undefined) defineTests();
  else if (process.env.CI === 'true') test(name, () => assert.fail(`${name} cannot run in CI: ${problem}`));
  else test(name, { skip: problem }, () => {});
}
