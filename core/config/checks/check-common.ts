// Checks several kinds share: string matches, hosts, ports and protocols, exportTo.
import { tryParseDuration } from '../duration.ts';
import { compileRegex } from '../regex.ts';
import { hostProblem, isDns1123Label, isExportTo, LABEL_RULE } from '../names.ts';
import type { Report } from './check-context.ts';
import { asArray, asObject, asString } from './check-context.ts';

const MATCH_KINDS = ['exact', 'prefix', 'regex'] as const;

/**
 * Istio's StringMatch: exactly one of exact, prefix, regex (`{}` only where it
 * means "present", as for headers), and a regex that compiles.
 */
export function checkStringMatch(
  value: unknown,
  field: string,
  report: Report,
  opts: { allowEmpty?: boolean; allowPrefix?: boolean } = {},
): void {
  const m = asObject(value);
  if (!m) return;
  const set = MATCH_KINDS.filter((k) => m[k] !== undefined);
  if (set.length > 1) {
    report('JIBE_ERR_SCHEMA', field, `set exactly one of exact, prefix or regex, not ${set.join(' and ')}`);
  } else if (set.length === 0 && !opts.allowEmpty) {
    report('JIBE_ERR_SCHEMA', field, 'set exactly one of exact, prefix or regex');
  }
  if (m.prefix !== undefined && opts.allowPrefix === false) {
    report('JIBE_ERR_SCHEMA', `${field}.prefix`, 'prefix matching is not supported here; use exact or regex');
  }
  checkRegex(m.regex, `${field}.regex`, report);
}

export function checkRegex(value: unknown, field: string, report: Report): void {
  const pattern = asString(value);
  if (pattern === undefined) return;
  try {
    compileRegex(pattern);
  } catch (e) {
    report('JIBE_ERR_SCHEMA', field, `invalid regex ${JSON.stringify(pattern)}: ${(e as Error).message} (regexes use RE2 syntax and must match the whole value)`);
  }
}

export function checkHost(value: unknown, field: string, report: Report, opts: { wildcard: boolean } = { wildcard: true }): void {
  if (typeof value !== 'string') return;
  const problem = hostProblem(value, opts);
  if (problem) report('JIBE_ERR_SCHEMA', field, `invalid host ${JSON.stringify(value)}: ${problem}`);
}

/** Protocols a Gateway server or ServiceEntry port may declare (Istio's names, any case). */
export const PORT_PROTOCOLS = ['HTTP', 'HTTPS', 'HTTP2', 'GRPC', 'GRPC-WEB', 'TCP', 'TLS', 'MONGO', 'MYSQL', 'REDIS'];

export function checkProtocol(value: unknown, field: string, report: Report): void {
  const protocol = asString(value);
  if (protocol === undefined) return;
  if (!PORT_PROTOCOLS.includes(protocol.toUpperCase())) {
    report('JIBE_ERR_SCHEMA', field, `unknown protocol ${JSON.stringify(protocol)} (use one of: ${PORT_PROTOCOLS.join(', ')})`);
  }
}

/** A port or subset name: a DNS-1123 label. */
export function checkLabelName(value: unknown, field: string, report: Report, what: string): void {
  const name = asString(value);
  if (name !== undefined && !isDns1123Label(name)) {
    report('JIBE_ERR_SCHEMA', field, `invalid ${what} ${JSON.stringify(name)}: use ${LABEL_RULE}`);
  }
}

export function checkExportTo(value: unknown, field: string, report: Report): void {
  const list = asArray(value);
  list.forEach((entry, i) => {
    if (typeof entry === 'string' && !isExportTo(entry)) {
      report('JIBE_ERR_SCHEMA', `${field}[${i}]`, `invalid exportTo entry ${JSON.stringify(entry)} (use "." for this namespace, "*" for all, "~" for none, or a namespace name)`);
    }
  });
  if (list.includes('~') && list.length > 1) report('JIBE_ERR_SCHEMA', field, '"~" (export to no namespace) cannot be combined with other entries');
}

/**
 * Reports entries of `list` whose value at `keyPath` (`name`, `port.number`)
 * repeats an earlier entry's.
 */
export function checkUnique(list: unknown, field: string, keyPath: string, what: string, report: Report): void {
  const seen = new Map<unknown, number>();
  const path = keyPath.split('.');
  asArray(list).forEach((item, i) => {
    let k: unknown = item;
    for (const p of path) k = asObject(k)?.[p];
    if (k === undefined || k === null || typeof k === 'object') return;
    const first = seen.get(k);
    if (first !== undefined) report('JIBE_ERR_SCHEMA', `${field}[${i}].${keyPath}`, `duplicate ${what} ${JSON.stringify(k)} (also at ${field}[${first}])`);
    else seen.set(k, i);
  });
}

/**
 * A duration the schema already accepted (or will report) must be at least
 * `minMs`: Envoy refuses zero timeouts and intervals, and Istio requires 1ms.
 * Unparseable values are left to the schema's `duration` format.
 */
export function checkMinDuration(value: unknown, field: string, report: Report, minMs = 1, why = 'must be at least 1ms'): void {
  const text = asString(value);
  if (text === undefined) return;
  const ms = tryParseDuration(text);
  if (ms !== undefined && ms < minMs) report('JIBE_ERR_SCHEMA', field, `duration ${JSON.stringify(text)} ${why}`);
}

/** A header name as HTTP allows it (RFC 9110 token). */
export const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

export function checkHeaderName(value: unknown, field: string, report: Report): void {
  const name = asString(value);
  if (name !== undefined && !HEADER_NAME.test(name)) report('JIBE_ERR_SCHEMA', field, `invalid header name ${JSON.stringify(name)} (use letters, digits and -, as in x-user-id)`);
}
