// The JSON access log line, written byte by byte straight into the batch that
// goes to stdout. A line built as a JS string first (about 35 concatenations)
// cost the sidecar three times over: the cons-string pieces, flattening them,
// and encoding the flat string into the batch. Here the fixed parts (keys,
// the caller/upstream identity, the date of the current second) are bytes made
// once, and the few values that change per request are copied in a char code
// loop; a value that needs escaping or is not ASCII takes JSON.stringify.
//
// The output is byte for byte what pino writes for `logger.info(entry, 'access')`
// with the same fields (access-log.test.ts compares them).
import type { AccessLogEntry, AccessLogIdentity } from './access-log.ts';
import { putIsoTime } from './access-log-time.ts';

const utf8 = (text: string): Buffer => Buffer.from(text, 'utf8');

const K_START = utf8('{"level":30,"time":"');
const K_START_TIME = utf8('","start_time":"');
const K_METHOD = utf8('","method":');
const K_AUTHORITY = utf8(',"authority":');
const K_PATH = utf8(',"path":');
const K_PROTOCOL = utf8(',"protocol":');
const K_RESPONSE_CODE = utf8(',"response_code":');
const K_RESPONSE_FLAGS = utf8(',"response_flags":');
const K_BYTES_RECEIVED = utf8(',"bytes_received":');
const K_BYTES_SENT = utf8(',"bytes_sent":');
const K_DURATION = utf8(',"duration_ms":');
const K_REQUEST_ID = utf8(',"x_request_id":');
const K_TRACE_ID = utf8(',"trace_id":');
const K_REMOTE = utf8(',"downstream_remote_address":');
const K_USER_AGENT = utf8(',"user_agent":');
const K_GRPC_STATUS = utf8(',"grpc_status":');
const K_AUTHZ_POLICY = utf8(',"authz_policy":');
const K_AUTHZ_RESULT = utf8(',"authz_result":');
const K_END = utf8(',"msg":"access"}\n');

/** Bytes of a line beyond its variable strings (keys, numbers, times, quotes), with room to spare. */
const FIXED_BYTES = 640;

/** At most the bytes `writeJsonLine` writes for `e` (UTF-8 and JSON escapes take at most 6 bytes per UTF-16 unit). */
export function jsonLineBound(e: AccessLogEntry): number {
  const variable =
    e.method.length + e.authority.length + e.path.length + e.protocol.length + e.response_flags.length + e.x_request_id.length + e.trace_id.length +
    e.downstream_remote_address.length + (e.user_agent?.length ?? 0) + (e.grpc_status?.length ?? 0) + (e.authz_policy?.length ?? 0) + (e.authz_result?.length ?? 0);
  return 6 * variable + identityBytes(e.identity).length + upstreamBytes(e.upstream_host, e.upstream_cluster, e.route_name).length + FIXED_BYTES;
}

/** Writes the line for `e` into `buf` at `pos` (which has `jsonLineBound(e)` bytes of room); returns where it ends. */
export function writeJsonLine(e: AccessLogEntry, buf: Buffer, pos: number): number {
  pos = putBytes(buf, pos, K_START);
  pos = putIsoTime(buf, pos, e.nowMs);
  pos = putBytes(buf, pos, K_START_TIME);
  pos = putIsoTime(buf, pos, e.startMs);
  pos = putStringField(buf, pos, K_METHOD, e.method);
  pos = putStringField(buf, pos, K_AUTHORITY, e.authority);
  pos = putStringField(buf, pos, K_PATH, e.path);
  pos = putStringField(buf, pos, K_PROTOCOL, e.protocol);
  pos = putNumberField(buf, pos, K_RESPONSE_CODE, e.response_code);
  pos = putStringField(buf, pos, K_RESPONSE_FLAGS, e.response_flags);
  pos = putNumberField(buf, pos, K_BYTES_RECEIVED, e.bytes_received);
  pos = putNumberField(buf, pos, K_BYTES_SENT, e.bytes_sent);
  pos = putNumberField(buf, pos, K_DURATION, e.duration_ms);
  pos = putBytes(buf, pos, upstreamBytes(e.upstream_host, e.upstream_cluster, e.route_name));
  pos = putStringField(buf, pos, K_REQUEST_ID, e.x_request_id);
  pos = putStringField(buf, pos, K_TRACE_ID, e.trace_id);
  pos = putStringField(buf, pos, K_REMOTE, e.downstream_remote_address);
  pos = putBytes(buf, pos, identityBytes(e.identity));
  if (e.user_agent !== undefined) pos = putStringField(buf, pos, K_USER_AGENT, e.user_agent);
  if (e.grpc_status !== undefined) pos = putStringField(buf, pos, K_GRPC_STATUS, e.grpc_status);
  if (e.authz_policy !== undefined) {
    pos = putStringField(buf, pos, K_AUTHZ_POLICY, e.authz_policy);
    pos = putStringField(buf, pos, K_AUTHZ_RESULT, e.authz_result ?? '');
  }
  return putBytes(buf, pos, K_END);
}

