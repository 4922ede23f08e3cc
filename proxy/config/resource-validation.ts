// Validation of pushed resources: shapes first (a resource from the wire is
// untrusted JSON), then references between them. Every problem is collected,
// not just the first, so one NACK tells the control plane everything that is
// wrong with a push.
import { isIP } from 'node:net';
import { JibeError } from '../../core/errors/errors.ts';
import type { ErrorCode } from '../../core/errors/errors.ts';
import type { ProxyResource, ResourceType } from '../../core/model/proxy-config.ts';
import { checkStringMatcher } from '../router/string-matcher.ts';
import { checkListenerSecurityShape } from '../security/security-validation.ts';

export const RESOURCE_TYPES: readonly ResourceType[] = ['listener', 'route', 'cluster', 'endpoints', 'mesh'];

const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const REDIRECT_CODES = new Set([301, 302, 303, 307, 308]);
const HOSTNAME = /^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$/;

export class ConfigProblems {
  readonly list: JibeError[] = [];

  add(resource: string, field: string, message: string, code: ErrorCode = 'JIBE_ERR_SCHEMA'): void {
    this.list.push(new JibeError(code, message, { resource, field: field || undefined }));
  }

  get empty(): boolean {
    return this.list.length === 0;
  }

  /** One error naming every problem; its message is what a NACK carries. */
  toError(version: string): JibeError {
    const shown = this.list.slice(0, 5).map((p) => `${p.details.resource}${p.details.field ? ' ' + p.details.field : ''}: ${p.message}`);
    const more = this.list.length > 5 ? `; and ${this.list.length - 5} more` : '';
    return new JibeError('JIBE_ERR_CONFIG_REJECTED', `config version ${version} rejected: ${shown.join('; ')}${more}`, {
      causes: this.list,
      hint: 'the proxy keeps serving its previous config',
    });
  }
}

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);
const isNonEmptyString = (v: unknown): v is string => typeof v === 'string' && v.length > 0;
const isPort = (v: unknown, allowZero = false): v is number => Number.isInteger(v) && (v as number) >= (allowZero ? 0 : 1) && (v as number) <= 65535;

export function resourceLabel(r: unknown, index: number): string {
  if (isObj(r) && typeof r.type === 'string' && typeof r.name === 'string') return `${r.type}/${r.name}`;
  return `upserts[${index}]`;
}

/** Checks one resource's shape; returns true when it can be used (no problem found). */
export function validateResourceShape(r: unknown, index: number, knownLbPolicies: (name: string) => boolean, problems: ConfigProblems): r is ProxyResource {
  const before = problems.list.length;
  const label = resourceLabel(r, index);
  if (!isObj(r)) {
    problems.add(label, '', 'resource must be an object');
    return false;
  }
  if (!RESOURCE_TYPES.includes(r.type as ResourceType)) {
    problems.add(label, 'type', `unknown resource type ${JSON.stringify(r.type)} (expected one of ${RESOURCE_TYPES.join(', ')})`);
    return false;
  }
  if (!isNonEmptyString(r.name)) {
    problems.add(label, 'name', 'name must be a non-empty string');
    return false;
  }
  switch (r.type) {
    case 'listener':
      checkListener(r, label, problems);
      break;
    case 'route':
      checkRouteConfig(r, label, problems);
      break;
    case 'cluster':
      checkCluster(r, label, knownLbPolicies, problems);
      break;
    case 'endpoints':
      checkEndpoints(r, label, problems);
      break;
    case 'mesh':
      checkMesh(r, label, problems);
      break;
  }
  return problems.list.length === before;
}

const DIRECTIONS = ['inbound', 'gateway', 'outbound'];
const LISTENER_PROTOCOLS = ['http', 'tcp', 'auto'];

