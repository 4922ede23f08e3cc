// Installs, checks and removes traffic capture. Each family's whole change is
// ONE `iptables-restore --noflush` transaction, so the kernel never holds half
// a capture; a failure after one family changed (or a failed check) puts back
// the nat table saved before the change, so no rule is left behind.
//
// When the nat table did not exist before (a fresh host or namespace with the
// nf_tables backend), installing would leave an empty table behind and
// `iptables-save` would differ after cleanup. An empty marker chain,
// JIBE_CREATED_NAT, records in the kernel itself that Jibe created the table,
// so cleanup, even by a restarted agent, drops the table again when it is empty.
import { JibeError } from '../../core/errors/errors.ts';
import { resolveCaptureConfig } from './capture-config.ts';
import type { CaptureOptions } from './capture-config.ts';
import type { IpFamily } from './capture-cidr.ts';
import { CommandError, createCommandRunner } from './capture-exec.ts';
import type { CommandRunner } from './capture-exec.ts';
import { buildCaptureRules, JIBE_CHAIN_PREFIX } from './capture-rules.ts';
import type { CaptureRules, Rule } from './capture-rules.ts';
import { extractTable, isJibeRule, isTableEmpty, parseIptablesSave, planCapture, planRemoval } from './iptables-state.ts';
import type { SavedTable } from './iptables-state.ts';

export const MARKER_CHAIN = 'JIBE_CREATED_NAT';

const BINARIES: Record<IpFamily, { save: string; restore: string; nftFamily: string }> = {
  v4: { save: 'iptables-save', restore: 'iptables-restore', nftFamily: 'ip' },
  v6: { save: 'ip6tables-save', restore: 'ip6tables-restore', nftFamily: 'ip6' },
};
/** Wait up to 5 s for the xtables lock (legacy backend) instead of failing when kube-proxy or docker holds it. */
const WAIT = ['-w', '5'];

export interface CaptureRunOptions {
  /** Runs the commands; defaults to a runner that spawns them (inside `netns` when given). */
  exec?: CommandRunner;
  /** Network namespace to work in; named in errors, and used by the default runner. */
  netns?: string;
}

export interface CaptureApplyResult {
  /** False when every rule was already in place and no command changed anything. */
  changed: boolean;
  /** Families whose nat table was changed. */
  changedFamilies: IpFamily[];
  rules: CaptureRules;
}

export type CaptureState = 'installed' | 'partial' | 'absent';

export interface CaptureFamilyStatus {
  family: IpFamily;
  state: CaptureState;
  /** Desired rules not in place. */
  missing: Rule[];
  /** Jibe rules or chains in place that should not be, as iptables-save lines. */
  extra: string[];
}

export interface CaptureStatus {
  state: CaptureState;
  families: CaptureFamilyStatus[];
}

export interface CaptureRemoveResult {
  /** Families from which something was removed. */
  removedFamilies: IpFamily[];
  /** Families whose tools or nat table are not there (only when not asked for explicitly). */
  skippedFamilies: IpFamily[];
}

/** Installs capture idempotently; a second call with the same options changes nothing. */
export async function applyCapture(options: CaptureOptions, run: CaptureRunOptions = {}): Promise<CaptureApplyResult> {
  const config = resolveCaptureConfig(options);
  const rules = buildCaptureRules(options);
  const exec = run.exec ?? createCommandRunner({ netns: run.netns });
  const families: IpFamily[] = config.ipv6 ? ['v4', 'v6'] : ['v4'];

  // Every snapshot is taken before anything changes.
  const snapshots = new Map<IpFamily, string>();
  for (const family of families) {
    snapshots.set(family, await runStep(exec, BINARIES[family].save, ['-c'], undefined, `reading the ${family} rules`, run.netns));
  }

  const touched: IpFamily[] = [];
  try {
    for (const family of families) {
      const nat = parseIptablesSave(snapshots.get(family)!).tables.get('nat');
      const plan = planCapture(rules[family], nat, markerToKeep(nat));
      if (plan.upToDate) continue;
      touched.push(family);
      await runStep(exec, BINARIES[family].restore, [...WAIT, '--noflush'], plan.restore, `installing ${family} capture`, run.netns);
    }
    for (const family of touched) {
      const nat = parseIptablesSave(await runStep(exec, BINARIES[family].save, [], undefined, `checking ${family} capture`, run.netns)).tables.get('nat');
      const check = planCapture(rules[family], nat, markerToKeep(nat));
      if (!check.upToDate) {
        throw new JibeError('JIBE_ERR_CAPTURE', `${family} capture is not in place after installing it: missing ${check.missing.length} rule(s), ${check.extra.length} unexpected: ${[...check.missing.map((r) => r.chain + ' ' + r.args.join(' ')), ...check.extra].slice(0, 5).join('; ')}`, {
          resource: where(run.netns),
          hint: 'another program may be rewriting the nat table at the same time (kube-proxy, docker, firewalld); the change was rolled back, run it again',
        });
      }
    }
  } catch (error) {
    await rollback(exec, touched, snapshots, run.netns, error);
    throw error;
  }
  return { changed: touched.length > 0, changedFamilies: touched, rules };
}

