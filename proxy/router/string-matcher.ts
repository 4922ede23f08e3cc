// StringMatcher compilation: done once per config update, so a request only
// runs a comparison or a pre-built RegExp. Regexes are full matches (Istio /
// Envoy semantics), anchored here; RE2's leading `(?i)` is accepted as the
// JS `i` flag since control planes pass Istio's regexes through unchanged.
import type { StringMatcher } from '../../core/model/proxy-config.ts';

export type StringTest = (value: string) => boolean;

/** Compiles a full-match regex. @throws SyntaxError with the engine's reason. */
export function compileFullMatchRegex(pattern: string, ignoreCase = false): RegExp {
  let source = pattern;
  let flags = ignoreCase ? 'i' : '';
  if (source.startsWith('(?i)')) {
    source = source.slice(4);
    flags = 'i';
  }
  return new RegExp(`^(?:${source})$`, flags);
}

/** Describes what is wrong with a matcher, or returns undefined when it is well formed. */
export function checkStringMatcher(m: unknown): string | undefined {
  if (m === null || typeof m !== 'object') return 'must be an object with one of exact, prefix, regex';
  const keys = Object.keys(m);
  if (keys.length !== 1 || !['exact', 'prefix', 'regex'].includes(keys[0])) {
    return `must have exactly one of exact, prefix, regex (has ${keys.length ? keys.join(', ') : 'none'})`;
  }
  const value = (m as Record<string, unknown>)[keys[0]];
  if (typeof value !== 'string') return `${keys[0]} must be a string`;
  if (keys[0] === 'regex') {
    try {
      compileFullMatchRegex(value);
    } catch (e) {
      return `regex ${JSON.stringify(value)} does not compile: ${(e as Error).message}`;
    }
  }
  return undefined;
}

export function compileStringMatcher(m: StringMatcher, ignoreCase = false): StringTest {
  if ('exact' in m) {
    const exact = ignoreCase ? m.exact.toLowerCase() : m.exact;
    return (v) => v === exact;
  }
  if ('prefix' in m) {
    const prefix = ignoreCase ? m.prefix.toLowerCase() : m.prefix;
    if (prefix === '') return () => true;
    return (v) => v.startsWith(prefix);
  }
  const re = compileFullMatchRegex(m.regex, ignoreCase);
  return (v) => re.test(v);
}