function checkListener(r: Obj, label: string, problems: ConfigProblems): void {
  if (!DIRECTIONS.includes(r.direction as string)) problems.add(label, 'direction', `direction must be one of ${DIRECTIONS.join(', ')}, not ${JSON.stringify(r.direction)}`);
  if (typeof r.address !== 'string' || isIP(r.address) === 0) problems.add(label, 'address', `address must be an IP address, not ${JSON.stringify(r.address)}`);
  if (!isPort(r.port)) problems.add(label, 'port', `port must be an integer 1-65535, not ${JSON.stringify(r.port)}`);
  if (!LISTENER_PROTOCOLS.includes(r.protocol as string)) problems.add(label, 'protocol', `protocol must be one of ${LISTENER_PROTOCOLS.join(', ')}, not ${JSON.stringify(r.protocol)}`);
  // http routes everything; auto routes what it sniffs as HTTP (the rest goes to tcpRoute, or the outbound traffic policy).
  if (r.protocol !== 'tcp' && !isNonEmptyString(r.routeConfig)) problems.add(label, 'routeConfig', `routeConfig must name a route config for a ${String(r.protocol)} listener`);
  if (r.routeConfig !== undefined && !isNonEmptyString(r.routeConfig)) problems.add(label, 'routeConfig', 'routeConfig must name a route config');
  if (r.protocol === 'tcp' && r.tcpRoute === undefined) problems.add(label, 'tcpRoute', 'a tcp listener needs tcpRoute');
  if (r.tcpRoute !== undefined) {
    if (!isObj(r.tcpRoute)) problems.add(label, 'tcpRoute', 'tcpRoute must be an object');
    else checkWeightedClusters(r.tcpRoute.clusters, 'tcpRoute.clusters', label, problems);
  }
  if (r.destinationAddresses !== undefined) {
    if (r.direction !== 'outbound') problems.add(label, 'destinationAddresses', 'only outbound listeners match on destination addresses');
    if (!Array.isArray(r.destinationAddresses)) problems.add(label, 'destinationAddresses', 'destinationAddresses must be a list');
    else
      r.destinationAddresses.forEach((a: unknown, i: number) => {
        if (!isIpOrCidr(a)) problems.add(label, `destinationAddresses[${i}]`, `must be an IP address or CIDR block, not ${JSON.stringify(a)}`);
      });
  }
  if (r.rateLimits !== undefined) {
    if (!Array.isArray(r.rateLimits)) problems.add(label, 'rateLimits', 'rateLimits must be a list');
    else r.rateLimits.forEach((l: unknown, i: number) => checkRateLimit(l, `rateLimits[${i}]`, label, problems));
  }
  checkListenerSecurityShape(r, label, problems);
}

function isIpOrCidr(v: unknown): boolean {
  if (typeof v !== 'string') return false;
  const slash = v.indexOf('/');
  if (slash < 0) return isIP(v) !== 0;
  const family = isIP(v.slice(0, slash));
  const bits = v.slice(slash + 1);
  return family !== 0 && /^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128);
}

const isPositiveInt = (v: unknown): boolean => Number.isInteger(v) && (v as number) > 0;
const isPercent = (v: unknown): boolean => typeof v === 'number' && v >= 0 && v <= 100;

function checkRateLimit(l: unknown, at: string, label: string, problems: ConfigProblems): void {
  if (!isObj(l)) return problems.add(label, at, 'rate limit must be an object');
  if (!isNonEmptyString(l.name)) problems.add(label, `${at}.name`, 'name must be a non-empty string');
  for (const key of ['maxTokens', 'tokensPerFill', 'fillIntervalMs']) if (!isPositiveInt(l[key])) problems.add(label, `${at}.${key}`, `${key} must be an integer > 0`);
  if (l.match !== undefined) {
    if (!Array.isArray(l.match)) problems.add(label, `${at}.match`, 'match must be a list');
    else l.match.forEach((m: unknown, i: number) => checkMatch(m, `${at}.match[${i}]`, label, problems));
  }
  if (l.key !== undefined) {
    const k = l.key;
    const ok = isObj(k) && Object.keys(k).length === 1 && (isNonEmptyString(k.header) || k.sourcePrincipal === true || k.sourceIp === true);
    if (!ok) problems.add(label, `${at}.key`, 'key must be one of {header: name}, {sourcePrincipal: true}, {sourceIp: true}');
  }
}

function checkWeightedClusters(list: unknown, at: string, label: string, problems: ConfigProblems): void {
  if (!Array.isArray(list) || list.length === 0) return problems.add(label, at, 'clusters must be a non-empty list');
  let total = 0;
  list.forEach((c: unknown, i: number) => {
    const cAt = `${at}[${i}]`;
    if (!isObj(c)) return problems.add(label, cAt, 'weighted cluster must be an object');
    if (!isNonEmptyString(c.cluster)) problems.add(label, `${cAt}.cluster`, 'cluster must name a cluster');
    if (typeof c.weight !== 'number' || !Number.isFinite(c.weight) || c.weight < 0) problems.add(label, `${cAt}.weight`, 'weight must be a number >= 0');
    else total += c.weight;
    checkMutation(c.requestHeaders, `${cAt}.requestHeaders`, label, problems);
    checkMutation(c.responseHeaders, `${cAt}.responseHeaders`, label, problems);
  });
  if (total <= 0) problems.add(label, at, 'the weights of the clusters add up to 0', 'JIBE_ERR_WEIGHTS');
}

