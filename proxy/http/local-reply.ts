// Responses the proxy generates itself (no route, no healthy upstream, connect
// failures, redirects, direct responses): `server: jibe`, a short text body,
// Envoy's wording so that users and tools recognise them.
import type { Exchange } from './exchange.ts';
import type { CompiledHeaderMutation } from './header-mutation.ts';
import { formatResponseFlags } from './response-flags.ts';

export const BODY_NO_HEALTHY_UPSTREAM = Buffer.from('no healthy upstream');
export const BODY_CONNECT_FAILURE = Buffer.from('upstream connect error or disconnect/reset before headers. reset reason: connection failure');
export const BODY_CONNECTION_TERMINATION = Buffer.from('upstream connect error or disconnect/reset before headers. reset reason: connection termination');
export const BODY_PROTOCOL_ERROR = Buffer.from('upstream connect error or disconnect/reset before headers. reset reason: protocol error');
export const BODY_TIMEOUT = Buffer.from('upstream request timeout');
export const BODY_REMOTE_RESET = Buffer.from('upstream connect error or disconnect/reset before headers. reset reason: remote reset');
export const BODY_REFUSED_STREAM = Buffer.from('upstream connect error or disconnect/reset before headers. reset reason: remote refused stream reset');
/** Circuit breaker overflow (UO). */
export const BODY_OVERFLOW = Buffer.from('upstream connect error or disconnect/reset before headers. reset reason: overflow');
export const BODY_BAD_REQUEST = Buffer.from('bad request');
export const BODY_NO_CLUSTER = Buffer.from('cluster not found');
const EMPTY = Buffer.alloc(0);

/**
 * Answers the request from the proxy. If the upstream's answer already
 * started, the only honest signal left is to reset the downstream stream.
 */
export function sendLocalReply(
  ex: Exchange,
  status: number,
  body: Buffer | undefined,
  flags: number,
  extraHeaders?: readonly string[],
  mutation?: CompiledHeaderMutation,
): void {
  ex.flags |= flags;
  const res = ex.down;
  if (ex.done) return;
  if (ex.responseStarted || res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  ex.responseStarted = true;
  if (ex.grpc && (status < 200 || status >= 300)) {
    sendGrpcLocalReply(ex, status, body, extraHeaders);
    return;
  }
  const payload = body ?? EMPTY;
  const headers: string[] = ['server', 'jibe', 'content-length', String(payload.length)];
  // Local replies are the exception, so naming why costs nothing on the hot path.
  if (ex.flags !== 0) headers.push('x-jibe-response-flags', formatResponseFlags(ex.flags));
  if (payload.length > 0) headers.push('content-type', 'text/plain');
  if (extraHeaders !== undefined) for (let i = 0; i < extraHeaders.length; i++) headers.push(extraHeaders[i]);
  let out = headers;
  if (mutation !== undefined && !mutation.empty) out = applyResponseMutation(headers, mutation);
  // A body the client is still sending would stall the keep-alive connection:
  // read and discard it, and close the connection after this answer.
  if (ex.hasBody && !res.bodyComplete) {
    out.push('connection', 'close');
    res.discardBody();
  } else if (ex.listener.draining) {
    out.push('connection', 'close');
  }
  if (!res.writeHead(status, out, true)) {
    // Only a header built from the request itself (e.g. a redirect Location) can be invalid here.
    res.destroy();
    return;
  }
  res.end(ex.method === 'HEAD' ? undefined : payload);
}

// gRPC status codes for the HTTP statuses the proxy answers with (as the gRPC
// spec's HTTP-to-gRPC mapping, with the proxy's own meanings of 504 and 429).
const GRPC_STATUS_OF_HTTP: Record<number, string> = {
  400: '13', // INTERNAL
  401: '16', // UNAUTHENTICATED
  403: '7', // PERMISSION_DENIED
  404: '12', // UNIMPLEMENTED
  429: '8', // RESOURCE_EXHAUSTED
  502: '14', // UNAVAILABLE
  503: '14', // UNAVAILABLE
  504: '4', // DEADLINE_EXCEEDED
};
export const GRPC_DEADLINE_EXCEEDED = '4';
export const GRPC_UNKNOWN = '2';

function grpcStatusOf(ex: Exchange, status: number): string {
  const code = GRPC_STATUS_OF_HTTP[status] ?? GRPC_UNKNOWN;
  ex.grpcStatus = Number(code);
  return code;
}

/** gRPC's grpc-message encoding: percent-encode everything outside printable ASCII, and `%` itself. */
export function encodeGrpcMessage(message: string): string {
  return /[^\x20-\x24\x26-\x7e]/.test(message) ? Buffer.from(message).reduce((out, b) => out + (b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : '%' + b.toString(16).toUpperCase().padStart(2, '0')), '') : message;
}

/**
 * A gRPC client reads only grpc-status: the answer is HTTP 200 with the
 * status in a trailers-only response (one HEADERS frame ending the stream).
 */
function sendGrpcLocalReply(ex: Exchange, status: number, body: Buffer | undefined, extraHeaders?: readonly string[]): void {
  const res = ex.down;
  const headers: string[] = [
    'server',
    'jibe',
    'content-type',
    'application/grpc',
    'grpc-status',
    grpcStatusOf(ex, status),
    'grpc-message',
    encodeGrpcMessage(body !== undefined && body.length > 0 ? body.toString() : `${status}`),
  ];
  if (res.httpVersion === 1) headers.push('content-length', '0');
  if (ex.flags !== 0) headers.push('x-jibe-response-flags', formatResponseFlags(ex.flags));
  if (extraHeaders !== undefined) for (let i = 0; i < extraHeaders.length; i++) headers.push(extraHeaders[i]);
  if (ex.hasBody && !res.bodyComplete) {
    if (res.httpVersion === 1) headers.push('connection', 'close');
    res.discardBody();
  } else if (ex.listener.draining && res.httpVersion === 1) {
    headers.push('connection', 'close');
  }
  if (!res.writeHead(200, headers, true)) {
    res.destroy();
    return;
  }
  res.end();
}

/** Copies a flat header list without the mutation's dropped names, then appends its headers. */
export function applyResponseMutation(headers: readonly string[], mutation: CompiledHeaderMutation): string[] {
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    if (!mutation.drop.has(headers[i].toLowerCase())) out.push(headers[i], headers[i + 1]);
  }
  for (let i = 0; i < mutation.append.length; i++) out.push(mutation.append[i]);
  return out;
}
