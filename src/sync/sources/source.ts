// What every sync source is: something that yields versions of a value (a map of keys to values)
// to its host, with its own timer and its own back-off. Rendering, writing and notifying are the
// engine's, shared by every source.

import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../../lib/clock.js';
import { PillionError } from '../../lib/errors.js';

/** The key of a source's only value (a file, a URL, one etcd or Consul key, a literal text). */
export const ONLY = '';

export interface SourceHost {
  readonly clock: Clock;
  readonly random: () => number;
  readonly logger: Logger;
  readonly env: Readonly<Record<string, string | undefined>>;
  /**
   * A version of the value: every key the source has now (the host finds what changed). Text is
   * parsed by the source's `parse`; `structured` values (Vault's JSON data) are taken as they are.
   * `version` is what the source calls it (a revision, an ETag, an index), shown in /sync.
   */
  update(values: ReadonlyMap<string, string | unknown>, version: string, structured?: boolean): void;
  /**
   * Only some keys changed (a value of undefined: the key was deleted); for sources that know what
   * changed (a watch's events), so a change costs the same whatever the number of keys.
   */
  patch(changes: ReadonlyMap<string, string | undefined>, version: string): void;
  /** The source was reached and nothing changed (a 304, a blocking query that timed out). */
  contact(version?: string): void;
  /** The source could not be reached or refused: the last value stays; the source retries by itself. */
  fail(err: PillionError): void;
}

export interface Source {
  /** Begins reading; the first value (or failure) is reported to the host. */
  start(): void;
  /** Stops every timer, request and watch. */
  stop(): void;
}

/**
 * Exponential back-off with jitter for one source: min, 2×min, ... up to max, each delay drawn
 * from its upper half so sources that failed together do not retry together.
 */
export class Retry {
  readonly #min: number;
  readonly #max: number;
  readonly #random: () => number;
  #failures = 0;

  constructor(opts: { min: number; max: number }, random: () => number) {
    this.#min = opts.min;
    this.#max = Math.max(opts.min, opts.max);
    this.#random = random;
  }

  get failures(): number {
    return this.#failures;
  }

  /** The delay before the next attempt after one more failure. */
  next(): number {
    this.#failures++;
    const full = Math.min(this.#max, this.#min * 2 ** Math.min(this.#failures - 1, 40));
    return Math.round(full / 2 + (this.#random() * full) / 2);
  }

  reset(): void {
    this.#failures = 0;
  }
}

/** A failure as the host is told it: a PillionError as it is, anything else as a source error naming the source. */
export function sourceError(what: string, err: unknown): PillionError {
  return err instanceof PillionError
    ? err
    : new PillionError('PILLION_ERR_SYNC_SOURCE', `${what}: ${(err as Error).message}`);
}

/**
 * A polling source's loop: runs `step`, which answers the delay before the next run; a failure is
 * reported to the host and the next run waits this source's back-off instead. Stopped, it runs
 * nothing more and reports nothing more.
 */
export class Poller {
  readonly #host: SourceHost;
  readonly #retry: Retry;
  readonly #what: string;
  readonly #step: () => Promise<number>;
  #timer: TimerHandle | undefined;
  #stopped = false;

  constructor(host: SourceHost, retry: Retry, what: string, step: () => Promise<number>) {
    this.#host = host;
    this.#retry = retry;
    this.#what = what;
    this.#step = step;
  }

  start(): void {
    void this.#poll();
  }

  stop(): void {
    this.#stopped = true;
    this.#timer?.cancel();
  }

  async #poll(): Promise<void> {
    if (this.#stopped) return;
    let next: number;
    try {
      next = await this.#step();
      this.#retry.reset();
    } catch (err) {
      if (this.#stopped) return;
      this.#host.fail(sourceError(this.#what, err));
      next = this.#retry.next();
    }
    if (this.#stopped) return;
    this.#timer = this.#host.clock.setTimeout(() => void this.#poll(), next);
  }
}
