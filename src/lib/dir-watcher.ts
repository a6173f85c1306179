// Watches a set of directories with fs.watch (inotify on Linux) and reports each name that changed
// in them, so a reader sees a new or renamed file at once instead of at its next poll. Watching
// only speeds things up: a directory that cannot be watched (no inotify, its watch limit reached,
// a network file system whose remote writes raise no event) is left to the caller's polling.

import { type FSWatcher, statSync, watch } from 'node:fs';

export interface DirWatcherOptions {
  /**
   * Something happened to `name` in `dir`: `rename` (created, deleted, or renamed from or to it)
   * or `change` (written to). `name` is null when the kernel did not say (an event queue overflow).
   */
  onEvent(dir: string, name: string | null, kind: 'rename' | 'change'): void;
  /** A directory that exists cannot be watched; called once per directory until it can be again. */
  onUnwatchable?(dir: string, err: Error): void;
  /** The most directories watched at once (each costs an inotify watch); the rest are polled. */
  max?: number;
}

interface Watched {
  watcher: FSWatcher;
  /** The directory's inode and birth time when the watch was set: one deleted and made again needs a new watch. */
  id: string;
}

const DEFAULT_MAX = 1024;

export class DirWatcher {
  readonly #opts: DirWatcherOptions;
  readonly #max: number;
  readonly #watched = new Map<string, Watched>();
  /** Directories reported unwatchable, so each is reported once. */
  readonly #reported = new Set<string>();
  #closed = false;

  constructor(opts: DirWatcherOptions) {
    this.#opts = opts;
    this.#max = opts.max ?? DEFAULT_MAX;
  }

  /** How many directories are watched now. */
  get size(): number {
    return this.#watched.size;
  }

  /** Whether `dir` is being watched now. */
  watching(dir: string): boolean {
    return this.#watched.has(dir);
  }

  /**
   * Watches exactly these directories: new ones are added (those that do not exist yet are tried
   * again at the next call), the others closed, and one that was replaced is watched anew.
   */
  sync(dirs: Iterable<string>): void {
    if (this.#closed) return;
    const want = new Set(dirs);
    for (const [dir, w] of this.#watched) {
      if (!want.has(dir) || identity(dir) !== w.id) this.#unwatch(dir);
    }
    for (const dir of want) {
      if (this.#watched.has(dir)) continue;
      if (this.#watched.size >= this.#max) {
        this.#unwatchable(dir, new Error(`more than ${this.#max} directories to watch`));
        continue;
      }
      this.#watch(dir);
    }
  }

  close(): void {
    this.#closed = true;
    for (const dir of [...this.#watched.keys()]) this.#unwatch(dir);
  }

  #watch(dir: string): void {
    const id = identity(dir);
    if (id === undefined) return; // not there (yet): polling finds it, the next sync watches it
    let watcher: FSWatcher;
    try {
      watcher = watch(dir, { persistent: false }, (kind, name) =>
        this.#opts.onEvent(
          dir,
          typeof name === 'string' ? name : null,
          kind === 'change' ? 'change' : 'rename',
        ),
      );
    } catch (err) {
      this.#unwatchable(dir, err as Error);
      return;
    }
    // The directory went away or the watch broke: polling covers it until the next sync.
    watcher.on('error', () => this.#unwatch(dir));
    this.#watched.set(dir, { watcher, id });
    this.#reported.delete(dir);
  }

  #unwatch(dir: string): void {
    const w = this.#watched.get(dir);
    if (!w) return;
    this.#watched.delete(dir);
    try {
      w.watcher.close();
    } catch {
      // Already closed by its error.
    }
  }

  #unwatchable(dir: string, err: Error): void {
    if (this.#reported.has(dir)) return;
    this.#reported.add(dir);
    this.#opts.onUnwatchable?.(dir, err);
  }
}

/** Inode and birth time: a new directory may reuse the inode number of one just deleted. */
function identity(dir: string): string | undefined {
  try {
    const st = statSync(dir);
    return st.isDirectory() ? `${st.ino}:${st.birthtimeMs}` : undefined;
  } catch {
    return undefined;
  }
}
