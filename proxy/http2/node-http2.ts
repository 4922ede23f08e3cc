// node:http2, loaded on first use: an HTTP/1.1-only sidecar never sees an
// HTTP/2 connection or an http2 cluster, and must not pay the module's memory.
// Types come from `import type`, which loads nothing.
import { createRequire } from 'node:module';
import type * as Http2 from 'node:http2';
import type { IncomingHttpHeaders } from 'node:http2';

const load = createRequire(import.meta.url);
let http2: typeof Http2 | undefined;

export function nodeHttp2(): typeof Http2 {
  return (http2 ??= load('node:http2') as typeof Http2);
}

// RST_STREAM / GOAWAY error codes (RFC 9113 §7), so callers need not load the module for its constants.
export const H2_NO_ERROR = 0;
export const H2_PROTOCOL_ERROR = 1;
export const H2_INTERNAL_ERROR = 2;
export const H2_REFUSED_STREAM = 7;
export const H2_CANCEL = 8;
export const H2_ENHANCE_YOUR_CALM = 11;

/** The connection preface a prior-knowledge HTTP/2 client starts with (RFC 9113 §3.4). */
export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/**
 * Whether the first bytes of a connection are HTTP/2's preface: 1 yes, 0 no,
 * -1 too few bytes to tell (a prefix of the preface so far).
 */
export function sniffHttp2(head: Buffer): number {
  const n = Math.min(head.length, H2_PREFACE.length);
  for (let i = 0; i < n; i++) if (head[i] !== H2_PREFACE[i]) return 0;
  return n === H2_PREFACE.length ? 1 : -1;
}

/**
 * Reset codes relayed from one side to the other as they are; anything else
 * (a connection-level condition of the other hop) becomes INTERNAL_ERROR.
 */
export function relayedResetCode(code: number): number {
  return code === H2_CANCEL || code === H2_REFUSED_STREAM || code === H2_ENHANCE_YOUR_CALM ? code : H2_INTERNAL_ERROR;
}

/** node's header object as the flat [name, value, …] list the proxy passes around; `withoutPseudo` leaves out `:status`, `:path` and the like. */
export function flattenHeaders(headers: IncomingHttpHeaders, withoutPseudo = false): string[] {
  const out: string[] = [];
  for (const name in headers) {
    if (withoutPseudo && name.charCodeAt(0) === 58 /* : */) continue;
    const value = headers[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) out.push(name, v);
    else out.push(name, String(value));
  }
  return out;
}