/** A key (with its separator and colon) and its string value. */
function putStringField(buf: Buffer, pos: number, key: Uint8Array, value: string): number {
  return putString(buf, putBytes(buf, pos, key), value);
}

function putNumberField(buf: Buffer, pos: number, key: Uint8Array, value: number): number {
  return putNumber(buf, putBytes(buf, pos, key), value);
}

function putBytes(buf: Buffer, pos: number, bytes: Uint8Array): number {
  const n = bytes.length;
  // A loop beats TypedArray#set's call for the short keys; the long identity part is one copy.
  if (n > 64) {
    buf.set(bytes, pos);
    return pos + n;
  }
  for (let i = 0; i < n; i++) buf[pos + i] = bytes[i];
  return pos + n;
}

/** A JSON string literal; ASCII that needs no escaping (nearly every value) is copied a char code at a time. */
function putString(buf: Buffer, pos: number, value: string): number {
  const n = value.length;
  buf[pos] = 0x22;
  for (let i = 0; i < n; i++) {
    const c = value.charCodeAt(i);
    // Control characters, `"`, `\`, and everything past ASCII (UTF-8, lone surrogates as \u escapes) go the slow way.
    if (c < 0x20 || c === 0x22 || c === 0x5c || c > 0x7e) return pos + buf.write(JSON.stringify(value), pos, 'utf8');
    buf[pos + 1 + i] = c;
  }
  buf[pos + 1 + n] = 0x22;
  return pos + n + 2;
}

/** A number as JSON.stringify writes it: digits for non-negative integers and thousandths, String() otherwise. */
function putNumber(buf: Buffer, pos: number, value: number): number {
  if (value >= 0 && value < 1e15) {
    const whole = Math.floor(value);
    if (whole === value) return putDigits(buf, pos, whole);
    // duration_ms: rounded to microseconds, so exactly three decimals or fewer.
    const thousandths = Math.round(value * 1000);
    if (thousandths / 1000 === value) {
      pos = putDigits(buf, pos, Math.floor(thousandths / 1000));
      let fraction = thousandths % 1000;
      buf[pos++] = 0x2e;
      buf[pos++] = 0x30 + Math.floor(fraction / 100);
      fraction %= 100;
      if (fraction === 0) return pos;
      buf[pos++] = 0x30 + Math.floor(fraction / 10);
      fraction %= 10;
      if (fraction === 0) return pos;
      buf[pos++] = 0x30 + fraction;
      return pos;
    }
  }
  return pos + buf.write(JSON.stringify(value), pos, 'latin1');
}

function putDigits(buf: Buffer, pos: number, n: number): number {
  let digits = 1;
  for (let t = n; t >= 10; t = Math.floor(t / 10)) digits++;
  for (let i = pos + digits - 1; i >= pos; i--) {
    buf[i] = 0x30 + (n % 10);
    n = Math.floor(n / 10);
  }
  return pos + digits;
}

const identityJson = new WeakMap<AccessLogIdentity, Buffer>();
// A proxy's lines come in runs of one caller, one upstream: the last part is kept beside the map.
let lastIdentity: AccessLogIdentity | undefined;
let lastIdentityBytes: Buffer = Buffer.alloc(0);

function identityBytes(id: AccessLogIdentity): Buffer {
  if (id === lastIdentity) return lastIdentityBytes;
  let bytes = identityJson.get(id);
  if (bytes === undefined) {
    bytes = utf8(
      ',"source_workload":' + JSON.stringify(id.source_workload) +
      ',"source_namespace":' + JSON.stringify(id.source_workload_namespace) +
      ',"source_principal":' + JSON.stringify(id.source_principal) +
      ',"destination_workload":' + JSON.stringify(id.destination_workload) +
      ',"destination_namespace":' + JSON.stringify(id.destination_workload_namespace) +
      ',"destination_principal":' + JSON.stringify(id.destination_principal) +
      ',"destination_service":' + JSON.stringify(id.destination_service) +
      ',"reporter":' + JSON.stringify(id.reporter),
    );
    identityJson.set(id, bytes);
  }
  lastIdentity = id;
  lastIdentityBytes = bytes;
  return bytes;
}

// `"upstream_host":…,"upstream_cluster":…,"route_name":…` of the last line: the same for every request of one route to one endpoint.
let lastHost = '';
let lastCluster = '';
let lastRoute = '';
let lastUpstreamBytes: Buffer = utf8(',"upstream_host":"","upstream_cluster":"","route_name":""');

function upstreamBytes(host: string, cluster: string, route: string): Buffer {
  if (host !== lastHost || cluster !== lastCluster || route !== lastRoute) {
    lastUpstreamBytes = utf8(',"upstream_host":' + JSON.stringify(host) + ',"upstream_cluster":' + JSON.stringify(cluster) + ',"route_name":' + JSON.stringify(route));
    lastHost = host;
    lastCluster = cluster;
    lastRoute = route;
  }
  return lastUpstreamBytes;
}
