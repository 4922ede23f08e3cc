// One access log line per request: JSON by default (what log pipelines ingest;
// the shape of a pino line, `{"level":30,"time":…,…,"msg":"access"}`), or
// Envoy's default text format for people reading a terminal. Built only when
// the log is on, after the response is over.
//
// The line is one template string: pino's generic serializer (a property walk
// and an escape check per value, an ISO date per line) cost the sidecar more
// than the rest of its telemetry together. Lines go to stdout in batches
// (access-log-batch.ts), one write per ~100 lines.
import type { DestinationStream } from 'pino';
import { AccessLogBatch } from './access-log-batch.ts';

export type AccessLogFormat = 'json' | 'text';

/**
 * Everything one access log line says about a request. The proxy fills one
 * entry object and reuses it for every line (formatting never keeps it), so
 * optional fields are reset to undefined rather than deleted.
 */
export interface AccessLogEntry {
  /** Epoch milliseconds the request started (rendered as an ISO time). */
  startMs: number;
  /** Epoch milliseconds the line is written (pino's `time`). */
  nowMs: number;
  method: string;
  authority: string;
  path: string;
  protocol: string;
  response_code: number;
  response_flags: string;
  bytes_received: number;
  bytes_sent: number;
  duration_ms: number;
  upstream_host: string;
  upstream_cluster: string;
  route_name: string;
  x_request_id: string;
  trace_id: string;
  downstream_remote_address: string;
  /** Who called whom: the request's identity labels (one long-lived object per identity, so its JSON is made once). */
  identity: AccessLogIdentity;
  grpc_status?: string;
  /** The AuthorizationPolicy (or CUSTOM provider policy) that decided, when one did. */
  authz_policy?: string;
  authz_result?: string;
  user_agent?: string;
}

/** The identity labels a line carries (Istio's metric label names; logged as source_namespace / destination_namespace). */
export interface AccessLogIdentity {
  readonly source_workload: string;
  readonly source_workload_namespace: string;
  readonly source_principal: string;
  readonly destination_workload: string;
  readonly destination_workload_namespace: string;
  readonly destination_principal: string;
  readonly destination_service: string;
  readonly reporter: string;
}

export interface AccessLog {
  readonly format: AccessLogFormat;
  write(entry: AccessLogEntry): void;
  flush(): void;
  /** Flushes and stops the periodic flush. */
  close(): void;
}

/**
 * `destination` undefined: batched to stdout (access-log-batch.ts). A
 * destination passed in gets each line as it is made (it does its own
 * buffering, if any).
 */
export function createAccessLog(format: AccessLogFormat, destination?: DestinationStream): AccessLog {
  const format1 = format === 'json' ? formatJsonLine : formatTextLine;
  if (destination !== undefined) {
    const flushStream = (): void => (destination as { flush?: () => void }).flush?.();
    return { format, write: (entry) => void destination.write(format1(entry)), flush: flushStream, close: flushStream };
  }
  const batch = new AccessLogBatch({ droppedLine: format === 'json' ? droppedJsonLine : droppedTextLine });
  return {
    format,
    write: (entry) => batch.add(format1(entry)),
    flush: () => batch.flush(),
    close: () => batch.close(),
  };
}

/** The line a stall leaves in the log, in pino's shape (level 40: warn). */
export function droppedJsonLine(dropped: number, nowMs: number): string {
  return '{"level":40,"time":"' + isoTime(nowMs) + '","dropped_lines":' + dropped + ',"msg":"access log lines dropped: stdout was not read fast enough"}\n';
}

export function droppedTextLine(dropped: number, nowMs: number): string {
  return '[' + isoTime(nowMs) + '] access log: ' + dropped + ' lines dropped: stdout was not read fast enough\n';
}

// `YYYY-MM-DDTHH:MM:SS.` of the second last formatted: lines of one second share it.
let isoSecond = -1;
let isoPrefix = '';

/** `new Date(ms).toISOString()` with the date part formatted once per second. */
export function isoTime(ms: number): string {
  const whole = Math.floor(ms);
  const second = Math.floor(whole / 1000);
  if (second !== isoSecond) {
    isoSecond = second;
    isoPrefix = new Date(second * 1000).toISOString().slice(0, 20);
  }
  const milli = whole - second * 1000;
  return isoPrefix + (milli < 10 ? '00' : milli < 100 ? '0' : '') + milli + 'Z';
}

/** A JSON string literal; JSON.stringify only for the rare value that needs escaping. */
export function jsonString(value: string): string {
  // A charCode loop beats a regex character class on the short strings of a line.
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    // Control characters, `"`, `\`, and surrogates (a lone one is written as a \u escape by JSON.stringify).
    if (c < 32 || c === 34 || c === 92 || (c >= 0xd800 && c <= 0xdfff)) return JSON.stringify(value);
  }
  return '"' + value + '"';
}

