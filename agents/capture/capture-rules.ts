// Capture rules as data (linkerd2-proxy-init's iptables.go): one pure function
// turns options into the exact rule list, so tests compare lists without root,
// `--dry-run` prints them, and apply/remove diff them against iptables-save.
//
// The shape is Istio's:
//   PREROUTING -p tcp → JIBE_INBOUND → (excluded ports RETURN) → JIBE_IN_REDIRECT → REDIRECT :15006
//   OUTPUT     -p tcp → JIBE_OUTPUT  → RETURN for the proxy's uid/gid, the control plane,
//                       loopback, excluded CIDRs/ports → JIBE_REDIRECT → REDIRECT :15001
// Every rule carries `-m comment --comment "jibe: <why>"` so a reader of
// iptables-save sees who added it and why, and cleanup can find it.
//
// Args are written in iptables-save's canonical form (`-m tcp` spelled out,
// CIDRs with their prefix) so that a rule read back compares equal.
import { resolveCaptureConfig } from './capture-config.ts';
import type { CaptureOptions, ResolvedCaptureConfig } from './capture-config.ts';
import type { Cidr, IpFamily } from './capture-cidr.ts';

export interface Rule {
  table: 'nat';
  chain: string;
  /** Matches then `-j TARGET [target options]`, without `-A chain` and without the comment. */
  args: string[];
  /** Why the rule exists; rendered as `-m comment --comment "jibe: <comment>"`. */
  comment: string;
}

export interface CaptureRules {
  v4: Rule[];
  v6: Rule[];
}

export const CHAIN_INBOUND = 'JIBE_INBOUND';
export const CHAIN_IN_REDIRECT = 'JIBE_IN_REDIRECT';
export const CHAIN_OUTPUT = 'JIBE_OUTPUT';
export const CHAIN_REDIRECT = 'JIBE_REDIRECT';
/** Every chain Jibe owns starts with this; cleanup removes all of them. */
export const JIBE_CHAIN_PREFIX = 'JIBE_';
export const COMMENT_PREFIX = 'jibe: ';
export const BUILTIN_NAT_CHAINS: readonly string[] = ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'];

const LOOPBACK: Record<IpFamily, string> = { v4: '127.0.0.1/32', v6: '::1/128' };

/** The full, ordered rule list for each family. v6 is empty unless `ipv6` is on. */
export function buildCaptureRules(options: CaptureOptions = {}): CaptureRules {
  const config = resolveCaptureConfig(options);
  return { v4: buildFamily(config, 'v4'), v6: config.ipv6 ? buildFamily(config, 'v6') : [] };
}

function buildFamily(c: ResolvedCaptureConfig, family: IpFamily): Rule[] {
  const rules: Rule[] = [];
  const add = (chain: string, args: string[], comment: string): void => {
    rules.push({ table: 'nat', chain, args, comment });
  };
  const ofFamily = (cidrs: Cidr[]): Cidr[] => cidrs.filter((x) => x.family === family);

  // Inbound: only when some port is captured.
  const inbound = c.includeInboundPorts === '*' || c.includeInboundPorts.length > 0;
  if (inbound) {
    add('PREROUTING', ['-p', 'tcp', '-j', CHAIN_INBOUND], 'send inbound TCP to the inbound capture chain');
    if (c.includeInboundPorts === '*') {
      for (const port of c.excludeInboundPorts) {
        add(CHAIN_INBOUND, ['-p', 'tcp', '-m', 'tcp', '--dport', String(port), '-j', 'RETURN'], `inbound port ${port} is excluded from capture`);
      }
      add(CHAIN_INBOUND, ['-p', 'tcp', '-j', CHAIN_IN_REDIRECT], 'capture inbound TCP on every other port');
    } else {
      const excluded = new Set(c.excludeInboundPorts);
      for (const port of c.includeInboundPorts) {
        if (excluded.has(port)) continue;
        add(CHAIN_INBOUND, ['-p', 'tcp', '-m', 'tcp', '--dport', String(port), '-j', CHAIN_IN_REDIRECT], `capture inbound TCP to port ${port}`);
      }
    }
    add(CHAIN_IN_REDIRECT, ['-p', 'tcp', '-j', 'REDIRECT', '--to-ports', String(c.inboundPort)], `hand captured inbound TCP to the proxy on port ${c.inboundPort}`);
  }

  // Outbound.
  add('OUTPUT', ['-p', 'tcp', '-j', CHAIN_OUTPUT], 'send outbound TCP to the outbound capture chain');
  if (c.dns.enabled) add('OUTPUT', ['-p', 'udp', '-m', 'udp', '--dport', '53', '-j', CHAIN_OUTPUT], 'send outbound DNS over UDP to the outbound capture chain');
  add(CHAIN_OUTPUT, ['-m', 'owner', '--uid-owner', String(c.proxyUid), '-j', 'RETURN'], `traffic of the proxy itself (uid ${c.proxyUid}) is not captured, else it would loop`);
  add(CHAIN_OUTPUT, ['-m', 'owner', '--gid-owner', String(c.proxyGid), '-j', 'RETURN'], `traffic of the proxy itself (gid ${c.proxyGid}) is not captured, else it would loop`);
  if (c.controlPlane && c.controlPlane.cidr.family === family) {
    const { cidr, port } = c.controlPlane;
    const args = port === undefined ? ['-d', cidr.text, '-j', 'RETURN'] : ['-d', cidr.text, '-p', 'tcp', '-m', 'tcp', '--dport', String(port), '-j', 'RETURN'];
    add(CHAIN_OUTPUT, args, 'the control plane stays reachable without the proxy');
  }
  if (c.dns.enabled) {
    // Before the loopback exclusion: a local resolver (127.0.0.53) is still DNS to capture.
    add(CHAIN_OUTPUT, ['-p', 'udp', '-m', 'udp', '--dport', '53', '-j', 'REDIRECT', '--to-ports', String(c.dns.port)], `capture DNS over UDP to the proxy on port ${c.dns.port}`);
    add(CHAIN_OUTPUT, ['-p', 'tcp', '-m', 'tcp', '--dport', '53', '-j', 'REDIRECT', '--to-ports', String(c.dns.port)], `capture DNS over TCP to the proxy on port ${c.dns.port}`);
  }
  add(CHAIN_OUTPUT, ['-d', LOOPBACK[family], '-j', 'RETURN'], 'loopback traffic is not captured');
  for (const cidr of ofFamily(c.excludeOutboundCidrs)) {
    add(CHAIN_OUTPUT, ['-d', cidr.text, '-j', 'RETURN'], `destination ${cidr.text} is excluded from capture`);
  }
  for (const port of c.excludeOutboundPorts) {
    add(CHAIN_OUTPUT, ['-p', 'tcp', '-m', 'tcp', '--dport', String(port), '-j', 'RETURN'], `outbound port ${port} is excluded from capture`);
  }
  for (const port of c.includeOutboundPorts) {
    add(CHAIN_OUTPUT, ['-p', 'tcp', '-m', 'tcp', '--dport', String(port), '-j', CHAIN_REDIRECT], `capture outbound TCP to port ${port} whatever the destination`);
  }
  if (c.includeOutboundCidrs === '*') {
    add(CHAIN_OUTPUT, ['-j', CHAIN_REDIRECT], 'capture all other outbound TCP');
  } else {
    for (const cidr of ofFamily(c.includeOutboundCidrs)) {
      add(CHAIN_OUTPUT, ['-d', cidr.text, '-j', CHAIN_REDIRECT], `capture outbound TCP to ${cidr.text}`);
    }
  }
  add(CHAIN_REDIRECT, ['-p', 'tcp', '-j', 'REDIRECT', '--to-ports', String(c.outboundPort)], `hand captured outbound TCP to the proxy on port ${c.outboundPort}`);
  return rules;
}

