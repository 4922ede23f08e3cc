// What a VirtualService's schema cannot say: one action per http route,
// weights adding up to 100, one kind of string match, regexes and hosts that
// make sense, retry conditions Envoy-style proxies know.
import { listWords } from './check-context.ts';
import type { Report, SpecCheck } from './check-context.ts';
import { asArray, asObject, asString, eachEntry, eachObject } from './check-context.ts';
import { checkExportTo, checkHeaderName, checkHost, checkMinDuration, checkStringMatch } from './check-common.ts';
import { isDns1123Label, isIpOrCidr, LABEL_RULE, MESH_GATEWAY, parseGatewayRef } from '../names.ts';

const RETRY_ON = new Set([
  '5xx', 'gateway-error', 'reset', 'reset-before-request', 'connect-failure', 'envoy-ratelimited', 'retriable-4xx',
  'refused-stream', 'retriable-status-codes', 'retriable-headers', 'http3-post-connect-failure',
  // gRPC status conditions
  'cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted', 'unavailable',
]);

export const checkVirtualService: SpecCheck = (spec, report) => {
  const gateways = asArray(spec.gateways);
  const boundToMesh = gateways.length === 0 || gateways.includes(MESH_GATEWAY);
  asArray(spec.hosts).forEach((host, i) => {
    checkHost(host, `spec.hosts[${i}]`, report);
    if (host === '*' && boundToMesh) {
      report('JIBE_ERR_SCHEMA', `spec.hosts[${i}]`, 'host "*" would capture traffic to every service in the mesh; use it only with spec.gateways that do not include "mesh"');
    }
  });
  gateways.forEach((g, i) => checkGatewayRef(g, `spec.gateways[${i}]`, report));
  if (asArray(spec.http).length === 0 && asArray(spec.tcp).length === 0) {
    report('JIBE_ERR_SCHEMA', 'spec', 'a VirtualService needs at least one route in spec.http or spec.tcp');
  }
  eachObject(spec.http, 'spec.http', (route, field) => checkHttpRoute(route, field, report));
  eachObject(spec.tcp, 'spec.tcp', (route, field) => checkTcpRoute(route, field, report));
  checkExportTo(spec.exportTo, 'spec.exportTo', report);
};

function checkGatewayRef(ref: unknown, field: string, report: Report): void {
  if (typeof ref === 'string' && parseGatewayRef(ref, 'default') === undefined) {
    report('JIBE_ERR_SCHEMA', field, `invalid gateway reference ${JSON.stringify(ref)} (use "mesh", a Gateway name in this namespace, or "namespace/name")`);
  }
}

function checkHttpRoute(route: Record<string, unknown>, field: string, report: Report): void {
  const actions = (['route', 'redirect', 'directResponse'] as const).filter((k) => (k === 'route' ? asArray(route.route).length > 0 : route[k] !== undefined));
  if (actions.length === 0) {
    report('JIBE_ERR_SCHEMA', field, 'an http route needs one of route (destinations), redirect or directResponse');
  } else if (actions.length > 1) {
    report('JIBE_ERR_SCHEMA', field, `${listWords(actions)} are mutually exclusive in one http route; keep one of them`);
  }
  if (route.rewrite !== undefined && route.redirect !== undefined) {
    report('JIBE_ERR_SCHEMA', `${field}.rewrite`, 'rewrite cannot be combined with redirect (a redirect is answered by the proxy, nothing is forwarded to rewrite)');
  }
  eachObject(route.match, `${field}.match`, (m, f) => checkHttpMatch(m, f, report));
  eachObject(route.route, `${field}.route`, (d, f) => checkDestination(d.destination, `${f}.destination`, report));
  checkWeights(route.route, `${field}.route`, report);
  checkRedirect(route.redirect, `${field}.redirect`, report);
  const rewrite = asObject(route.rewrite);
  if (rewrite && rewrite.uri === undefined && rewrite.authority === undefined) {
    report('JIBE_ERR_SCHEMA', `${field}.rewrite`, 'rewrite must set uri or authority');
  }
  checkDirectResponse(route.directResponse, `${field}.directResponse`, report);
  checkMinDuration(route.timeout, `${field}.timeout`, report, 0);
  checkRetries(route.retries, `${field}.retries`, report);
  checkFault(route.fault, `${field}.fault`, report);
  checkMirror(route, field, actions, report);
  checkCors(route.corsPolicy, `${field}.corsPolicy`, report);
}

