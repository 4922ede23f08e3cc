// What HTTP/2 accepts in a header block (RFC 9113 §8.2, §8.3), checked by the
// connection (http2-connection.ts) before a head reaches a stream's owner:
// lower-case token names, no connection-specific fields, pseudo-headers first
// and only the ones the message kind has, values without CR, LF or NUL. The
// request's pseudo-headers, a response's status and a content-length (for
// checking the body against) are recorded on the stream as they are read.
import { INVALID_VALUE, IS_TOKEN, parseContentLength } from '../http1/http1-syntax.ts';
import type { Http2Stream } from './http2-stream.ts';

/** A field name HTTP/2 accepts: a token in lower case. */
export function validName(name: string): boolean {
  const n = name.length;
  if (n === 0) return false;
  for (let i = 0; i < n; i++) {
    const c = name.charCodeAt(i);
    if (c > 0x7f || IS_TOKEN[c] === 0 || (c >= 65 && c <= 90)) return false;
  }
  return true;
}

/** Checks a request head and records its pseudo-header fields and content-length on `stream`. */
export function validRequest(stream: Http2Stream, fields: string[]): boolean {
  let regular = false;
  let method: string | undefined;
  let scheme: string | undefined;
  let path: string | undefined;
  let authority: string | undefined;
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i];
    const value = fields[i + 1];
    if (name.charCodeAt(0) === 58 /* : */) {
      if (regular) return false;
      if (name === ':method') {
        if (method !== undefined || value === '') return false;
        method = value;
      } else if (name === ':path') {
        if (path !== undefined || value === '') return false;
        path = value;
      } else if (name === ':scheme') {
        if (scheme !== undefined) return false;
        scheme = value;
      } else if (name === ':authority') {
        if (authority !== undefined) return false;
        authority = value;
      } else {
        return false;
      }
      if (INVALID_VALUE.test(value)) return false;
      continue;
    }
    regular = true;
    if (!validName(name) || INVALID_VALUE.test(value)) return false;
    if (!checkRegularField(stream, name, value)) return false;
  }
  if (method === undefined) return false;
  if (method === 'CONNECT') {
    if (authority === undefined || scheme !== undefined || path !== undefined) return false;
  } else if (scheme === undefined || path === undefined) {
    return false;
  }
  stream.method = method;
  stream.scheme = scheme ?? '';
  stream.path = path ?? '';
  stream.authority = authority;
  return true;
}

export function validResponse(stream: Http2Stream, fields: string[]): boolean {
  let regular = false;
  let status = 0;
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i];
    const value = fields[i + 1];
    if (name.charCodeAt(0) === 58 /* : */) {
      if (regular || name !== ':status' || status !== 0 || value.length !== 3) return false;
      status = Number(value);
      if (!Number.isInteger(status) || status < 100) return false;
      continue;
    }
    regular = true;
    if (!validName(name) || INVALID_VALUE.test(value)) return false;
    if (!checkRegularField(stream, name, value)) return false;
  }
  if (status === 0) return false;
  stream.status = status;
  return true;
}

/** Connection-specific fields are malformed in HTTP/2 (§8.2.2); content-length is recorded to check the body against. */
function checkRegularField(stream: Http2Stream, name: string, value: string): boolean {
  switch (name.length) {
    case 2:
      return name !== 'te' || value === 'trailers';
    case 7:
      return name !== 'upgrade';
    case 10:
      return name !== 'connection' && name !== 'keep-alive';
    case 14: {
      if (name !== 'content-length') return true;
      const length = parseContentLength(value);
      if (length < 0 || (stream.expectedLength >= 0 && stream.expectedLength !== length)) return false;
      stream.expectedLength = length;
      return true;
    }
    case 16:
      return name !== 'proxy-connection';
    case 17:
      return name !== 'transfer-encoding';
    default:
      return true;
  }
}
