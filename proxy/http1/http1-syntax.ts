// HTTP/1.1 lexical rules both parsers (downstream requests, upstream
// responses) must apply identically: a difference between the two sides is
// exactly what request smuggling exploits.

export const CR = 13;
export const LF = 10;
export const CRLFCRLF = Buffer.from('\r\n\r\n');
export const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** The same tchar set (RFC 9110 §5.6.2) as a byte table, for code that looks at raw bytes one at a time. */
export const IS_TOKEN = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") IS_TOKEN[c.charCodeAt(0)] = 1;
// Field values: visible ASCII, SP, HTAB and obs-text; no CR, LF, NUL or other controls.
export const INVALID_VALUE = /[^\t\x20-\x7e\x80-\xff]/;

export function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/** Digits only (a list of equal values is accepted, as RFC 9110 §8.6 allows); -1 when invalid. */
export function parseContentLength(value: string): number {
  if (value.includes(',')) {
    const parts = value.split(',');
    const first = parseContentLength(parts[0].trim());
    for (let i = 1; i < parts.length; i++) if (parseContentLength(parts[i].trim()) !== first) return -1;
    return first;
  }
  if (value.length === 0 || value.length > 15) return -1;
  let n = 0;
  for (let i = 0; i < value.length; i++) {
    const d = value.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}

/**
 * Reads header field lines one at a time out of a head's text. One instance
 * per parser is reused, so a field costs only its name and value strings.
 */
export class Http1FieldReader {
  name = '';
  value = '';
  /** Where the next line begins. */
  next = 0;
  /** Why the line was refused. */
  error = '';
  /** Framing seen so far in this head (`begin` resets it): -1 without content-length. */
  contentLength = -1;
  chunked = false;
  /** The connection closes after this message (HTTP/1.0 default, or `connection: close`). */
  close = false;
  private minor = 1;

  /** A new head with HTTP/1.`minor` begins. */
  begin(minor: number): void {
    this.contentLength = -1;
    this.chunked = false;
    this.minor = minor;
    this.close = minor === 0;
  }

  /** Reads the line at `start` (which ends in CRLF); false when it is malformed (`error`). */
  read(text: string, start: number): boolean {
    const eol = text.indexOf('\r\n', start);
    const colon = text.indexOf(':', start);
    if (colon < 0 || colon > eol) {
      const c = text.charCodeAt(start);
      this.error = c === 32 || c === 9 ? 'obsolete line folding' : 'header line without a colon';
      return false;
    }
    const name = text.slice(start, colon);
    if (!TOKEN.test(name)) {
      this.error = 'invalid header name';
      return false;
    }
    let vs = colon + 1;
    let ve = eol;
    while (vs < ve && (text.charCodeAt(vs) === 32 || text.charCodeAt(vs) === 9)) vs++;
    while (ve > vs && (text.charCodeAt(ve - 1) === 32 || text.charCodeAt(ve - 1) === 9)) ve--;
    const value = text.slice(vs, ve);
    if (INVALID_VALUE.test(value)) {
      this.error = 'invalid character in header value';
      return false;
    }
    this.name = name;
    this.value = value;
    this.next = eol + 2;
    return true;
  }

  /**
   * Applies the field just read if `lower` (its lower-cased name) is
   * content-length, transfer-encoding or connection; false when its value is
   * refused (`error`). Both directions frame by the same rules, so a message
   * that one side would read differently from the other never gets through.
   */
  noteFraming(lower: string): boolean {
    if (lower === 'content-length') {
      const n = parseContentLength(this.value);
      if (n < 0 || (this.contentLength >= 0 && n !== this.contentLength)) {
        this.error = 'invalid or conflicting content-length';
        return false;
      }
      this.contentLength = n;
    } else if (lower === 'transfer-encoding') {
      if (this.chunked || this.value.toLowerCase() !== 'chunked') {
        this.error = 'unsupported transfer-encoding';
        return false;
      }
      this.chunked = true;
    } else if (lower === 'connection') {
      this.close = connectionCloses(this.value.toLowerCase(), this.minor, this.close);
    }
    return true;
  }
}

/**
 * Whether the connection closes after this message, given a `connection`
 * header `value` (lower-cased), the HTTP minor version and what was decided so far.
 */
export function connectionCloses(value: string, minor: number, close: boolean): boolean {
  if (value === 'close' || (value !== 'keep-alive' && /(^|,)\s*close\s*(,|$)/.test(value))) return true;
  if (minor === 0 && /(^|,)\s*keep-alive\s*(,|$)/.test(value)) return false;
  return close;
}