function checkMesh(r: Obj, label: string, problems: ConfigProblems): void {
  if (r.name !== 'mesh') problems.add(label, 'name', 'the mesh resource is named mesh');
  if (r.outboundTrafficPolicy !== 'ALLOW_ANY' && r.outboundTrafficPolicy !== 'REGISTRY_ONLY') {
    problems.add(label, 'outboundTrafficPolicy', `outboundTrafficPolicy must be ALLOW_ANY or REGISTRY_ONLY, not ${JSON.stringify(r.outboundTrafficPolicy)}`);
  }
}

function checkRouteConfig(r: Obj, label: string, problems: ConfigProblems): void {
  if (!Array.isArray(r.virtualHosts)) {
    problems.add(label, 'virtualHosts', 'virtualHosts must be a list');
    return;
  }
  const seenDomains = new Map<string, string>();
  r.virtualHosts.forEach((vh: unknown, i: number) => {
    const at = `virtualHosts[${i}]`;
    if (!isObj(vh)) return problems.add(label, at, 'virtual host must be an object');
    if (!isNonEmptyString(vh.name)) problems.add(label, `${at}.name`, 'name must be a non-empty string');
    if (!Array.isArray(vh.domains) || vh.domains.length === 0) {
      problems.add(label, `${at}.domains`, 'domains must be a non-empty list');
    } else {
      vh.domains.forEach((d: unknown, j: number) => {
        if (!isNonEmptyString(d)) return problems.add(label, `${at}.domains[${j}]`, 'domain must be a non-empty string');
        const key = d.toLowerCase();
        const other = seenDomains.get(key);
        if (other !== undefined) problems.add(label, `${at}.domains[${j}]`, `domain ${d} is also listed by virtual host ${other}`);
        else seenDomains.set(key, String(vh.name));
        if (d.length > 1 && d.slice(1, -1).includes('*')) problems.add(label, `${at}.domains[${j}]`, `domain ${d}: a wildcard may only be the first or last character`);
      });
    }
    if (!Array.isArray(vh.routes)) return problems.add(label, `${at}.routes`, 'routes must be a list');
    vh.routes.forEach((route: unknown, k: number) => checkRoute(route, `${at}.routes[${k}]`, label, problems));
  });
}

function checkRoute(route: unknown, at: string, label: string, problems: ConfigProblems): void {
  if (!isObj(route)) return problems.add(label, at, 'route must be an object');
  if (typeof route.name !== 'string') problems.add(label, `${at}.name`, 'name must be a string');
  if (!Array.isArray(route.match)) problems.add(label, `${at}.match`, 'match must be a list (empty matches everything)');
  else route.match.forEach((m: unknown, i: number) => checkMatch(m, `${at}.match[${i}]`, label, problems));
  if (!isObj(route.action)) return problems.add(label, `${at}.action`, 'action must be an object');
  checkAction(route.action, `${at}.action`, label, problems);
}

function checkMatcherField(v: unknown, at: string, label: string, problems: ConfigProblems): void {
  if (v === undefined) return;
  const problem = checkStringMatcher(v);
  if (problem) problems.add(label, at, problem);
}

