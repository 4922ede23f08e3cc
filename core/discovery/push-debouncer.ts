// Mesh changes come in bursts (a deployment rolls 50 pods, an apply carries 20
// rules): rebuilding every proxy's config per event would push 50 times what one
// push carries. The debouncer waits for a quiet period, but never longer than a
// cap from the first change, so a mesh that never goes quiet still gets pushes.

export class PushDebouncer {
  readonly #fire: () => void;
  readonly #quietMs: number;
  readonly #maxDelayMs: number;
  #timer: NodeJS.Timeout | undefined;
  #firstChangeAt = 0;
  #stopped = false;

  constructor(fire: () => void, quietMs: number, maxDelayMs: number) {
    if (!(quietMs >= 0) || !(maxDelayMs >= 0)) throw new RangeError('debounce delays must be non-negative numbers');
    this.#fire = fire;
    this.#quietMs = quietMs;
    this.#maxDelayMs = Math.max(quietMs, maxDelayMs);
  }

  /** Notes a change; the callback runs once the burst it belongs to is over. */
  trigger(): void {
    if (this.#stopped) return;
    const now = Date.now();
    if (this.#timer === undefined) this.#firstChangeAt = now;
    else clearTimeout(this.#timer);
    const capLeft = this.#firstChangeAt + this.#maxDelayMs - now;
    const delay = Math.max(0, Math.min(this.#quietMs, capLeft));
    this.#timer = setTimeout(this.#onTimer, delay);
    this.#timer.unref();
  }

  /** True while a change waits for its push. */
  get pending(): boolean {
    return this.#timer !== undefined;
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  readonly #onTimer = (): void => {
    this.#timer = undefined;
    this.#fire();
  };
}
