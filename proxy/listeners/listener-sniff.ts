// Protocol detection for listeners whose protocol is `auto` (Istio's protocol
// sniffing, Envoy's http_inspector + tls_inspector): the first bytes a client
// sends say HTTP/2 (the connection preface), HTTP/1.x (a method token and a
// space), TLS (a handshake record, 0x16 0x03) or something else. A
// server-first protocol (MySQL, SMTP) sends nothing until the server speaks,
// so after a short wait the connection is treated as plain TCP — Istio's
// protocol detection timeout, 100 ms by default.
import type { Socket } from 'node:net';
import { IS_TOKEN } from '../http1/http1-syntax.ts';
import { sniffHttp2 } from '../http2/http2-frame.ts';

export type SniffedProtocol = 'http1' | 'http2' | 'tls' | 'tcp';

/** Istio's default protocolDetectionTimeout. */
export const DEFAULT_SNIFF_TIMEOUT_MS = 100;

/** Longest method token looked at; real ones are short (Envoy's inspector reads a bounded prefix too). */
const MAX_METHOD_LENGTH = 24;

/**
 * What the bytes so far say, or `undefined` when more bytes are needed to
 * tell (a prefix of the HTTP/2 preface, a method token not yet followed by
 * its space, a lone 0x16).
 */
export function classifyPrefix(head: Buffer): SniffedProtocol | undefined {
  const n = head.length;
  if (n === 0) return undefined;
  // The preface starts "PRI " which also looks like a method: check it first.
  const h2 = sniffHttp2(head);
  if (h2 !== 0) return h2 > 0 ? 'http2' : undefined;
  if (head[0] === 0x16) {
    if (n === 1) return undefined;
    return head[1] === 0x03 ? 'tls' : 'tcp';
  }
  for (let i = 0; i < n && i <= MAX_METHOD_LENGTH; i++) {
    const c = head[i];
    if (c === 0x20) return i > 0 ? 'http1' : 'tcp';
    if (!IS_TOKEN[c]) return 'tcp';
  }
  return n > MAX_METHOD_LENGTH ? 'tcp' : undefined;
}

/**
 * Reads from `socket` (after `earlier`, bytes already read) until its first bytes decide the protocol and leaves
 * it paused; the bytes read are handed back in `head` (not unshifted: a
 * client may already have half-closed, and an ended stream takes no
 * unshift). Resolves `undefined` when the client fails or closes before
 * anything was decided.
 */
export function sniffProtocol(socket: Socket, earlier?: Buffer, timeoutMs: number = DEFAULT_SNIFF_TIMEOUT_MS): Promise<Sniffed<SniffedProtocol> | undefined> {
  return sniffUntil(socket, earlier, decideProtocol, timeoutMs);
}

// A client that half-closes after a few bytes has said all it will: decide on them, as when the wait runs out.
function decideProtocol(head: Buffer, final: boolean): SniffedProtocol | undefined {
  return classifyPrefix(head) ?? (final ? 'tcp' : undefined);
}

export interface Sniffed<T> {
  value: T;
  /** The bytes read (after `earlier`, included); whoever takes the socket over must use them first. */
  head: Buffer;
  /** The wait ran out before the bytes decided. */
  timedOut: boolean;
}

/**
 * Reads from `socket` (after `earlier`, bytes already read) until `decide`
 * returns a value, and leaves it paused. `decide` is called with `final`
 * true once no more bytes will come in time (the wait ran out, or the client
 * half-closed) and must then decide. Resolves undefined when the client
 * fails or closes first.
 */
export function sniffUntil<T>(socket: Socket, earlier: Buffer | undefined, decide: (head: Buffer, final: boolean) => T | undefined, timeoutMs: number): Promise<Sniffed<T> | undefined> {
  let head: Buffer = earlier ?? Buffer.alloc(0);
  if (head.length > 0) {
    const value = decide(head, false);
    if (value !== undefined) return Promise.resolve({ value, head, timedOut: false });
  }
  return new Promise((resolve) => {
    const done = (result: Sniffed<T> | undefined): void => {
      clearTimeout(timer);
      socket.removeListener('data', onData);
      socket.removeListener('end', onEnd);
      socket.removeListener('close', onGone);
      socket.removeListener('error', onGone);
      socket.pause();
      resolve(result);
    };
    const onData = (chunk: Buffer): void => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const value = decide(head, false);
      if (value !== undefined) done({ value, head, timedOut: false });
    };
    const onEnd = (): void => done({ value: decide(head, true) as T, head, timedOut: false });
    const onGone = (): void => done(undefined);
    const timer = setTimeout(() => done({ value: decide(head, true) as T, head, timedOut: true }), timeoutMs);
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onGone);
    socket.once('error', onGone);
    socket.resume();
  });
}
