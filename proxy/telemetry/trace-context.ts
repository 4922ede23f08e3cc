// Trace context in the three forms meshes speak: Zipkin B3 multi-header
// (`x-b3-traceid`, `x-b3-spanid`, `x-b3-parentspanid`, `x-b3-sampled`,
// `x-b3-flags`), B3 single-header (`b3: trace-span-sampled-parent`) and W3C
// (`traceparent: 00-trace-span-flags`, `tracestate`). Each proxy hop is a span
// of its own: the context it receives names the parent, the one it sends on
// names this hop's span, so the app behind it and the next hop are children.
import { randomFillSync } from 'node:crypto';

export interface TraceContext {
  /** 32 hex digits (a 64-bit B3 id is left-padded with zeros, as W3C requires). */
  traceId: string;
  /** 16 hex digits. */
  spanId: string;
  /** The span this one is a child of; undefined for a root span. */
  parentId: string | undefined;
  /** Whether this trace is reported; undefined = the receiver decides (B3 "defer"). */
  sampled: boolean | undefined;
  /** B3 debug flag (`x-b3-flags: 1`, `b3: …-d`): always sampled. */
  debug: boolean;
  /** W3C tracestate, passed on untouched. */
  traceState: string | undefined;
}

const HEX32 = /^[0-9a-f]{32}$/;
const HEX16 = /^[0-9a-f]{16}$/;
const ZERO16 = '0000000000000000';
const ZERO32 = ZERO16 + ZERO16;

/** A B3 trace id is 16 or 32 lower-hex digits and not all zeros; the result is always 32 long. */
export function normalizeTraceId(value: string): string | undefined {
  const v = value.trim().toLowerCase();
  if (HEX32.test(v)) return v === ZERO32 ? undefined : v;
  if (HEX16.test(v)) return v === ZERO16 ? undefined : ZERO16 + v;
  return undefined;
}

function spanIdOf(value: string): string | undefined {
  const v = value.trim().toLowerCase();
  return HEX16.test(v) && v !== ZERO16 ? v : undefined;
}

/** The trace headers of a request as found in its flat header list (lower-cased names); all optional. */
export interface TraceHeaders {
  b3TraceId?: string;
  b3SpanId?: string;
  b3ParentSpanId?: string;
  b3Sampled?: string;
  b3Flags?: string;
  b3?: string;
  traceparent?: string;
  tracestate?: string;
}

const TRACE_HEADER_NAMES = new Set(['b3', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-flags', 'traceparent', 'tracestate']);

/** Whether a flat header list carries any trace header (no allocation: what most requests need to know). */
export function hasTraceHeader(raw: readonly string[]): boolean {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    const len = name.length;
    if ((len === 2 || len === 10 || len === 11 || len === 12 || len === 17) && TRACE_HEADER_NAMES.has(name.toLowerCase())) return true;
  }
  return false;
}

/** Collects the trace headers from a flat [name, value, …] list in one pass. */
export function readTraceHeaders(raw: readonly string[]): TraceHeaders {
  const out: TraceHeaders = {};
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    const len = name.length;
    // Only names of these lengths can be trace headers: most headers cost one comparison.
    if (len !== 2 && len !== 10 && len !== 11 && len !== 12 && len !== 17) continue;
    const lower = name.toLowerCase();
    const value = raw[i + 1];
    switch (lower) {
      case 'b3': out.b3 = value; break;
      case 'x-b3-traceid': out.b3TraceId = value; break;
      case 'x-b3-spanid': out.b3SpanId = value; break;
      case 'x-b3-parentspanid': out.b3ParentSpanId = value; break;
      case 'x-b3-sampled': out.b3Sampled = value; break;
      case 'x-b3-flags': out.b3Flags = value; break;
      case 'traceparent': out.traceparent = value; break;
      case 'tracestate': out.tracestate = out.tracestate === undefined ? value : out.tracestate + ',' + value; break;
    }
  }
  return out;
}

function sampledOf(value: string | undefined): boolean | undefined {
  if (value === undefined) return undefined;
  const v = value.trim().toLowerCase();
  if (v === '1' || v === 'true' || v === 'd') return true;
  if (v === '0' || v === 'false') return false;
  return undefined;
}

/**
 * The incoming context, or undefined when there is none (or it is malformed:
 * a broken context starts a new trace, as Envoy does). B3 multi-header wins
 * over B3 single, which wins over W3C. A context with only a sampling
 * decision (`b3: 0`, `x-b3-sampled: 0`) returns a context with an empty
 * traceId: the decision is kept, the ids are made fresh.
 */