function checkMatch(m: unknown, at: string, label: string, problems: ConfigProblems): void {
  if (!isObj(m)) return problems.add(label, at, 'match must be an object');
  for (const key of ['uri', 'method', 'authority', 'scheme']) checkMatcherField(m[key], `${at}.${key}`, label, problems);
  if (m.headers !== undefined) {
    if (!Array.isArray(m.headers)) problems.add(label, `${at}.headers`, 'headers must be a list');
    else
      m.headers.forEach((h: unknown, i: number) => {
        if (!isObj(h) || !isNonEmptyString(h.name)) return problems.add(label, `${at}.headers[${i}]`, 'header matcher needs a name');
        if (!HEADER_NAME.test(h.name.replace(/^:/, ''))) problems.add(label, `${at}.headers[${i}].name`, `invalid header name ${JSON.stringify(h.name)}`);
        checkMatcherField(h.match, `${at}.headers[${i}].match`, label, problems);
        if (h.invert !== undefined && typeof h.invert !== 'boolean') problems.add(label, `${at}.headers[${i}].invert`, 'invert must be a boolean');
      });
  }
  if (m.queryParams !== undefined) {
    if (!Array.isArray(m.queryParams)) problems.add(label, `${at}.queryParams`, 'queryParams must be a list');
    else
      m.queryParams.forEach((q: unknown, i: number) => {
        if (!isObj(q) || !isNonEmptyString(q.name)) return problems.add(label, `${at}.queryParams[${i}]`, 'query param matcher needs a name');
        if (q.match === undefined) return problems.add(label, `${at}.queryParams[${i}].match`, 'match is required');
        checkMatcherField(q.match, `${at}.queryParams[${i}].match`, label, problems);
      });
  }
  if (m.ignoreUriCase !== undefined && typeof m.ignoreUriCase !== 'boolean') problems.add(label, `${at}.ignoreUriCase`, 'ignoreUriCase must be a boolean');
  if (m.port !== undefined && !isPort(m.port)) problems.add(label, `${at}.port`, 'port must be an integer 1-65535');
}

function checkAction(a: Obj, at: string, label: string, problems: ConfigProblems): void {
  const kinds = ['clusters', 'redirect', 'directResponse'].filter((k) => a[k] !== undefined);
  if (kinds.length !== 1) {
    problems.add(label, at, `action must have exactly one of clusters, redirect, directResponse (has ${kinds.length ? kinds.join(', ') : 'none'})`);
  }
  if (a.clusters !== undefined) checkWeightedClusters(a.clusters, `${at}.clusters`, label, problems);
  if (a.redirect !== undefined) {
    const r = a.redirect;
    if (!isObj(r)) problems.add(label, `${at}.redirect`, 'redirect must be an object');
    else {
      if (!REDIRECT_CODES.has(r.code as number)) problems.add(label, `${at}.redirect.code`, `redirect code must be one of ${[...REDIRECT_CODES].join(', ')}`);
      if (r.uri !== undefined && (typeof r.uri !== 'string' || !r.uri.startsWith('/'))) problems.add(label, `${at}.redirect.uri`, 'uri must be a path starting with /');
      if (r.authority !== undefined && !isNonEmptyString(r.authority)) problems.add(label, `${at}.redirect.authority`, 'authority must be a non-empty string');
      if (r.port !== undefined && !isPort(r.port)) problems.add(label, `${at}.redirect.port`, 'port must be an integer 1-65535');
      if (r.scheme !== undefined && r.scheme !== 'http' && r.scheme !== 'https') problems.add(label, `${at}.redirect.scheme`, 'scheme must be http or https');
    }
  }
  if (a.directResponse !== undefined) {
    const d = a.directResponse;
    if (!isObj(d) || !Number.isInteger(d.status) || (d.status as number) < 200 || (d.status as number) > 599) {
      problems.add(label, `${at}.directResponse.status`, 'status must be an integer 200-599');
    } else if (d.body !== undefined && typeof d.body !== 'string') {
      problems.add(label, `${at}.directResponse.body`, 'body must be a string');
    }
  }
  if (a.rewrite !== undefined) {
    const w = a.rewrite;
    if (!isObj(w)) problems.add(label, `${at}.rewrite`, 'rewrite must be an object');
    else {
      if (w.uri !== undefined && typeof w.uri !== 'string') problems.add(label, `${at}.rewrite.uri`, 'uri must be a string');
      if (w.authority !== undefined && (!isNonEmptyString(w.authority) || !HEADER_VALUE.test(w.authority))) problems.add(label, `${at}.rewrite.authority`, 'authority must be a valid host');
    }
  }
  checkMutation(a.requestHeaders, `${at}.requestHeaders`, label, problems);
  checkMutation(a.responseHeaders, `${at}.responseHeaders`, label, problems);
  if (a.timeoutMs !== undefined && (typeof a.timeoutMs !== 'number' || !(a.timeoutMs >= 0))) problems.add(label, `${at}.timeoutMs`, 'timeoutMs must be a number >= 0');
  if (a.retry !== undefined) checkRetry(a.retry, `${at}.retry`, label, problems);
  if (a.fault !== undefined) checkFault(a.fault, `${at}.fault`, label, problems);
  if (a.mirror !== undefined) {
    const m = a.mirror;
    if (!isObj(m) || !isNonEmptyString(m.cluster)) problems.add(label, `${at}.mirror.cluster`, 'mirror must name a cluster');
    else if (!isPercent(m.percentage)) problems.add(label, `${at}.mirror.percentage`, 'percentage must be a number 0-100');
  }
  if (a.cors !== undefined) checkCors(a.cors, `${at}.cors`, label, problems);
}

