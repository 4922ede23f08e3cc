// What the four BookInfo services share: flags, header propagation, JSON replies,
// outbound calls and the listen/shutdown life cycle.
//
// The sample is deliberately self-contained (it imports nothing from Jibe): it plays
// the part of a user's application, which knows nothing about the mesh it runs in.
import type { IncomingHttpHeaders, IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';

export const DEFAULT_PORT = 9080;
export const DEFAULT_HOST = '127.0.0.1';
/** Every BookInfo service listens on this port behind its Kubernetes-style service. */
export const SERVICE_PORT = 9080;

/**
 * Headers an application must copy from the request it serves to the requests it
 * makes, so the mesh can join the hops into one trace and route on the end user.
 * The list is the one Istio's sample services carry.
 */
export const PROPAGATED_HEADERS: readonly string[] = [
  // Every app should propagate x-request-id: access logs and trace sampling use it.
  'x-request-id',
  // W3C Trace Context.
  'traceparent',
  'tracestate',
  // Zipkin B3, multi-header and single-header forms.
  'x-b3-traceid',
  'x-b3-spanid',
  'x-b3-parentspanid',
  'x-b3-sampled',
  'x-b3-flags',
  'b3',
  // Lightstep.
  'x-ot-span-context',
  // Datadog.
  'x-datadog-trace-id',
  'x-datadog-parent-id',
  'x-datadog-sampling-priority',
  // Google Cloud Trace and OpenCensus.
  'x-cloud-trace-context',
  'grpc-trace-bin',
  // SkyWalking.
  'sw8',
  // Application headers that routing rules match on (the `jason` route).
  'end-user',
  'user-agent',
  // Session context.
  'cookie',
  'authorization',
  'jwt',
];

/** The headers of `incoming` that are in PROPAGATED_HEADERS, ready for fetch. */
export function propagatedHeaders(incoming: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of PROPAGATED_HEADERS) {
    const value = incoming[name];
    if (value === undefined) continue;
    // Node joins repeated headers except cookie (joined with '; ' already) and
    // set-cookie (never propagated); arrays only appear for unusual headers.
    out[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(payload),
  });
  res.end(payload);
}

