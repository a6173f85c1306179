// Logs a recurring problem without flooding the log: the first occurrence of each key at once,
// then at most one line per interval carrying how many more there were since the last line.

import type { Logger } from 'pino';
import type { Clock } from './clock.js';

export class RateLimitedLog {
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #intervalMs: number;
  readonly #last = new Map<string, { at: number; suppressed: number }>();

  constructor(logger: Logger, clock: Clock, intervalMs = 60_000) {
    this.#logger = logger;
    this.#clock = clock;
    this.#intervalMs = intervalMs;
  }

  /** Logs at `level` unless a line of the same key went out within the interval (then counts it). */
  log(level: 'warn' | 'error' | 'info', key: string, fields: Record<string, unknown>, msg: string): void {
    const now = this.#clock.now();
    const last = this.#last.get(key);
    if (last !== undefined && now - last.at < this.#intervalMs) {
      last.suppressed++;
      return;
    }
    const suppressed = last?.suppressed ?? 0;
    this.#logger[level](suppressed > 0 ? { ...fields, suppressed } : fields, msg);
    this.#last.set(key, { at: now, suppressed: 0 });
    if (this.#last.size > 10_000) this.#last.delete(this.#last.keys().next().value!);
  }

  /** The problem of this key is over: its next occurrence is logged at once. */
  clear(key: string): void {
    this.#last.delete(key);
  }
}
