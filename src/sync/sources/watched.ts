// How the file and directory sources read: when the directory's watch (inotify, polling as the
// fallback of DirWatcher) reports a change, and every `poll` besides; one read at a time, and a
// change seen during a read reads again after it.

import type { Clock, TimerHandle } from '../../lib/clock.js';
import { DirWatcher } from '../../lib/dir-watcher.js';

export class WatchedReads {
  readonly #dir: string;
  readonly #pollMs: number;
  readonly #clock: Clock;
  readonly #read: () => Promise<void>;
  readonly #wanted: (name: string | null) => boolean;
  #watcher: DirWatcher | undefined;
  #timer: TimerHandle | undefined;
  #stopped = false;
  #reading = false;
  #again = false;

  /** `wanted` tells which changed names in `dir` call for a read (null: the watch cannot say). */
  constructor(opts: {
    dir: string;
    pollMs: number;
    clock: Clock;
    read: () => Promise<void>;
    wanted?: (name: string | null) => boolean;
  }) {
    this.#dir = opts.dir;
    this.#pollMs = opts.pollMs;
    this.#clock = opts.clock;
    this.#read = opts.read;
    this.#wanted = opts.wanted ?? (() => true);
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  start(): void {
    this.#watcher = new DirWatcher({
      onEvent: (_dir, name) => {
        if (this.#wanted(name)) this.now();
      },
    });
    this.#watcher.sync([this.#dir]);
    this.now();
  }

  stop(): void {
    this.#stopped = true;
    this.#watcher?.close();
    this.#timer?.cancel();
  }

  /** Reads now, or after the read in progress. */
  now(): void {
    if (this.#stopped) return;
    if (this.#reading) {
      this.#again = true;
      return;
    }
    this.#reading = true;
    this.#timer?.cancel();
    void this.#read().finally(() => {
      this.#reading = false;
      if (this.#stopped) return;
      // The directory may have appeared since: watch it now.
      this.#watcher?.sync([this.#dir]);
      if (this.#again) {
        this.#again = false;
        this.now();
        return;
      }
      this.#timer = this.#clock.setTimeout(() => this.now(), this.#pollMs);
    });
  }
}