function checkRetry(r: unknown, at: string, label: string, problems: ConfigProblems): void {
  if (!isObj(r)) return problems.add(label, at, 'retry must be an object');
  if (!Number.isInteger(r.attempts) || (r.attempts as number) < 0) problems.add(label, `${at}.attempts`, 'attempts must be an integer >= 0');
  if (r.perTryTimeoutMs !== undefined && !(typeof r.perTryTimeoutMs === 'number' && r.perTryTimeoutMs > 0)) problems.add(label, `${at}.perTryTimeoutMs`, 'perTryTimeoutMs must be a number > 0');
  if (!Array.isArray(r.retryOn) || !r.retryOn.every(isNonEmptyString)) problems.add(label, `${at}.retryOn`, 'retryOn must be a list of condition names');
  if (!Array.isArray(r.retriableStatusCodes) || !r.retriableStatusCodes.every((c) => Number.isInteger(c) && c >= 100 && c <= 599)) {
    problems.add(label, `${at}.retriableStatusCodes`, 'retriableStatusCodes must be a list of HTTP status codes');
  }
  if (!(typeof r.backoffBaseMs === 'number' && r.backoffBaseMs > 0)) problems.add(label, `${at}.backoffBaseMs`, 'backoffBaseMs must be a number > 0');
  if (!(typeof r.backoffMaxMs === 'number' && r.backoffMaxMs >= (r.backoffBaseMs as number))) problems.add(label, `${at}.backoffMaxMs`, 'backoffMaxMs must be a number >= backoffBaseMs');
}

function checkFault(f: unknown, at: string, label: string, problems: ConfigProblems): void {
  if (!isObj(f)) return problems.add(label, at, 'fault must be an object');
  if (f.delay !== undefined) {
    const d = f.delay;
    if (!isObj(d) || typeof d.fixedDelayMs !== 'number' || !(d.fixedDelayMs >= 0)) problems.add(label, `${at}.delay.fixedDelayMs`, 'fixedDelayMs must be a number >= 0');
    else if (!isPercent(d.percentage)) problems.add(label, `${at}.delay.percentage`, 'percentage must be a number 0-100');
  }
  if (f.abort !== undefined) {
    const ab = f.abort;
    if (!isObj(ab)) return problems.add(label, `${at}.abort`, 'abort must be an object');
    const http = ab.httpStatus !== undefined;
    const grpc = ab.grpcStatus !== undefined;
    if (http === grpc) problems.add(label, `${at}.abort`, 'abort must set exactly one of httpStatus, grpcStatus');
    if (http && !(Number.isInteger(ab.httpStatus) && (ab.httpStatus as number) >= 200 && (ab.httpStatus as number) <= 599)) problems.add(label, `${at}.abort.httpStatus`, 'httpStatus must be an integer 200-599');
    if (grpc && !(Number.isInteger(ab.grpcStatus) && (ab.grpcStatus as number) >= 0 && (ab.grpcStatus as number) <= 16)) problems.add(label, `${at}.abort.grpcStatus`, 'grpcStatus must be a gRPC code 0-16');
    if (!isPercent(ab.percentage)) problems.add(label, `${at}.abort.percentage`, 'percentage must be a number 0-100');
  }
}

