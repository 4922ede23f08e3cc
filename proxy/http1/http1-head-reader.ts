// Accumulates a message head up to CRLFCRLF across socket chunks. The common
// case (the whole head in one chunk) copies nothing; only a split head is
// buffered, and the search resumes three bytes back so a CRLFCRLF split across
// chunks is still found.

import { CRLFCRLF } from './http1-syntax.ts';

/** `read` results besides a position: more bytes are needed, or the head is over the limit. */
export const HEAD_PARTIAL = -1;
export const HEAD_TOO_LARGE = -2;

export class Http1HeadReader {
  /** The bytes of a head split across chunks (undefined while none are pending). */
  pending: Buffer | undefined = undefined;
  /** After a successful `read`: the head up to and including the last header line's CRLF. */
  text = '';
  private readonly maxBytes: number;

  constructor(maxBytes: number) {
    this.maxBytes = maxBytes;
  }

  reset(): void {
    this.pending = undefined;
  }

  /**
   * Reads from `pos`: returns the position in `chunk` after the head (the
   * head is in `text`), HEAD_PARTIAL when the bytes were kept for later, or
   * HEAD_TOO_LARGE.
   */
  read(chunk: Buffer, pos: number): number {
    const prevBuf = this.pending;
    let buf: Buffer;
    let from: number;
    let base: number;
    if (prevBuf === undefined) {
      buf = chunk;
      base = pos;
      from = pos;
    } else {
      const prev = prevBuf.length;
      buf = Buffer.concat([prevBuf, chunk.subarray(pos)]);
      base = 0;
      from = prev > 3 ? prev - 3 : 0;
    }
    const end = buf.indexOf(CRLFCRLF, from);
    if (end < 0 || end - base > this.maxBytes) {
      if (buf.length - base > this.maxBytes) {
        this.pending = undefined;
        return HEAD_TOO_LARGE;
      }
      this.pending = base === 0 && buf !== chunk ? buf : Buffer.from(buf.subarray(base));
      return HEAD_PARTIAL;
    }
    this.pending = undefined;
    this.text = buf.toString('latin1', base, end + 2);
    return prevBuf === undefined ? end + 4 : end + 4 - prevBuf.length + pos;
  }
}
