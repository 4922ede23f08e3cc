// One access log line per request: JSON by default (what log pipelines ingest;
// the shape of a pino line, `{"level":30,"time":…,…,"msg":"access"}`), or
// Envoy's default text format for people reading a terminal. Built only when
// the log is on, after the response is over.
//
// pino's generic serializer (a property walk and an escape check per value, an
// ISO date per line) cost the sidecar more than the rest of its telemetry
// together: the JSON line is written by access-log-json.ts, straight into the
// batch that goes to stdout (access-log-batch.ts, one write per ~100 lines).
import type { DestinationStream } from 'pino';
import { AccessLogBatch } from './access-log-batch.ts';
import { jsonLineBound, writeJsonLine } from './access-log-json.ts';
import { isoTime } from './access-log-time.ts';

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
  /**
   * The entry for the next line. The caller sets every field (it may hold an
   * older line's values) and then calls `commit`; the log keeps no other copy.
   */
  next(): AccessLogEntry;
  /** The entry `next` gave is filled: it becomes a line. */
  commit(): void;
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
  // Lines made one at a time reuse one entry.
  const entry = newAccessLogEntry();
  const next = (): AccessLogEntry => entry;
  if (destination !== undefined) {
    const flushStream = (): void => (destination as { flush?: () => void }).flush?.();
    return { format, next, commit: () => void destination.write(format1(entry)), flush: flushStream, close: flushStream };
  }
  if (format === 'text') {
    const batch = new AccessLogBatch({ droppedLine: droppedTextLine });
    return { format, next, commit: () => batch.add(formatTextLine(entry)), flush: () => batch.flush(), close: () => batch.close() };
  }
  // JSON entries wait in a ring of PENDING_LINES and are formatted together when it is full or the batch is about
  // to be written: the formatter's code and constants then stay in the CPU's caches across lines, instead of being
  // fetched again between two requests' work. The proxy fills the ring's entries in place.
  const pending: AccessLogEntry[] = [];
  let count = 0;
  const writeJson = (entry: AccessLogEntry): void => {
    // Straight into the batch; only a line too long for any batch (a path of tens of KiB) is made as a string.
    if (batch.reserve(jsonLineBound(entry))) batch.commit(writeJsonLine(entry, batch.buffer, batch.offset));
    else batch.add(formatJsonLine(entry));
  };
  const formatPending = (): void => {
    const n = count;
    // Zero first: a batch that fills meanwhile flushes, and its flush must not format these lines again.
    count = 0;
    for (let i = 0; i < n; i++) writeJson(pending[i]);
  };
  const batch = new AccessLogBatch({ droppedLine: droppedJsonLine, beforeFlush: formatPending });
  return {
    format,
    next: () => {
      if (count === PENDING_LINES) formatPending();
      if (count === pending.length) pending.push(newAccessLogEntry());
      return pending[count];
    },
    commit: () => void count++,
    flush: () => batch.flush(),
    close: () => batch.close(),
  };
}

/** JSON lines formatted together (see createAccessLog). */
const PENDING_LINES = 64;

/** An entry with every field present (one object shape for all of them); its values are placeholders. */
function newAccessLogEntry(): AccessLogEntry {
  return {
    startMs: 0, nowMs: 0, method: '', authority: '', path: '', protocol: '', response_code: 0, response_flags: '', bytes_received: 0, bytes_sent: 0,
    duration_ms: 0, upstream_host: '', upstream_cluster: '', route_name: '', x_request_id: '', trace_id: '', downstream_remote_address: '',
    identity: NO_IDENTITY, grpc_status: undefined, authz_policy: undefined, authz_result: undefined, user_agent: undefined,
  };
}

const NO_IDENTITY: AccessLogIdentity = {
  source_workload: '', source_workload_namespace: '', source_principal: '', destination_workload: '', destination_workload_namespace: '',
  destination_principal: '', destination_service: '', reporter: '',
};

/** The line a stall leaves in the log, in pino's shape (level 40: warn). */
export function droppedJsonLine(dropped: number, nowMs: number): string {
  return '{"level":40,"time":"' + isoTime(nowMs) + '","dropped_lines":' + dropped + ',"msg":"access log lines dropped: stdout was not read fast enough"}\n';
}

export function droppedTextLine(dropped: number, nowMs: number): string {
  return '[' + isoTime(nowMs) + '] access log: ' + dropped + ' lines dropped: stdout was not read fast enough\n';
}

/** The JSON line as a string (a destination passed in, tests): the same bytes the batch gets. */
export function formatJsonLine(e: AccessLogEntry): string {
  const scratch = Buffer.allocUnsafe(jsonLineBound(e));
  return scratch.toString('utf8', 0, writeJsonLine(e, scratch, 0));
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
