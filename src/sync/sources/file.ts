// The `file` source: one file on this host, read when its directory's inotify watch says it
// changed (an editor's rename, a `..data` swap, a write in place) and on a polling interval as the
// fallback where watching does not work. A missing or unreadable file is a failure of the source,
// never an empty value: the last good files stay.

import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { PillionError } from '../../lib/errors.js';
import type { FileSourceConfig } from '../config.js';
import { ONLY, type Source, type SourceHost } from './source.js';
import { WatchedReads } from './watched.js';

export class FileSource implements Source {
  readonly #host: SourceHost;
  readonly #name: string;
  readonly #path: string;
  readonly #reads: WatchedReads;

  constructor(name: string, cfg: FileSourceConfig, host: SourceHost) {
    this.#name = name;
    this.#host = host;
    this.#path = resolve(cfg.path);
    const base = basename(this.#path);
    this.#reads = new WatchedReads({
      dir: dirname(this.#path),
      pollMs: cfg.poll,
      clock: host.clock,
      read: () => this.#readOnce(),
      // A ConfigMap-style volume swaps `..data`; any name in the directory may be the file's target.
      wanted: (name) => name === null || name === base || name.startsWith('..'),
    });
  }

  start(): void {
    this.#reads.start();
  }

  stop(): void {
    this.#reads.stop();
  }

  async #readOnce(): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.#path, 'utf8');
    } catch (err) {
      if (this.#reads.stopped) return;
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      this.#host.fail(
        new PillionError(
          'PILLION_ERR_SYNC_SOURCE',
          `file source ${this.#name}: cannot read ${this.#path}: ${code}`,
        ),
      );
      return;
    }
    if (this.#reads.stopped) return;
    const version = createHash('sha256').update(text).digest('hex').slice(0, 12);
    this.#host.update(new Map([[ONLY, text]]), version);
  }
}