/** Istio: one of `mirror` (with `mirrorPercentage`) or `mirrors`, and only beside destinations. */
function checkMirror(route: Record<string, unknown>, field: string, actions: string[], report: Report): void {
  if (route.mirror !== undefined && route.mirrors !== undefined) {
    report('JIBE_ERR_SCHEMA', `${field}.mirrors`, 'mirror and mirrors are mutually exclusive; list every mirror under mirrors');
  }
  if (route.mirrorPercentage !== undefined && route.mirror === undefined) {
    report('JIBE_ERR_SCHEMA', `${field}.mirrorPercentage`, 'mirrorPercentage needs mirror (with mirrors, set percentage on each entry)');
  }
  if ((route.mirror !== undefined || asArray(route.mirrors).length > 0) && actions.length > 0 && !actions.includes('route')) {
    report('JIBE_ERR_SCHEMA', `${field}.mirror`, `mirroring copies forwarded requests; a route answered by ${actions[0]} forwards nothing`);
  }
  if (asArray(route.mirrors).length > 1) {
    report('JIBE_ERR_SCHEMA', `${field}.mirrors`, 'Jibe mirrors a route to one destination; keep one entry in mirrors');
  }
  checkDestination(route.mirror, `${field}.mirror`, report);
  eachObject(route.mirrors, `${field}.mirrors`, (m, f) => checkDestination(m.destination, `${f}.destination`, report));
}

const METHOD = /^[A-Z]+$/;

function checkCors(value: unknown, field: string, report: Report): void {
  const cors = asObject(value);
  if (!cors) return;
  asArray(cors.allowOrigins).forEach((o, i) => checkStringMatch(o, `${field}.allowOrigins[${i}]`, report));
  asArray(cors.allowMethods).forEach((m, i) => {
    if (typeof m === 'string' && !METHOD.test(m)) report('JIBE_ERR_SCHEMA', `${field}.allowMethods[${i}]`, `invalid method ${JSON.stringify(m)} (use upper-case HTTP methods such as GET, POST)`);
  });
  for (const key of ['allowHeaders', 'exposeHeaders']) {
    // `*` is a valid wildcard in both lists (Fetch standard).
    asArray(cors[key]).forEach((h, i) => {
      if (h !== '*') checkHeaderName(h, `${field}.${key}[${i}]`, report);
    });
  }
  checkMinDuration(cors.maxAge, `${field}.maxAge`, report, 0);
}

function checkHttpMatch(m: Record<string, unknown>, field: string, report: Report): void {
  for (const key of ['uri', 'scheme', 'method', 'authority']) checkStringMatch(m[key], `${field}.${key}`, report);
  for (const key of ['headers', 'withoutHeaders']) {
    eachEntry(m[key], `${field}.${key}`, (name, value, f) => {
      if (name.length === 0) report('JIBE_ERR_SCHEMA', f, 'header name must not be empty');
      checkStringMatch(value, f, report, { allowEmpty: true });
    });
  }
  eachEntry(m.queryParams, `${field}.queryParams`, (_name, value, f) => checkStringMatch(value, f, report, { allowPrefix: false }));
  const sourceNamespace = asString(m.sourceNamespace);
  if (sourceNamespace !== undefined && !isDns1123Label(sourceNamespace)) {
    report('JIBE_ERR_SCHEMA', `${field}.sourceNamespace`, `invalid namespace ${JSON.stringify(sourceNamespace)}: use ${LABEL_RULE}`);
  }
  asArray(m.gateways).forEach((g, i) => checkGatewayRef(g, `${field}.gateways[${i}]`, report));
}

function checkDestination(value: unknown, field: string, report: Report): void {
  const d = asObject(value);
  if (!d) return;
  checkHost(d.host, `${field}.host`, report);
  const subset = asString(d.subset);
  if (subset !== undefined && !isDns1123Label(subset)) {
    report('JIBE_ERR_SCHEMA', `${field}.subset`, `invalid subset name ${JSON.stringify(subset)}: use ${LABEL_RULE}`);
  }
}

/**
 * Several destinations share traffic by weight, and the shares must add up to
 * 100 (an omitted weight counts as 0). A single destination gets everything.
 */
