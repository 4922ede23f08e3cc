// Envoy-style response flags, kept as a bitmask on the exchange so the hot path
// only ORs integers; the short names are built only when a log line or a metric
// label actually needs them.

export const ResponseFlag = {
  /** No healthy upstream endpoint. */
  UH: 1 << 0,
  /** Upstream connection failure. */
  UF: 1 << 1,
  /** Upstream connection termination (reset after connect, before or while answering). */
  UC: 1 << 2,
  /** No route configured for the request. */
  NR: 1 << 3,
  /** Downstream connection termination (the client went away). */
  DC: 1 << 4,
  /** Upstream request timeout. */
  UT: 1 << 5,
  /** Upstream retry limit exceeded (set by the retry feature). */
  URX: 1 << 6,
  /** Upstream protocol error (malformed response). */
  UPE: 1 << 7,
  /** The route's cluster does not exist in the running config. */
  NC: 1 << 8,
  /** Upstream overflow: a circuit breaker refused the request. */
  UO: 1 << 10,
  /** The request was delayed by fault injection. */
  DI: 1 << 11,
  /** The request was aborted by fault injection. */
  FI: 1 << 12,
  /** The request was refused by the local rate limit (429). */
  RL: 1 << 13,
  /** Upstream remote reset: the upstream reset the HTTP/2 stream (RST_STREAM) before its answer was whole. */
  UR: 1 << 9,
} as const;

export type ResponseFlagName = keyof typeof ResponseFlag;

const NAMES = Object.keys(ResponseFlag) as ResponseFlagName[];

/** `UH,UF` style, `-` when none (as Envoy's access log). */
export function formatResponseFlags(mask: number): string {
  if (mask === 0) return '-';
  let out = '';
  for (const name of NAMES) {
    if (mask & ResponseFlag[name]) out = out === '' ? name : out + ',' + name;
  }
  return out;
}
