// Reconnect delays for the discovery client. Full jitter (a uniform pick in
// [0, min(max, initial * 2^attempt)]) spreads a fleet of proxies that lost the
// control plane at the same moment, so its restart is not met by all of them at once.

export interface BackoffSettings {
  /** Cap of the first delay (default 200). */
  initialMs?: number;
  /** Cap of any delay (default 5000). */
  maxMs?: number;
}

export class FullJitterBackoff {
  readonly #initialMs: number;
  readonly #maxMs: number;
  readonly #random: () => number;
  #attempt = 0;

  constructor(settings: BackoffSettings = {}, random: () => number = Math.random) {
    this.#initialMs = settings.initialMs ?? 200;
    this.#maxMs = settings.maxMs ?? 5000;
    if (!(this.#initialMs > 0) || !(this.#maxMs >= this.#initialMs)) {
      throw new RangeError(`backoff needs 0 < initialMs <= maxMs, got ${this.#initialMs} and ${this.#maxMs}`);
    }
    this.#random = random;
  }

  /** The delay before the next attempt; each call widens the window until maxMs. */
  next(): number {
    const ceiling = Math.min(this.#maxMs, this.#initialMs * 2 ** Math.min(this.#attempt, 30));
    this.#attempt++;
    return Math.floor(this.#random() * ceiling);
  }

  /** After a stream that worked, start from the small window again. */
  reset(): void {
    this.#attempt = 0;
  }
}
