// One access log line per request, through pino: JSON by default (what log
// pipelines ingest), or Envoy's default text format for people reading a
// terminal. Built only when the log is on, after the response is over.
import pino from 'pino';
import type { DestinationStream, Logger } from 'pino';

export type AccessLogFormat = 'json' | 'text';

/** Everything one access log line says about a request. */
export interface AccessLogEntry {
  /** ISO time the request started. */
  start_time: string;
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
  source_workload: string;
  source_namespace: string;
  source_principal: string;
  destination_workload: string;
  destination_namespace: string;
  destination_principal: string;
  destination_service: string;
  reporter: string;
  grpc_status?: string;
  /** The AuthorizationPolicy (or CUSTOM provider policy) that decided, when one did. */
  authz_policy?: string;
  authz_result?: string;
  user_agent?: string;
}

export interface AccessLog {
  readonly format: AccessLogFormat;
  write(entry: AccessLogEntry): void;
  flush(): void;
  /** Flushes and stops the periodic flush. */
  close(): void;
}

/**
 * Lines are buffered (4 KiB) so a busy proxy makes one write per many
 * requests; a quiet one would hold its lines forever, so a timer flushes what
 * is pending, as Envoy's access log flush interval does.
 */
export const ACCESS_LOG_FLUSH_MS = 1000;

/**
 * `destination` defaults to stdout (file descriptor 1), written by pino's
 * sonic-boom without blocking the event loop on each line.
 */
export function createAccessLog(format: AccessLogFormat, destination?: DestinationStream): AccessLog {
  const stream = destination ?? pino.destination({ dest: 1, sync: false, minLength: 4096 });
  let pending = false;
  let write: (entry: AccessLogEntry) => void;
  let flushStream: () => void;
  if (format === 'json') {
    const logger: Logger = pino({ base: undefined, timestamp: pino.stdTimeFunctions.isoTime, messageKey: 'msg' }, stream);
    write = (entry) => logger.info(entry, 'access');
    flushStream = () => logger.flush();
  } else {
    write = (entry) => stream.write(formatTextLine(entry));
    flushStream = () => (stream as { flush?: () => void }).flush?.();
  }
  const flush = (): void => {
    pending = false;
    flushStream();
  };
  const timer = setInterval(() => {
    if (pending) flush();
  }, ACCESS_LOG_FLUSH_MS);
  timer.unref();
  return {
    format,
    write: (entry) => {
      pending = true;
      write(entry);
    },
    flush,
    close: () => {
      clearInterval(timer);
      flush();
    },
  };
}

/**
 * Envoy's default format: `[%START_TIME%] "%REQ(:METHOD)% %REQ(:PATH)% %PROTOCOL%"
 * %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION%
 * "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%"
 * "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"`, with Istio's additions (cluster,
 * trace, identities, deciding policy).
 */
export function formatTextLine(e: AccessLogEntry): string {
  return (
    `[${e.start_time}] "${e.method} ${e.path} ${e.protocol}" ${e.response_code} ${e.response_flags} ${e.bytes_received} ${e.bytes_sent} ${Math.round(e.duration_ms)} ` +
    `"${e.downstream_remote_address || '-'}" "${e.user_agent ?? '-'}" "${e.x_request_id || '-'}" "${e.authority || '-'}" "${e.upstream_host || '-'}" ` +
    `${e.upstream_cluster || '-'} ${e.route_name || '-'} trace=${e.trace_id || '-'} ` +
    `src=${e.source_principal !== 'unknown' ? e.source_principal : `${e.source_workload}.${e.source_namespace}`} ` +
    `dst=${e.destination_principal !== 'unknown' ? e.destination_principal : `${e.destination_workload}.${e.destination_namespace}`}` +
    (e.authz_policy !== undefined ? ` authz=${e.authz_result ?? ''}:${e.authz_policy}` : '') +
    '\n'
  );
}
