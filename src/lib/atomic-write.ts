// Writes a file so readers see the old content or the new, never a torn one: write a temporary
// file beside it, then rename it over the target. With `sync` (the default) the data and the
// directory entry are flushed to disk first, so the new content also survives a power cut;
// without it, it survives a crash of the process (the page cache outlives it), which is what
// callers that write many times a second choose.

import { closeSync, fsyncSync, openSync, renameSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';

export interface AtomicWriteOptions {
  mode?: number;
  sync?: boolean;
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
    writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    if (sync) fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  if (sync) fsyncDir(dirname(path));
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
