// Logs a recurring problem without flooding the log: the first occurrence of each key at once,
// then at most one line per interval carrying how many more there were since the last line.
// The counting is LogLimiter's; this puts it in front of a logger.

import type { Logger } from 'pino';
import type { Clock } from './clock.js';
import { LogLimiter } from './log-limiter.js';

export class RateLimitedLog {
  readonly #logger: Logger;
  readonly #limiter: LogLimiter;

  constructor(logger: Logger, clock: Clock, intervalMs = 60_000) {
    this.#logger = logger;
    this.#limiter = new LogLimiter(clock, intervalMs, 10_000);
  }

  /** Logs at `level` unless a line of the same key went out within the interval (then counts it). */
  log(level: 'warn' | 'error' | 'info', key: string, fields: Record<string, unknown>, msg: string): void {
    const suppressed = this.#limiter.admit(key);
    if (suppressed < 0) return;
    this.#logger[level](suppressed > 0 ? { ...fields, suppressed } : fields, msg);
  }

  /** The problem of this key is over: its next occurrence is logged at once. */
  clear(key: string): void {
    this.#limiter.forget(key);
  }
}