/** Keeps the marker when present; plans it when the table does not exist yet. */
function markerToKeep(nat: SavedTable | undefined): string[] {
  if (!nat) return [MARKER_CHAIN];
  return nat.chains.some((c) => c.name === MARKER_CHAIN) ? [MARKER_CHAIN] : [];
}

async function rollback(exec: CommandRunner, touched: IpFamily[], snapshots: Map<IpFamily, string>, netns: string | undefined, cause: unknown): Promise<void> {
  const failures: JibeError[] = [];
  for (const family of [...touched].reverse()) {
    try {
      const snapshot = snapshots.get(family)!;
      const before = extractTable(snapshot, 'nat');
      if (before) {
        // Without --noflush the nat table alone is replaced by its saved copy (counters included).
        await runStep(exec, BINARIES[family].restore, [...WAIT, '-c'], before, `rolling back ${family} capture`, netns);
      } else {
        await removeFamily(exec, family, netns);
      }
      const now = await runStep(exec, BINARIES[family].save, [], undefined, `checking the ${family} rollback`, netns);
      if (!sameTable(parseIptablesSave(now).tables.get('nat'), parseIptablesSave(snapshot).tables.get('nat'))) {
        throw new JibeError('JIBE_ERR_CAPTURE', `the ${family} nat table differs from its saved copy after rollback`, { resource: where(netns) });
      }
    } catch (e) {
      failures.push(asCaptureError(e, `rolling back ${family} capture`, netns));
    }
  }
  if (failures.length && cause instanceof Error) {
    const first = cause instanceof JibeError ? cause : asCaptureError(cause, 'installing capture', netns);
    throw new JibeError('JIBE_ERR_CAPTURE', `${first.message}; rolling back failed too, Jibe rules may be left behind`, {
      resource: where(netns),
      causes: [first, ...failures],
      hint: 'inspect `iptables-save -t nat` and remove what is left with `jibe agent leave` (it removes every JIBE_* chain and the jumps to them)',
    });
  }
}

/** Two nat tables hold the same chains, policies and rules (counters ignored). */
function sameTable(a: SavedTable | undefined, b: SavedTable | undefined): boolean {
  const flat = (t: SavedTable | undefined): string => (t ? JSON.stringify([t.chains, t.rules.map((r) => [r.chain, r.tokens])]) : '');
  // An absent table and an empty one behave the same; the backend may keep the empty one.
  if (!a || !b) return (!a || isTableEmpty(a)) && (!b || isTableEmpty(b));
  return flat(a) === flat(b);
}

/**
 * Removes every Jibe rule and chain (the jumps from the built-in chains first,
 * then the JIBE_* chains), whatever options installed them, and the nat table
 * too when Jibe created it and it is empty now. Idempotent.
 */
export async function removeCapture(run: CaptureRunOptions & { families?: IpFamily[] } = {}): Promise<CaptureRemoveResult> {
  const exec = run.exec ?? createCommandRunner({ netns: run.netns });
  const explicit = run.families !== undefined;
  const result: CaptureRemoveResult = { removedFamilies: [], skippedFamilies: [] };
  for (const family of run.families ?? ['v4', 'v6']) {
    let text: string;
    try {
      text = await runStep(exec, BINARIES[family].save, [], undefined, `reading the ${family} rules`, run.netns);
    } catch (e) {
      // A host without ip6tables or IPv6 nat has nothing of ours to remove there.
      if (!explicit && family === 'v6') {
        result.skippedFamilies.push(family);
        continue;
      }
      throw e;
    }
    if (await removeFamily(exec, family, run.netns, text)) result.removedFamilies.push(family);
  }
  return result;
}