function checkCors(c: unknown, at: string, label: string, problems: ConfigProblems): void {
  if (!isObj(c)) return problems.add(label, at, 'cors must be an object');
  if (!Array.isArray(c.allowOrigins)) problems.add(label, `${at}.allowOrigins`, 'allowOrigins must be a list');
  else c.allowOrigins.forEach((m: unknown, i: number) => checkMatcherField(m, `${at}.allowOrigins[${i}]`, label, problems));
  for (const key of ['allowMethods', 'allowHeaders', 'exposeHeaders']) {
    const list = c[key];
    if (!Array.isArray(list) || !list.every((v) => typeof v === 'string' && (v === '*' || HEADER_NAME.test(v)))) problems.add(label, `${at}.${key}`, `${key} must be a list of tokens`);
  }
  if (c.maxAgeSeconds !== undefined && !(Number.isInteger(c.maxAgeSeconds) && (c.maxAgeSeconds as number) >= 0)) problems.add(label, `${at}.maxAgeSeconds`, 'maxAgeSeconds must be an integer >= 0');
  if (c.allowCredentials !== undefined && typeof c.allowCredentials !== 'boolean') problems.add(label, `${at}.allowCredentials`, 'allowCredentials must be a boolean');
}

function checkMutation(m: unknown, at: string, label: string, problems: ConfigProblems): void {
  if (m === undefined) return;
  if (!isObj(m)) return problems.add(label, at, 'header mutation must be an object');
  for (const op of ['set', 'add'] as const) {
    const list = m[op];
    if (list === undefined) continue;
    if (!Array.isArray(list)) {
      problems.add(label, `${at}.${op}`, `${op} must be a list of [name, value] pairs`);
      continue;
    }
    list.forEach((pair: unknown, i: number) => {
      if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string' || typeof pair[1] !== 'string') {
        return problems.add(label, `${at}.${op}[${i}]`, 'must be a [name, value] pair of strings');
      }
      if (!HEADER_NAME.test(pair[0])) problems.add(label, `${at}.${op}[${i}]`, `invalid header name ${JSON.stringify(pair[0])}`);
      if (!HEADER_VALUE.test(pair[1])) problems.add(label, `${at}.${op}[${i}]`, `invalid characters in the value of header ${pair[0]}`);
    });
  }
  if (m.remove !== undefined && (!Array.isArray(m.remove) || !m.remove.every((n) => typeof n === 'string' && HEADER_NAME.test(n)))) {
    problems.add(label, `${at}.remove`, 'remove must be a list of header names');
  }
}

function checkCluster(r: Obj, label: string, knownLbPolicies: (name: string) => boolean, problems: ConfigProblems): void {
  if (typeof r.service !== 'string') problems.add(label, 'service', 'service must be a string');
  if (!isPort(r.port, true)) problems.add(label, 'port', 'port must be an integer 0-65535');
  if (r.subset !== undefined && typeof r.subset !== 'string') problems.add(label, 'subset', 'subset must be a string');
  if (typeof r.lbPolicy !== 'string' || !knownLbPolicies(r.lbPolicy)) problems.add(label, 'lbPolicy', `unknown load balancer policy ${JSON.stringify(r.lbPolicy)}`);
  if (r.protocol !== 'http1' && r.protocol !== 'http2' && r.protocol !== 'tcp') problems.add(label, 'protocol', `protocol must be http1, http2 or tcp, not ${JSON.stringify(r.protocol)}`);
  if (r.connectTimeoutMs !== undefined && !(typeof r.connectTimeoutMs === 'number' && r.connectTimeoutMs > 0)) problems.add(label, 'connectTimeoutMs', 'connectTimeoutMs must be a number > 0');
  if (r.maxConnectionsPerEndpoint !== undefined && !(Number.isInteger(r.maxConnectionsPerEndpoint) && (r.maxConnectionsPerEndpoint as number) > 0)) {
    problems.add(label, 'maxConnectionsPerEndpoint', 'maxConnectionsPerEndpoint must be an integer > 0');
  }
  checkClusterPolicies(r, label, problems);
}