export function sendText(res: ServerResponse, status: number, contentType: string, body: string, extra: Record<string, string> = {}): void {
  res.writeHead(status, {
    ...extra,
    'content-type': contentType,
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

/** 405 with the Allow header a client needs to correct itself. */
export function methodNotAllowed(res: ServerResponse, allow: string): void {
  const payload = JSON.stringify({ error: `method not allowed, use ${allow}` });
  res.writeHead(405, { allow, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) });
  res.end(payload);
}

export function isReadMethod(method: string | undefined): boolean {
  return method === 'GET' || method === 'HEAD';
}

const PRODUCT_ID = /^\d{1,15}$/;

/** A product id from a path segment, or undefined when it is not a whole number. */
export function parseProductId(segment: string): number | undefined {
  return PRODUCT_ID.test(segment) ? Number(segment) : undefined;
}

/** The path of a request without its query string (the services ignore queries). */
export function requestPath(req: IncomingMessage): string {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

/** Reads a request body up to `limit` bytes; rejects with BodyTooLargeError past it. */
export async function readBody(req: IncomingMessage, limit = 64 * 1024): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new BodyTooLargeError(limit);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export class BodyTooLargeError extends Error {
  constructor(limit: number) {
    super(`request body is larger than ${limit} bytes`);
    this.name = 'BodyTooLargeError';
  }
}

/**
 * Base URL of a peer service: `<ENV_VAR>` when set (tests point services straight at
 * each other), otherwise the plain service name on port 9080, as the real sample
 * does. Those names do not resolve in DNS: the sidecar the app's HTTP_PROXY points
 * at routes them. SERVICES_DOMAIN appends a domain (`details.<domain>`), as in Istio.
 */
export function peerBaseUrl(service: string, envVar: string, env: NodeJS.ProcessEnv = process.env): string {
  const override = env[envVar];
  if (override) return override.replace(/\/+$/, '');
  const domain = env.SERVICES_DOMAIN ? `.${env.SERVICES_DOMAIN}` : '';
  return `http://${service}${domain}:${SERVICE_PORT}`;
}

export type PeerResult =
  | { ok: true; status: number; body: unknown }
  | { ok: false; status: number | undefined; reason: string };

/**
 * GETs JSON from a peer. Any failure — refused connection, timeout, non-2xx status,
 * a body that is not JSON — comes back as `ok: false` with a reason for the log:
 * the callers degrade their answer rather than fail it, which is the point of the
 * sample's fault-injection tasks.
 */
export async function getPeerJson(url: string, headers: Record<string, string>, timeoutMs: number): Promise<PeerResult> {
  let response: Response;
  try {
    response = await fetch(url, { headers: { accept: 'application/json', ...headers }, signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    return { ok: false, status: undefined, reason: describeFetchError(err, timeoutMs) };
  }
  let text: string;
  try {
    // The timeout signal also covers the body, so a peer that stalls mid-body is cut off too.
    text = await response.text();
  } catch (err) {
    return { ok: false, status: response.status, reason: describeFetchError(err, timeoutMs) };
  }
  if (response.status < 200 || response.status > 299) {
    return { ok: false, status: response.status, reason: `status ${response.status}` };
  }
  try {
    return { ok: true, status: response.status, body: JSON.parse(text) };
  } catch {
    return { ok: false, status: response.status, reason: 'response is not JSON' };
  }
}

function describeFetchError(err: unknown, timeoutMs: number): string {
  if (err instanceof Error) {
    if (err.name === 'TimeoutError') return `no answer within ${timeoutMs} ms`;
    const cause = (err as Error & { cause?: unknown }).cause;
    if (cause instanceof Error) return `${err.message}: ${cause.message}`;
    return err.message;
  }
  return String(err);
}

export type Logger = (message: string) => void;
export const silentLogger: Logger = () => {};

export interface ServiceFlags {
  port: number;
  host: string;
  version: string;
  /** Workload name: reported as the pod name, e.g. `reviews-v2`. */
  name: string;
}

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/**
 * Parses `--port N --host H --version V --name N` (also `--flag=value`). Version and
 * name fall back to SERVICE_VERSION and WORKLOAD_NAME; the name defaults to
 * `<service>-<version>`, the shape of the sample's deployment names.
 */
export function parseServiceFlags(
  service: string,
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
  versions?: readonly string[],
): ServiceFlags {
  let values: { port?: string; host?: string; version?: string; name?: string };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        port: { type: 'string' },
        host: { type: 'string' },
        version: { type: 'string' },
        name: { type: 'string' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const port = values.port === undefined ? DEFAULT_PORT : Number(values.port);
  if (!/^\d+$/.test(values.port ?? '0') || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new UsageError(`--port must be a whole number from 0 to 65535, got '${values.port}'`);
  }
  const host = values.host ?? DEFAULT_HOST;
  if (host === '') throw new UsageError('--host must not be empty');
  const version = values.version ?? env.SERVICE_VERSION ?? 'v1';
  if (versions && !versions.includes(version)) {
    throw new UsageError(`--version must be one of ${versions.join(', ')}, got '${version}'`);
  }
  const name = values.name ?? env.WORKLOAD_NAME ?? `${service}-${version}`;
  if (name === '') throw new UsageError('--name must not be empty');
  return { port, host, version, name };
}

export function usage(service: string, versions?: readonly string[]): string {
  const v = versions ? versions.join('|') : 'VERSION';
  return `usage: node ${service}.ts [--port N] [--host ADDRESS] [--version ${v}] [--name WORKLOAD]`;
}

/** `host:port` of a listening server, with IPv6 addresses in brackets. */
export function listenAddress(server: Server): string {
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return `${host}:${addr.port}`;
}

/** How long in-flight requests get to finish after SIGTERM before they are cut. */
const DRAIN_MS = 2000;

/**
 * Runs a service as a process: listens, logs one line, and on SIGTERM or SIGINT
 * stops taking connections, lets in-flight requests finish (briefly), and exits 0.
 * A second signal exits at once.
 */
export function runService(service: string, server: Server, flags: ServiceFlags): void {
  server.once('error', (err) => {
    console.error(`${service}: cannot listen on ${flags.host}:${flags.port}: ${err.message}`);
    process.exit(1);
  });
  server.listen(flags.port, flags.host, () => {
    console.log(`${service} listening on ${listenAddress(server)}`);
  });
  let stopping = false;
  const stop = (): void => {
    if (stopping) process.exit(0);
    stopping = true;
    server.close(() => process.exit(0));
    server.closeIdleConnections();
    setTimeout(() => server.closeAllConnections(), DRAIN_MS).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // Under `jibe up`, stdin is a pipe from the supervisor: when it closes the
  // supervisor is gone (even if it was killed outright), so stop too.
  if (process.env.JIBE_EXIT_WITH_PARENT === '1' && !process.stdin.isTTY) {
    process.stdin.on('error', () => {});
    process.stdin.on('close', stop);
    process.stdin.resume();
  }
}

/** The process entry of each service: flags from argv/env, a usage message on bad ones. */
export function mainOf(
  service: string,
  start: (flags: ServiceFlags, log: Logger) => Server,
  versions?: readonly string[],
): void {
  let flags: ServiceFlags;
  try {
    flags = parseServiceFlags(service, process.argv.slice(2), process.env, versions);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(`${service}: ${err.message}\n${usage(service, versions)}`);
    process.exit(2);
  }
  const log: Logger = (message) => console.error(`${service}: ${message}`);
  runService(service, start(flags, log), flags);
}