/** The Jibe chains the rules use, in the order they first appear. */
export function ruleChains(rules: readonly Rule[]): string[] {
  const chains: string[] = [];
  for (const r of rules) {
    if (r.chain.startsWith(JIBE_CHAIN_PREFIX) && !chains.includes(r.chain)) chains.push(r.chain);
  }
  return chains;
}

/** Tokens after `-A <chain>`, the comment placed just before the target as iptables-save prints it. */
export function ruleTokens(rule: Rule): string[] {
  const at = rule.args.indexOf('-j');
  const cut = at === -1 ? rule.args.length : at;
  return [...rule.args.slice(0, cut), '-m', 'comment', '--comment', COMMENT_PREFIX + rule.comment, ...rule.args.slice(cut)];
}

/** Quotes a token the way iptables-save does: only when it holds spaces or quotes. */
export function quoteToken(token: string): string {
  if (token !== '' && !/[\s"'\\]/.test(token)) return token;
  return '"' + token.replace(/(["\\])/g, '\\$1') + '"';
}

/** `-A CHAIN …` as one line of iptables-restore input (and of iptables-save output). */
export function renderRuleLine(rule: Rule, verb = '-A'): string {
  return [verb, rule.chain, ...ruleTokens(rule).map(quoteToken)].join(' ');
}

/**
 * iptables-restore input that creates the rules from nothing. With
 * `--noflush`, declaring a chain creates it or empties an existing one, so the
 * whole family changes in one transaction.
 */
export function renderRestore(rules: readonly Rule[]): string {
  const lines = ['*nat'];
  for (const chain of ruleChains(rules)) lines.push(`:${chain} - [0:0]`);
  // Chains' own rules first, jumps into them last: a half-read input never jumps into an empty chain.
  for (const r of rules) if (r.chain.startsWith(JIBE_CHAIN_PREFIX)) lines.push(renderRuleLine(r));
  for (const r of rules) if (!r.chain.startsWith(JIBE_CHAIN_PREFIX)) lines.push(renderRuleLine(r));
  lines.push('COMMIT', '');
  return lines.join('\n');
}

/** Shell commands equivalent to the rules, for `--dry-run`. */
export function renderCommands(rules: readonly Rule[], binary: 'iptables' | 'ip6tables' = 'iptables'): string[] {
  const out: string[] = [];
  for (const chain of ruleChains(rules)) out.push(`${binary} -t nat -N ${chain}`);
  for (const r of rules) if (r.chain.startsWith(JIBE_CHAIN_PREFIX)) out.push(`${binary} -t nat ${renderShellRule(r)}`);
  for (const r of rules) if (!r.chain.startsWith(JIBE_CHAIN_PREFIX)) out.push(`${binary} -t nat ${renderShellRule(r)}`);
  return out;
}

/** Both families' commands, what `jibe agent join --dry-run` prints. */
export function renderDryRun(rules: CaptureRules): string {
  return [...renderCommands(rules.v4, 'iptables'), ...renderCommands(rules.v6, 'ip6tables')].join('\n') + '\n';
}

function renderShellRule(rule: Rule): string {
  // Shell quoting: the comment is the only token with spaces, and it never holds a single quote.
  return ['-A', rule.chain, ...ruleTokens(rule).map((t) => (/^[\w./:,=-]+$/.test(t) ? t : `'${t.replace(/'/g, `'\\''`)}'`))].join(' ');
}