function checkClusterPolicies(r: Obj, label: string, problems: ConfigProblems): void {
  if (r.lbPolicy === 'RING_HASH') {
    const h = r.consistentHash;
    if (!isObj(h)) problems.add(label, 'consistentHash', 'a RING_HASH cluster needs consistentHash');
    else {
      const keys = ['httpHeaderName', 'httpCookie', 'useSourceIp', 'httpQueryParameterName'].filter((k) => h[k] !== undefined);
      if (keys.length !== 1) problems.add(label, 'consistentHash', `consistentHash must set exactly one hash key, not ${keys.length}`);
      if (h.httpCookie !== undefined && !(isObj(h.httpCookie) && isNonEmptyString(h.httpCookie.name))) problems.add(label, 'consistentHash.httpCookie.name', 'the cookie needs a name');
      if (!isPositiveInt(h.minimumRingSize)) problems.add(label, 'consistentHash.minimumRingSize', 'minimumRingSize must be an integer > 0');
    }
  }
  if (r.tcpKeepalive !== undefined) {
    const k = r.tcpKeepalive;
    if (!isObj(k)) problems.add(label, 'tcpKeepalive', 'tcpKeepalive must be an object');
    else for (const key of ['timeMs', 'intervalMs', 'probes']) if (k[key] !== undefined && !isPositiveInt(k[key])) problems.add(label, `tcpKeepalive.${key}`, `${key} must be an integer > 0`);
  }
  if (r.circuitBreakers !== undefined) {
    const cb = r.circuitBreakers;
    if (!isObj(cb)) problems.add(label, 'circuitBreakers', 'circuitBreakers must be an object');
    else for (const [key, v] of Object.entries(cb)) if (!isPositiveInt(v)) problems.add(label, `circuitBreakers.${key}`, `${key} must be an integer > 0`);
  }
  if (r.outlierDetection !== undefined) {
    const od = r.outlierDetection;
    if (!isObj(od)) problems.add(label, 'outlierDetection', 'outlierDetection must be an object');
    else {
      for (const key of ['intervalMs', 'baseEjectionTimeMs']) if (!isPositiveInt(od[key])) problems.add(label, `outlierDetection.${key}`, `${key} must be an integer > 0`);
      for (const key of ['maxEjectionPercent', 'minHealthPercent']) if (!isPercent(od[key])) problems.add(label, `outlierDetection.${key}`, `${key} must be a number 0-100`);
      for (const key of ['consecutive5xxErrors', 'consecutiveGatewayErrors']) if (od[key] !== undefined && !isPositiveInt(od[key])) problems.add(label, `outlierDetection.${key}`, `${key} must be an integer > 0`);
    }
  }
  if (r.localityLb !== undefined) {
    const l = r.localityLb;
    if (!isObj(l) || !(typeof l.overprovisioningFactor === 'number' && l.overprovisioningFactor > 0)) problems.add(label, 'localityLb', 'localityLb needs an overprovisioningFactor > 0');
    else if (l.localityWeights !== undefined && !(isObj(l.localityWeights) && Object.values(l.localityWeights).every((w) => typeof w === 'number' && w >= 0 && Number.isFinite(w)))) {
      problems.add(label, 'localityLb.localityWeights', 'locality weights must be numbers >= 0');
    }
  }
  if (r.retryBudget !== undefined) {
    const b = r.retryBudget;
    if (!isObj(b) || !(typeof b.retryRatio === 'number' && b.retryRatio >= 0) || !(typeof b.minRetriesPerSecond === 'number' && b.minRetriesPerSecond >= 0) || !isPositiveInt(b.ttlMs)) {
      problems.add(label, 'retryBudget', 'retryBudget needs retryRatio >= 0, minRetriesPerSecond >= 0 and an integer ttlMs > 0');
    }
  }
}

function checkEndpoints(r: Obj, label: string, problems: ConfigProblems): void {
  if (!Array.isArray(r.endpoints)) return problems.add(label, 'endpoints', 'endpoints must be a list');
  r.endpoints.forEach((e: unknown, i: number) => {
    const at = `endpoints[${i}]`;
    if (!isObj(e)) return problems.add(label, at, 'endpoint must be an object');
    if (typeof e.address !== 'string' || (isIP(e.address) === 0 && !HOSTNAME.test(e.address))) problems.add(label, `${at}.address`, `address must be an IP address or host name, not ${JSON.stringify(e.address)}`);
    if (!isPort(e.port)) problems.add(label, `${at}.port`, 'port must be an integer 1-65535');
    if (typeof e.healthy !== 'boolean') problems.add(label, `${at}.healthy`, 'healthy must be a boolean');
    if (e.weight !== undefined && !(typeof e.weight === 'number' && e.weight >= 0 && Number.isFinite(e.weight))) problems.add(label, `${at}.weight`, 'weight must be a number >= 0');
    if (e.priority !== undefined && !(Number.isInteger(e.priority) && (e.priority as number) >= 0)) problems.add(label, `${at}.priority`, 'priority must be an integer >= 0');
  });
}
