// The `file` source: one file on this host, read when its directory's inotify watch says it
// changed (an editor's rename, a `..data` swap, a write in place) and on a polling interval as the
// fallback where watching does not work. A missing or unreadable file is a failure of the source,
// never an empty value: the last good files stay.

import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import type { TimerHandle } from '../../lib/clock.js';
import { DirWatcher } from '../../lib/dir-watcher.js';
import { PillionError } from '../../lib/errors.js';
import type { FileSourceConfig } from '../config.js';
import { ONLY, type Source, type SourceHost } from './source.js';

export class FileSource implements Source {
  readonly #cfg: FileSourceConfig;
  readonly #host: SourceHost;
  readonly #name: string;
  readonly #path: string;
  #watcher: DirWatcher | undefined;
  #timer: TimerHandle | undefined;
  #stopped = false;
  #reading = false;
  #again = false;

  constructor(name: string, cfg: FileSourceConfig, host: SourceHost) {
    this.#name = name;
    this.#cfg = cfg;
    this.#host = host;
    this.#path = resolve(cfg.path);
  }

  start(): void {
    const dir = dirname(this.#path);
    const base = basename(this.#path);
    this.#watcher = new DirWatcher({
      // A ConfigMap-style volume swaps `..data`; any name in the directory may be the file's target.
      onEvent: (_dir, name) => {
        if (name === null || name === base || name.startsWith('..')) this.#read();
      },
    });
    this.#watcher.sync([dir]);
    this.#read();
  }

  stop(): void {
    this.#stopped = true;
    this.#watcher?.close();
    this.#timer?.cancel();
  }

  /** Reads now (one read at a time; a change seen during a read reads again after it). */
  #read(): void {
    if (this.#stopped) return;
    if (this.#reading) {
      this.#again = true;
      return;
    }
    this.#reading = true;
    this.#timer?.cancel();
    void this.#readOnce().finally(() => {
      this.#reading = false;
      if (this.#stopped) return;
      // The directory may have appeared since: watch it now.
      this.#watcher?.sync([dirname(this.#path)]);
      if (this.#again) {
        this.#again = false;
        this.#read();
        return;
      }
      this.#timer = this.#host.clock.setTimeout(() => this.#read(), this.#cfg.poll);
    });
  }

  async #readOnce(): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.#path, 'utf8');
    } catch (err) {
      if (this.#stopped) return;
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      this.#host.fail(
        new PillionError(
          'PILLION_ERR_SYNC_SOURCE',
          `file source ${this.#name}: cannot read ${this.#path}: ${code}`,
        ),
      );
      return;
    }
    if (this.#stopped) return;
    const version = createHash('sha256').update(text).digest('hex').slice(0, 12);
    this.#host.update(new Map([[ONLY, text]]), version);
  }
}
