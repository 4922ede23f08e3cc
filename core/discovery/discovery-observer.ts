// What the discovery server tells whoever watches it (the control plane's
// metrics): pushes, their answers, and the pushes that failed. Called once per
// push or answer, never per resource, so an observer may do modest work.

/** Why a push did not end in an answer from the proxy. */
export type PushFailure =
  /** The config for the proxy could not be built (unknown node, builder error). */
  | 'build'
  /** The proxy did not ACK or NACK in time; its stream was reset. */
  | 'ack_timeout'
  /** The proxy fell too many change rounds behind; its stream was closed. */
  | 'queue_overflow'
  /** The server failed while pushing (a bug); the stream was closed. */
  | 'internal';

export interface DiscoveryObserver {
  /** A push was written to a proxy: `fullState` for the snapshot that opens a stream. */
  pushed(fullState: boolean): void;
  /**
   * The proxy ACKed a push. `convergenceMs` is the time from the oldest mesh
   * change the push carried to this ACK; undefined for a push no change
   * caused (the snapshot of a new stream).
   */
  acked(convergenceMs: number | undefined): void;
  /** The proxy rejected a push (NACK). */
  nacked(): void;
  pushFailed(reason: PushFailure): void;
}
