// Logging at a rate limit: the first line of each kind at once, then at most one per interval
// with how many were left out in between, so a flood of refusals cannot flood the log.

import type { Clock } from './clock.js';

export class LogLimiter {
  readonly #clock: Clock;
  readonly #intervalMs: number;
  readonly #maxKinds: number;
  readonly #kinds = new Map<string, { at: number; skipped: number }>();

  constructor(clock: Clock, intervalMs = 10_000, maxKinds = 1000) {
    this.#clock = clock;
    this.#intervalMs = intervalMs;
    this.#maxKinds = maxKinds;
  }

  /** -1 when this line is to be left out; else how many of its kind were left out before it. */
  admit(kind: string): number {
    const now = this.#clock.now();
    const k = this.#kinds.get(kind);
    if (k === undefined) {
      // Bounded: past maxKinds the oldest kind is forgotten (it may log once more).
      if (this.#kinds.size >= this.#maxKinds) this.#kinds.delete(this.#kinds.keys().next().value!);
      this.#kinds.set(kind, { at: now, skipped: 0 });
      return 0;
    }
    if (now - k.at < this.#intervalMs) {
      k.skipped++;
      return -1;
    }
    const skipped = k.skipped;
    k.at = now;
    k.skipped = 0;
    return skipped;
  }

  /** The kind is over: its next line is admitted at once. */
  forget(kind: string): void {
    this.#kinds.delete(kind);
  }
}