export function parseTraceContext(h: TraceHeaders): TraceContext | undefined {
  const traceState = h.tracestate;
  if (h.b3TraceId !== undefined || h.b3SpanId !== undefined) {
    const traceId = normalizeTraceId(h.b3TraceId ?? '');
    const spanId = spanIdOf(h.b3SpanId ?? '');
    if (traceId !== undefined && spanId !== undefined) {
      const debug = h.b3Flags?.trim() === '1';
      return { traceId, spanId, parentId: h.b3ParentSpanId !== undefined ? spanIdOf(h.b3ParentSpanId) : undefined, sampled: debug ? true : sampledOf(h.b3Sampled), debug, traceState };
    }
  }
  if (h.b3 !== undefined) {
    const parts = h.b3.trim().toLowerCase().split('-');
    if (parts.length === 1) {
      const sampled = sampledOf(parts[0]);
      if (sampled !== undefined) return { traceId: '', spanId: '', parentId: undefined, sampled, debug: parts[0] === 'd', traceState };
    } else if (parts.length >= 2 && parts.length <= 4) {
      const traceId = normalizeTraceId(parts[0]);
      const spanId = spanIdOf(parts[1]);
      if (traceId !== undefined && spanId !== undefined) {
        const debug = parts[2] === 'd';
        return { traceId, spanId, parentId: parts[3] !== undefined ? spanIdOf(parts[3]) : undefined, sampled: sampledOf(parts[2]), debug, traceState };
      }
    }
  }
  if (h.b3Sampled !== undefined || h.b3Flags !== undefined) {
    const debug = h.b3Flags?.trim() === '1';
    const sampled = debug ? true : sampledOf(h.b3Sampled);
    if (sampled !== undefined) return { traceId: '', spanId: '', parentId: undefined, sampled, debug, traceState };
  }
  if (h.traceparent !== undefined) return parseTraceparent(h.traceparent, traceState);
  return undefined;
}

/** W3C Trace Context level 1: `version-traceid-parentid-flags`; version ff is invalid, unknown higher versions are read as 00. */
export function parseTraceparent(value: string, traceState?: string): TraceContext | undefined {
  const v = value.trim().toLowerCase();
  const parts = v.split('-');
  if (parts.length < 4) return undefined;
  const [version, traceId, spanId, flags] = parts;
  if (!/^[0-9a-f]{2}$/.test(version) || version === 'ff' || (version === '00' && parts.length !== 4)) return undefined;
  if (!HEX32.test(traceId) || traceId === ZERO32 || spanIdOf(spanId) === undefined || !/^[0-9a-f]{2}$/.test(flags)) return undefined;
  return { traceId, spanId, parentId: undefined, sampled: (parseInt(flags, 16) & 1) === 1, debug: false, traceState };
}

// Ids come from one pooled buffer of random bytes: a crypto call per 512 ids, not per id.
const POOL = Buffer.alloc(4096);
let poolOffset = POOL.length;

function randomHex(bytes: number): string {
  if (poolOffset + bytes > POOL.length) {
    randomFillSync(POOL);
    poolOffset = 0;
  }
  const out = POOL.toString('hex', poolOffset, poolOffset + bytes);
  poolOffset += bytes;
  // An all-zero id is invalid in both B3 and W3C.
  return /^0+$/.test(out) ? randomHex(bytes) : out;
}

export function newTraceId(): string {
  return randomHex(16);
}

export function newSpanId(): string {
  return randomHex(8);
}

/**
 * The context of this hop's span: a child of `incoming` (same trace, parent =
 * the incoming span), or a new root when there is none. The sampling decision
 * travels with the trace; only a root (or "defer") asks `sample()`.
 */
export function childContext(incoming: TraceContext | undefined, sample: () => boolean): TraceContext {
  const spanId = newSpanId();
  if (incoming === undefined || incoming.traceId === '') {
    const sampled = incoming?.sampled ?? sample();
    return { traceId: newTraceId(), spanId, parentId: undefined, sampled, debug: incoming?.debug ?? false, traceState: incoming?.traceState };
  }
  return { traceId: incoming.traceId, spanId, parentId: incoming.spanId, sampled: incoming.sampled ?? sample(), debug: incoming.debug, traceState: incoming.traceState };
}

/** Appends the trace headers to send upstream for `ctx` to a flat list, in all three forms (no list of its own: this runs per request). */
function pushTraceHeaders(out: string[], ctx: TraceContext): void {
  const sampled = ctx.sampled === true ? '1' : '0';
  out.push('x-b3-traceid', ctx.traceId, 'x-b3-spanid', ctx.spanId, 'x-b3-sampled', sampled);
  if (ctx.parentId !== undefined) out.push('x-b3-parentspanid', ctx.parentId);
  if (ctx.debug) out.push('x-b3-flags', '1');
  out.push('b3', `${ctx.traceId}-${ctx.spanId}-${ctx.debug ? 'd' : sampled}${ctx.parentId !== undefined ? '-' + ctx.parentId : ''}`);
  out.push('traceparent', `00-${ctx.traceId}-${ctx.spanId}-0${sampled}`);
  if (ctx.traceState !== undefined) out.push('tracestate', ctx.traceState);
}

/** Replaces the trace headers in a flat header list (in place) with those of `ctx`. */
export function injectTraceContext(raw: string[], ctx: TraceContext): void {
  let w = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    const len = name.length;
    if ((len === 2 || len === 10 || len === 11 || len === 12 || len === 17) && TRACE_HEADER_NAMES.has(name.toLowerCase())) continue;
    raw[w] = name;
    raw[w + 1] = raw[i + 1];
    w += 2;
  }
  raw.length = w;
  pushTraceHeaders(raw, ctx);
}