export function checkWeights(list: unknown, field: string, report: Report): void {
  const dests = asArray(list).map(asObject);
  // A weight the schema refuses (not a whole number in 0..100) is reported once, there.
  const bad = (w: unknown) => w !== undefined && !(Number.isInteger(w) && (w as number) >= 0 && (w as number) <= 100);
  if (dests.length === 0 || dests.some((d) => !d || bad(d.weight))) return;
  const weights = dests.map((d) => d!.weight as number | undefined);
  if (dests.length === 1) {
    if (weights[0] !== undefined && weights[0] !== 100 && weights[0] !== 0) {
      report('JIBE_ERR_WEIGHTS', field, `the only destination receives all traffic, so its weight must be 100 or omitted, not ${weights[0]}`);
    }
    return;
  }
  const sum = weights.reduce<number>((a, w) => a + (w ?? 0), 0);
  if (sum === 100) return;
  const parts = dests.map((d, i) => {
    const dest = asObject(d!.destination);
    const name = [asString(dest?.host) ?? '?', asString(dest?.subset)].filter(Boolean).join(' ');
    return `${name}: ${weights[i] ?? 'no weight'}`;
  });
  const omitted = weights.includes(undefined) ? '; a destination without weight counts as 0' : '';
  report('JIBE_ERR_WEIGHTS', field, `weights add up to ${sum}, not 100 (${parts.join(', ')})${omitted}; make them add up to 100`);
}

function checkRedirect(value: unknown, field: string, report: Report): void {
  const r = asObject(value);
  if (!r) return;
  if (r.uri === undefined && r.authority === undefined && r.port === undefined && r.scheme === undefined) {
    report('JIBE_ERR_SCHEMA', field, 'redirect must set at least one of uri, authority, port or scheme');
  }
  const scheme = asString(r.scheme);
  if (scheme !== undefined && scheme !== 'http' && scheme !== 'https') {
    report('JIBE_ERR_SCHEMA', `${field}.scheme`, `redirect scheme must be "http" or "https", not ${JSON.stringify(scheme)}`);
  }
}

function checkDirectResponse(value: unknown, field: string, report: Report): void {
  const body = asObject(asObject(value)?.body);
  if (!body) return;
  if ((body.string === undefined) === (body.bytes === undefined)) {
    report('JIBE_ERR_SCHEMA', `${field}.body`, 'set exactly one of string or bytes');
  }
  const bytes = asString(body.bytes);
  if (bytes !== undefined && !/^[A-Za-z0-9+/]*={0,2}$/.test(bytes)) {
    report('JIBE_ERR_SCHEMA', `${field}.body.bytes`, 'bytes must be base64-encoded');
  }
}

function checkRetries(value: unknown, field: string, report: Report): void {
  const retries = asObject(value);
  checkMinDuration(retries?.perTryTimeout, `${field}.perTryTimeout`, report);
  const retryOn = asString(retries?.retryOn);
  if (retryOn === undefined) return;
  for (const condition of retryOn.split(',').map((c) => c.trim())) {
    const status = /^\d+$/.test(condition) ? Number(condition) : NaN;
    if (RETRY_ON.has(condition) || (status >= 100 && status <= 599)) continue;
    report('JIBE_ERR_SCHEMA', `${field}.retryOn`, `unknown retry condition ${JSON.stringify(condition)} (use a comma-separated list of HTTP status codes and of: ${[...RETRY_ON].join(', ')})`);
  }
}

function checkFault(value: unknown, field: string, report: Report): void {
  const fault = asObject(value);
  if (!fault) return;
  if (fault.delay === undefined && fault.abort === undefined) report('JIBE_ERR_SCHEMA', field, 'fault must set delay, abort or both');
  const abort = asObject(fault.abort);
  if (abort && (abort.httpStatus === undefined) === (abort.grpcStatus === undefined)) {
    report('JIBE_ERR_SCHEMA', `${field}.abort`, 'abort must set exactly one of httpStatus or grpcStatus');
  }
  checkMinDuration(asObject(fault.delay)?.fixedDelay, `${field}.delay.fixedDelay`, report);
}

function checkTcpRoute(route: Record<string, unknown>, field: string, report: Report): void {
  if (asArray(route.route).length === 0) report('JIBE_ERR_SCHEMA', `${field}.route`, 'a tcp route needs at least one destination');
  eachObject(route.match, `${field}.match`, (m, f) => {
    asArray(m.destinationSubnets).forEach((s, i) => {
      if (typeof s === 'string' && !isIpOrCidr(s)) report('JIBE_ERR_SCHEMA', `${f}.destinationSubnets[${i}]`, `invalid subnet ${JSON.stringify(s)} (use an IP address or CIDR block like 10.0.0.0/8)`);
    });
    asArray(m.gateways).forEach((g, i) => checkGatewayRef(g, `${f}.gateways[${i}]`, report));
  });
  eachObject(route.route, `${field}.route`, (d, f) => checkDestination(d.destination, `${f}.destination`, report));
  checkWeights(route.route, `${field}.route`, report);
}
