// Writes a file so readers see the old content or the new, never a torn one: write a temporary
// file beside it, then rename it over the target. With `sync` (the default) the data and the
// directory entry are flushed to disk first, so the new content also survives a power cut;
// without it, it survives a crash of the process (the page cache outlives it), which is what
// callers that write many times a second choose.

import {
  closeSync,
  fchmodSync,
  fchownSync,
  fsyncSync,
  openSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { dirname, join } from 'node:path';

export interface AtomicWriteOptions {
  mode?: number;
  sync?: boolean;
  /**
   * With sync, also fsync the directory so the rename itself survives a power loss (default true).
   * A writer that rewrites the file at its next start anyway can leave it out: after a crash the
   * old file or the new one is there, each whole.
   */
  syncDir?: boolean;
  /** Set `mode` exactly, whatever the umask (the file's mode is part of what is written). */
  exactMode?: boolean;
  /** Owner and group of the new file (changing them needs root). */
  uid?: number | undefined;
  gid?: number | undefined;
}

export function writeFileAtomicSync(
  path: string,
  data: string | Buffer,
  opts: AtomicWriteOptions = {},
): void {
  const sync = opts.sync ?? true;
  const tmp = join(dirname(path), `.${process.pid}.${Date.now()}.${Math.random().toString(36).slice(2)}.tmp`);
  const fd = openSync(tmp, 'w', opts.mode ?? 0o644);
  try {
    try {
      if (opts.exactMode && opts.mode !== undefined) fchmodSync(fd, opts.mode);
      if (opts.uid !== undefined || opts.gid !== undefined) fchownSync(fd, opts.uid ?? -1, opts.gid ?? -1);
      writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
      if (sync) fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    // A failed write leaves no temporary file behind.
    try {
      unlinkSync(tmp);
    } catch {
      // Already gone.
    }
    throw err;
  }
  renameSync(tmp, path);
  if (sync && opts.syncDir !== false) fsyncDir(dirname(path));
}

function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Some file systems refuse fsync on a directory; the file itself is already synced.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
