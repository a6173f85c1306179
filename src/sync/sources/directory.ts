// The `directory` source: each regular file of a directory is a key (its name) and its content
// the value, as a ConfigMap volume lays them out. Watched like the file source; names starting
// with "." are left out, so a volume's `..data` and `..2024_...` entries are not read as keys.

import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { PillionError } from '../../lib/errors.js';
import type { DirectorySourceConfig } from '../config.js';
import type { Source, SourceHost } from './source.js';
import { WatchedReads } from './watched.js';

export class DirectorySource implements Source {
  readonly #cfg: DirectorySourceConfig;
  readonly #host: SourceHost;
  readonly #name: string;
  readonly #dir: string;
  readonly #reads: WatchedReads;

  constructor(name: string, cfg: DirectorySourceConfig, host: SourceHost) {
    this.#name = name;
    this.#cfg = cfg;
    this.#host = host;
    this.#dir = resolve(cfg.path);
    this.#reads = new WatchedReads({
      dir: this.#dir,
      pollMs: cfg.poll,
      clock: host.clock,
      read: () => this.#readOnce(),
    });
  }

  start(): void {
    this.#reads.start();
  }

  stop(): void {
    this.#reads.stop();
  }

  async #readOnce(): Promise<void> {
    const fail = (why: string) =>
      this.#host.fail(new PillionError('PILLION_ERR_SYNC_SOURCE', `directory source ${this.#name}: ${why}`));
    let names: string[];
    try {
      names = (await readdir(this.#dir)).filter((n) => !n.startsWith('.')).sort();
    } catch (err) {
      if (!this.#reads.stopped)
        fail(`cannot list ${this.#dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      return;
    }
    if (names.length > this.#cfg.maxFiles) {
      fail(`${names.length} files in ${this.#dir}, more than maxFiles (${this.#cfg.maxFiles})`);
      return;
    }
    const values = new Map<string, string>();
    const hash = createHash('sha256');
    for (const n of names) {
      const p = join(this.#dir, n);
      try {
        if (!(await stat(p)).isFile()) continue; // stat follows a volume's symlinks to their files
        const text = await readFile(p, 'utf8');
        values.set(n, text);
        hash.update(n).update('\0').update(text).update('\0');
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') continue; // removed between the listing and the read: the next read tells
        if (!this.#reads.stopped) fail(`cannot read ${p}: ${code ?? (err as Error).message}`);
        return;
      }
    }
    if (!this.#reads.stopped) this.#host.update(values, hash.digest('hex').slice(0, 12));
  }
}
