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

/** Copies a flat header list without the mutation's dropped names, then appends its headers. */
export function applyResponseMutation(headers: readonly string[], mutation: CompiledHeaderMutation): string[] {
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    if (!mutation.drop.has(headers[i].toLowerCase())) out.push(headers[i], headers[i + 1]);
  }
  for (let i = 0; i < mutation.append.length; i++) out.push(mutation.append[i]);
  return out;
}