async function removeFamily(exec: CommandRunner, family: IpFamily, netns: string | undefined, savedText?: string): Promise<boolean> {
  const bin = BINARIES[family];
  const saved = parseIptablesSave(savedText ?? (await runStep(exec, bin.save, [], undefined, `reading the ${family} rules`, netns)));
  const nat = saved.tables.get('nat');
  const script = planRemoval(nat);
  if (script) await runStep(exec, bin.restore, [...WAIT, '--noflush'], script, `removing ${family} capture`, netns);
  const createdByUs = nat?.chains.some((c) => c.name === MARKER_CHAIN) ?? false;
  if (createdByUs && saved.backend === 'nf_tables') {
    const after = parseIptablesSave(await runStep(exec, bin.save, [], undefined, `reading the ${family} rules`, netns));
    const table = after.tables.get('nat');
    if (table && isTableEmpty(table)) {
      await runStep(exec, 'nft', ['delete', 'table', bin.nftFamily, 'nat'], undefined, `dropping the ${family} nat table Jibe created`, netns);
    }
  }
  return script !== '';
}

/** installed: every desired rule in place and nothing else of ours; absent: nothing of ours; partial otherwise. */
export async function captureStatus(options: CaptureOptions, run: CaptureRunOptions = {}): Promise<CaptureStatus> {
  const config = resolveCaptureConfig(options);
  const rules = buildCaptureRules(options);
  const exec = run.exec ?? createCommandRunner({ netns: run.netns });
  const families: CaptureFamilyStatus[] = [];
  for (const family of config.ipv6 ? (['v4', 'v6'] as const) : (['v4'] as const)) {
    const nat = parseIptablesSave(await runStep(exec, BINARIES[family].save, [], undefined, `reading the ${family} rules`, run.netns)).tables.get('nat');
    const plan = planCapture(rules[family], nat, markerToKeep(nat).filter((c) => nat?.chains.some((x) => x.name === c)));
    const ours = (nat?.chains.some((c) => c.name.startsWith(JIBE_CHAIN_PREFIX)) ?? false) || (nat?.rules.some(isJibeRule) ?? false);
    families.push({ family, state: plan.upToDate ? 'installed' : ours ? 'partial' : 'absent', missing: plan.missing, extra: plan.extra });
  }
  const states = new Set(families.map((f) => f.state));
  const state: CaptureState = states.size === 1 ? families[0].state : 'partial';
  return { state, families };
}

async function runStep(exec: CommandRunner, command: string, args: string[], input: string | undefined, what: string, netns: string | undefined): Promise<string> {
  try {
    return await exec(command, args, input);
  } catch (e) {
    throw asCaptureError(e, what, netns);
  }
}

function where(netns: string | undefined): string {
  return netns ? `netns/${netns}` : 'host';
}

function asCaptureError(e: unknown, what: string, netns: string | undefined): JibeError {
  if (e instanceof JibeError) return e;
  const command = e instanceof CommandError ? [e.command, ...e.args].join(' ') : 'a capture command';
  const stderr = e instanceof CommandError ? e.stderr.trim() : e instanceof Error ? e.message : String(e);
  return new JibeError('JIBE_ERR_CAPTURE', `${what}: \`${command}\` failed${stderr ? ': ' + stderr : ''}`, { resource: where(netns), hint: hintFor(e, stderr, netns) });
}

function hintFor(e: unknown, stderr: string, netns: string | undefined): string {
  const missing = (e instanceof CommandError && e.exitCode === 'ENOENT') || /exec of .* failed: No such file/.test(stderr);
  if (missing) {
    if (e instanceof CommandError && e.command === 'nft') return 'install nftables (Debian/Ubuntu: apt-get install nftables) or drop the empty nat table by hand';
    return 'install iptables (Debian/Ubuntu: apt-get install iptables)' + (netns ? ' and iproute2' : '');
  }
  if (/Permission denied|must be root|Operation not permitted/i.test(stderr)) return 'run as root (or with the CAP_NET_ADMIN capability)';
  if (/Cannot open network namespace/i.test(stderr)) return `the network namespace ${netns} does not exist`;
  if (/Table does not exist|can't initialize|Could not fetch rule set generation/i.test(stderr)) {
    return 'the kernel lacks NAT support for this family: load the nf_nat (or ip6table_nat) module, or turn IPv6 capture off';
  }
  return 'fix the cause named by the command\'s error and run it again; a failed install leaves no rule behind';
}