const identityJson = new WeakMap<AccessLogIdentity, string>();
// A proxy's lines come in runs of one caller, one upstream: the last fragment is kept beside the map.
let lastIdentity: AccessLogIdentity | undefined;
let lastIdentityJson = '';

function identityFragment(id: AccessLogIdentity): string {
  if (id === lastIdentity) return lastIdentityJson;
  let json = identityJson.get(id);
  if (json === undefined) {
    json =
      ',"source_workload":' + jsonString(id.source_workload) +
      ',"source_namespace":' + jsonString(id.source_workload_namespace) +
      ',"source_principal":' + jsonString(id.source_principal) +
      ',"destination_workload":' + jsonString(id.destination_workload) +
      ',"destination_namespace":' + jsonString(id.destination_workload_namespace) +
      ',"destination_principal":' + jsonString(id.destination_principal) +
      ',"destination_service":' + jsonString(id.destination_service) +
      ',"reporter":' + jsonString(id.reporter);
    identityJson.set(id, json);
  }
  lastIdentity = id;
  lastIdentityJson = json;
  return json;
}

// `"upstream_host":…,"upstream_cluster":…,"route_name":…` of the last line: the same for every
// request of one route to one endpoint, so consecutive lines skip three escape scans and five joins.
let lastHost = '';
let lastCluster = '';
let lastRoute = '';
let lastUpstreamJson = ',"upstream_host":"","upstream_cluster":"","route_name":""';

function upstreamFragment(host: string, cluster: string, route: string): string {
  if (host !== lastHost || cluster !== lastCluster || route !== lastRoute) {
    lastUpstreamJson = ',"upstream_host":' + jsonString(host) + ',"upstream_cluster":' + jsonString(cluster) + ',"route_name":' + jsonString(route);
    lastHost = host;
    lastCluster = cluster;
    lastRoute = route;
  }
  return lastUpstreamJson;
}

/** The JSON line, field for field what pino wrote for `logger.info(entry, 'access')`. */
export function formatJsonLine(e: AccessLogEntry): string {
  let line =
    '{"level":30,"time":"' + isoTime(e.nowMs) +
    '","start_time":"' + isoTime(e.startMs) +
    '","method":' + jsonString(e.method) +
    ',"authority":' + jsonString(e.authority) +
    ',"path":' + jsonString(e.path) +
    ',"protocol":"' + e.protocol +
    '","response_code":' + e.response_code +
    ',"response_flags":"' + e.response_flags +
    '","bytes_received":' + e.bytes_received +
    ',"bytes_sent":' + e.bytes_sent +
    ',"duration_ms":' + e.duration_ms +
    upstreamFragment(e.upstream_host, e.upstream_cluster, e.route_name) +
    ',"x_request_id":' + jsonString(e.x_request_id) +
    ',"trace_id":' + jsonString(e.trace_id) +
    ',"downstream_remote_address":' + jsonString(e.downstream_remote_address) +
    identityFragment(e.identity);
  if (e.user_agent !== undefined) line += ',"user_agent":' + jsonString(e.user_agent);
  if (e.grpc_status !== undefined) line += ',"grpc_status":"' + e.grpc_status + '"';
  if (e.authz_policy !== undefined) line += ',"authz_policy":' + jsonString(e.authz_policy) + ',"authz_result":' + jsonString(e.authz_result ?? '');
  return line + ',"msg":"access"}\n';
}

/**
 * Envoy's default format: `[%START_TIME%] "%REQ(:METHOD)% %REQ(:PATH)% %PROTOCOL%"
 * %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION%
 * "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%"
 * "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"`, with Istio's additions (cluster,
 * trace, identities, deciding policy).
 */
export function formatTextLine(e: AccessLogEntry): string {
  const id = e.identity;
  return (
    `[${isoTime(e.startMs)}] "${e.method} ${e.path} ${e.protocol}" ${e.response_code} ${e.response_flags} ${e.bytes_received} ${e.bytes_sent} ${Math.round(e.duration_ms)} ` +
    `"${e.downstream_remote_address || '-'}" "${e.user_agent ?? '-'}" "${e.x_request_id || '-'}" "${e.authority || '-'}" "${e.upstream_host || '-'}" ` +
    `${e.upstream_cluster || '-'} ${e.route_name || '-'} trace=${e.trace_id || '-'} ` +
    `src=${id.source_principal !== 'unknown' ? id.source_principal : `${id.source_workload}.${id.source_workload_namespace}`} ` +
    `dst=${id.destination_principal !== 'unknown' ? id.destination_principal : `${id.destination_workload}.${id.destination_workload_namespace}`}` +
    (e.authz_policy !== undefined ? ` authz=${e.authz_result ?? ''}:${e.authz_policy}` : '') +
    '\n'
  );
}
