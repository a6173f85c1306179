// Writes a set of files so a reader sees every file of one version at once, the way the kubelet's
// AtomicWriter projects ConfigMap and Secret volumes: the files go into a new timestamped
// directory, `..data` is a symlink to it, and each top-level name is a symlink through `..data`.
// An update writes a new directory and renames a new `..data` over the old one (the atomic step),
// then removes the old directory. Shared by the pod runner's volumes and the sync role.

import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { type ErrorCode, PillionError } from './errors.js';

export interface ProjectedFile {
  path: string;
  data: Buffer;
  mode: number;
  uid?: number | undefined;
  gid?: number | undefined;
}

export interface ProjectOptions {
  /** The code of the error a bad relative path is reported with. */
  errorCode?: ErrorCode;
  /** What the bad path is called in that error ("volume item path"). */
  what?: string;
}

/**
 * Writes files into dir through a `..data` symlink swap. Returns false when the content (and
 * modes) are what is already there: nothing is written then. Not safe for two writers at once:
 * callers serialise their writes to one directory.
 */
export function projectAtomically(dir: string, files: ProjectedFile[], opts: ProjectOptions = {}): boolean {
  for (const f of files) {
    if (f.path.startsWith('/') || f.path.split('/').includes('..') || f.path.startsWith('..')) {
      throw new PillionError(
        opts.errorCode ?? 'PILLION_ERR_POD_INVALID',
        `${opts.what ?? 'volume item path'} "${f.path}" must be relative and may not contain ".."`,
      );
    }
  }
  const dataLink = join(dir, '..data');
  if (existsSync(dataLink) && sameContent(dataLink, files)) return false;

  const stamp = new Date().toISOString().replace(/[-:T]/g, '_').replace('Z', '');
  const target = join(dir, `..${stamp}.${Math.random().toString(36).slice(2, 8)}`);
  mkdirSync(target, { mode: 0o755 });
  chmodSync(target, 0o755); // whatever the umask
  for (const f of files) {
    const p = join(target, f.path);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, f.data);
    chmodSync(p, f.mode);
    if (f.uid !== undefined || f.gid !== undefined) chownSync(p, f.uid ?? -1, f.gid ?? -1);
  }
  const old = existsSync(dataLink) ? readlinkSync(dataLink) : undefined;
  const tmpLink = join(dir, '..data_tmp');
  rmSync(tmpLink, { force: true });
  symlinkSync(target.slice(dir.length + 1), tmpLink);
  renameSync(tmpLink, dataLink); // the atomic step

  const top = new Set(files.map((f) => f.path.split('/')[0]!));
  for (const name of top) {
    const link = join(dir, name);
    if (!existsSync(link)) symlinkSync(join('..data', name), link);
  }
  for (const entry of readdirSync(dir)) {
    if (entry.startsWith('..') || top.has(entry)) continue;
    if (lstatSync(join(dir, entry)).isSymbolicLink()) rmSync(join(dir, entry)); // a key that is gone
  }
  if (old) rmSync(join(dir, old), { recursive: true, force: true });
  return true;
}

/** The files under `..data` now, by relative path; undefined when there is no `..data` yet. */
export function readProjection(dir: string): Map<string, Buffer> | undefined {
  const dataLink = join(dir, '..data');
  if (!existsSync(dataLink)) return undefined;
  const out = new Map<string, Buffer>();
  for (const rel of listFiles(dataLink)) out.set(rel, readFileSync(join(dataLink, rel)));
  return out;
}

function sameContent(dataLink: string, files: ProjectedFile[]): boolean {
  try {
    const current = listFiles(dataLink);
    if (current.length !== files.length) return false;
    for (const f of files) {
      const p = join(dataLink, f.path);
      const st = statSync(p);
      if ((st.mode & 0o7777) !== f.mode) return false;
      if ((f.uid !== undefined && st.uid !== f.uid) || (f.gid !== undefined && st.gid !== f.gid))
        return false;
      if (!Buffer.from(readFileSync(p)).equals(f.data)) return false;
    }
    return true;
  } catch {
    return false;
  }
}

function listFiles(dir: string, prefix = ''): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? listFiles(join(dir, e.name), `${prefix}${e.name}/`) : [`${prefix}${e.name}`],
  );
}
