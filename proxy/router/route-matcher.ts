// Route matching: a virtual host's routes are tried in order and the first
// route with a matching RouteMatch wins (matches of one route are OR'ed, the
// conditions of one match AND'ed), as in Envoy. Each RouteMatch is compiled
// once into plain fields and pre-built tests, so matching a request does no
// parsing beyond what the request itself needs (query string only when some
// route asks for query params).
import type { HeaderMatcher, RouteMatch } from '../../core/model/proxy-config.ts';
import { compileStringMatcher } from './string-matcher.ts';
import type { StringTest } from './string-matcher.ts';

/** What route matching reads from a request (the exchange implements it). */
export interface MatchInput {
  readonly method: string;
  /** Path without the query string. */
  readonly path: string;
  readonly authority: string;
  readonly scheme: string;
  /** Port of the listener the request arrived on. */
  readonly listenerPort: number;
  lowerPath(): string;
  /** A request header by lower-case name; repeated headers joined by `,`. */
  header(name: string): string | undefined;
  /** A decoded query parameter, or undefined when absent. */
  queryParam(name: string): string | undefined;
  /** Written by matchRoute: length of the uri prefix that matched, -1 when the match was not a uri prefix. */
  matchedPrefixLength: number;
}

interface CompiledHeaderTest {
  name: string;
  /** Pseudo-header (`:authority`, `:method`, `:path`, `:scheme`) read from the request line instead. */
  pseudo: 0 | 1 | 2 | 3 | 4;
  test: StringTest | undefined;
  invert: boolean;
}

interface CompiledQueryTest {
  name: string;
  /** undefined: presence is enough. */
  test: StringTest | undefined;
}

const PSEUDO: Record<string, 1 | 2 | 3 | 4> = { ':authority': 1, ':method': 2, ':path': 3, ':scheme': 4, host: 1 };

export class CompiledMatch {
  private readonly uri: StringTest | undefined;
  private readonly ignoreUriCase: boolean;
  /** Length of the uri prefix matched (for prefix rewrites); -1 when the uri match is not a prefix. */
  readonly prefixLength: number;
  private readonly method: StringTest | undefined;
  private readonly authority: StringTest | undefined;
  private readonly scheme: StringTest | undefined;
  private readonly headers: CompiledHeaderTest[] | undefined;
  private readonly query: CompiledQueryTest[] | undefined;
  private readonly port: number;

  constructor(m: RouteMatch) {
    this.ignoreUriCase = m.ignoreUriCase === true;
    this.uri = m.uri ? compileStringMatcher(m.uri, this.ignoreUriCase) : undefined;
    this.prefixLength = m.uri && 'prefix' in m.uri ? m.uri.prefix.length : -1;
    this.method = m.method ? compileStringMatcher(m.method) : undefined;
    this.authority = m.authority ? compileStringMatcher(m.authority) : undefined;
    this.scheme = m.scheme ? compileStringMatcher(m.scheme) : undefined;
    this.headers = m.headers?.length ? m.headers.map(compileHeaderTest) : undefined;
    this.query = m.queryParams?.length
      ? m.queryParams.map((q) => ({
          name: q.name,
          test: 'exact' in q.match && q.match.exact === '' ? undefined : compileStringMatcher(q.match),
        }))
      : undefined;
    this.port = m.port ?? 0;
  }

  test(input: MatchInput): boolean {
    if (this.port !== 0 && this.port !== input.listenerPort) return false;
    if (this.uri !== undefined && !this.uri(this.ignoreUriCase ? input.lowerPath() : input.path)) return false;
    if (this.method !== undefined && !this.method(input.method)) return false;
    if (this.authority !== undefined && !this.authority(input.authority)) return false;
    if (this.scheme !== undefined && !this.scheme(input.scheme)) return false;
    if (this.headers !== undefined) {
      for (const h of this.headers) if (!testHeader(h, input)) return false;
    }
    if (this.query !== undefined) {
      for (const q of this.query) {
        const value = input.queryParam(q.name);
        if (value === undefined || (q.test !== undefined && !q.test(value))) return false;
      }
    }
    return true;
  }
}

function compileHeaderTest(h: HeaderMatcher): CompiledHeaderTest {
  const name = h.name.toLowerCase();
  return {
    name,
    pseudo: PSEUDO[name] ?? 0,
    test: h.match ? compileStringMatcher(h.match) : undefined,
    invert: h.invert === true,
  };
}

function testHeader(h: CompiledHeaderTest, input: MatchInput): boolean {
  let value: string | undefined;
  switch (h.pseudo) {
    case 0:
      value = input.header(h.name);
      break;
    case 1:
      value = input.authority;
      break;
    case 2:
      value = input.method;
      break;
    case 3:
      value = input.path;
      break;
    case 4:
      value = input.scheme;
      break;
  }
  const matched = value !== undefined && (h.test === undefined || h.test(value));
  return matched !== h.invert;
}

/** A route's matches; an empty list matches every request. */
export interface MatchableRoute {
  readonly matches: readonly CompiledMatch[];
}

/**
 * The first route that matches, or undefined (no route: NR). Records the
 * matched uri prefix length on the input, for prefix rewrites, so that no
 * result object is allocated per request.
 */
export function matchRoute<R extends MatchableRoute>(routes: readonly R[], input: MatchInput): R | undefined {
  for (const route of routes) {
    const matches = route.matches;
    if (matches.length === 0) {
      input.matchedPrefixLength = -1;
      return route;
    }
    for (const m of matches) {
      if (m.test(input)) {
        input.matchedPrefixLength = m.prefixLength;
        return route;
      }
    }
  }
  return undefined;
}
