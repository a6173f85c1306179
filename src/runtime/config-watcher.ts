// Notices when the config file changes: edited in place, replaced by rename (as editors save), or
// swapped through a symlink (Kubernetes ConfigMap volumes swap a `..data` link). It watches the
// directory, not the file, since a rename leaves a file watch on the old inode, and compares
// content hashes, so touches and unrelated files in the directory do not cause reloads. A slow
// poll backs up fs.watch on filesystems where it misses events (NFS, some overlays).

import { createHash } from 'node:crypto';
import { type FSWatcher, watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Clock, TimerHandle } from '../lib/clock.js';

export interface ConfigWatcherOptions {
  clock: Clock;
  /** Quiet time after the last event before the file is read; editors write in several steps. */
  debounceMs?: number;
  pollMs?: number;
  onError?: (err: Error) => void;
}

export class ConfigWatcher {
  #file: string;
  #onChange: () => void;
  #clock: Clock;
  #debounceMs: number;
  #pollMs: number;
  #onError: (err: Error) => void;
  #watcher: FSWatcher | undefined;
  #debounce: TimerHandle | undefined;
  #poll: TimerHandle | undefined;
  #lastHash: string | undefined;
  #stopped = false;

  constructor(file: string, onChange: () => void, opts: ConfigWatcherOptions) {
    this.#file = file;
    this.#onChange = onChange;
    this.#clock = opts.clock;
    this.#debounceMs = opts.debounceMs ?? 100;
    this.#pollMs = opts.pollMs ?? 5000;
    this.#onError = opts.onError ?? (() => {});
  }

  /** Starts watching; `loadedText` is the content the running config came from. */
  start(loadedText: string): void {
    this.#lastHash = hash(loadedText);
    try {
      this.#watcher = watch(dirname(this.#file), { persistent: false }, () => this.#schedule());
      this.#watcher.on('error', (err) => this.#onError(err));
    } catch (err) {
      this.#onError(err as Error); // polling still covers it
    }
    this.#schedulePoll();
  }

  /** Records content loaded by other means (SIGHUP, POST /reload) so it does not count as a change. */
  markLoaded(text: string): void {
    this.#lastHash = hash(text);
  }

  stop(): void {
    this.#stopped = true;
    this.#watcher?.close();
    this.#debounce?.cancel();
    this.#poll?.cancel();
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#debounce?.cancel();
    this.#debounce = this.#clock.setTimeout(() => void this.check(), this.#debounceMs);
  }

  #schedulePoll(): void {
    this.#poll = this.#clock.setTimeout(() => {
      void this.check().finally(() => {
        if (!this.#stopped) this.#schedulePoll();
      });
    }, this.#pollMs);
  }

  /** Reads the file now and calls onChange if its content changed; events and the poll call it. */
  async check(): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.#file, 'utf8');
    } catch {
      return; // mid-rename or deleted: the next event or poll sees the new file
    }
    // A file rewritten in place is empty between its truncation and its write; on a busy machine a
    // check can land there, and an empty file is a valid config (all defaults: every module
    // stopped). Wait for the write. Going back to the defaults on purpose takes SIGHUP or POST /reload.
    if (text.trim() === '') return;
    const h = hash(text);
    if (this.#stopped || h === this.#lastHash) return;
    this.#lastHash = h;
    this.#onChange();
  }
}

function hash(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
