// Puts rendered files in place: a single file by temp + fsync + rename, a set by the kubelet's
// `..data` symlink swap (lib/atomic-dir, shared with the pod runner's volumes). Before writing, the
// content is compared with what is there (equal content is no write and no notification) and the
// check command, if any, is run on a staged copy. What was there before is returned, so a change
// the app cannot live with can be put back.

import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { projectAtomically, type ProjectedFile, readProjection } from '../lib/atomic-dir.js';
import { writeFileAtomicSync } from '../lib/atomic-write.js';
import { PillionError } from '../lib/errors.js';

/** One rendered file: for a single destination its path is '' (the destination's path). */
export interface RenderedFile {
  path: string;
  data: Buffer;
  mode: number;
  uid?: number | undefined;
  gid?: number | undefined;
}

/** What a destination holds on disk; undefined entries mean "there was no file". */
export type Snapshot = RenderedFile[] | undefined;

export interface Target {
  /** The file, or the directory of a set. */
  readonly where: string;
  readonly set: boolean;
}

/** Whether the files on disk are exactly these (content and mode). */
export function unchanged(t: Target, files: readonly RenderedFile[]): boolean {
  const now = read(t);
  if (!now || now.length !== files.length) return false;
  return files.every((f) => {
    const cur = now.find((c) => c.path === f.path);
    return cur !== undefined && cur.mode === f.mode && cur.data.equals(f.data);
  });
}

/** What is on disk now (for a later roll back). */
export function read(t: Target): Snapshot {
  try {
    if (t.set) {
      const proj = readProjection(t.where);
      if (!proj) return undefined;
      return [...proj].map(([path, data]) => ({
        path,
        data,
        mode: statSync(join(t.where, '..data', path)).mode & 0o7777,
      }));
    }
    const data = readFileSync(t.where);
    return [{ path: '', data, mode: statSync(t.where).mode & 0o7777 }];
  } catch {
    return undefined;
  }
}

/** Writes the files atomically. Throws PILLION_ERR_SYNC_WRITE. */
export function write(t: Target, files: readonly RenderedFile[]): void {
  try {
    if (t.set) {
      mkdirSync(t.where, { recursive: true });
      const projected: ProjectedFile[] = files.map((f) => ({ ...f }));
      projectAtomically(t.where, projected, { errorCode: 'PILLION_ERR_SYNC_WRITE', what: 'file path' });
      return;
    }
    const f = files[0]!;
    mkdirSync(dirname(t.where), { recursive: true });
    // The file is fsynced before the rename; the directory is not: a rename lost to a power cut
    // leaves the old file whole, and the next start renders and writes it again.
    writeFileAtomicSync(t.where, f.data, {
      mode: f.mode,
      exactMode: true,
      sync: true,
      syncDir: false,
      uid: f.uid,
      gid: f.gid,
    });
  } catch (err) {
    if (err instanceof PillionError) throw err;
    throw new PillionError(
      'PILLION_ERR_SYNC_WRITE',
      `cannot write ${t.where}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      { cause: err },
    );
  }
}

/** Puts a snapshot back: the files as they were, or none when there were none. */
export function restore(t: Target, snap: Snapshot): void {
  if (snap) return write(t, snap);
  try {
    if (t.set) rmSync(t.where, { recursive: true, force: true });
    else unlinkSync(t.where);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
      throw new PillionError('PILLION_ERR_SYNC_WRITE', `cannot remove ${t.where}: ${(err as Error).message}`);
  }
}

/**
 * Runs the check command on a staged copy (beside the target, mode 0600, removed after): `{{src}}`
 * in an argument is its path, appended when no argument has it. Rejects with PILLION_ERR_SYNC_CHECK;
 * the message has the exit status and, unless the file is a secret, the first line of stderr.
 */
export async function check(
  t: Target,
  files: readonly RenderedFile[],
  command: readonly string[],
  timeoutMs: number,
  secret: boolean,
): Promise<void> {
  const parent = t.set ? dirname(t.where) : dirname(t.where);
  mkdirSync(parent, { recursive: true });
  const stage = mkdtempSync(join(parent, '.pillion-check-'));
  try {
    let src: string;
    if (t.set) {
      for (const f of files) {
        const p = join(stage, f.path);
        mkdirSync(dirname(p), { recursive: true });
        writeFileSync(p, f.data, { mode: 0o600 });
      }
      src = stage;
    } else {
      src = join(stage, 'staged');
      writeFileSync(src, files[0]!.data, { mode: 0o600 });
    }
    const args = command.slice(1).map((a) => a.replaceAll('{{src}}', src));
    if (!command.slice(1).some((a) => a.includes('{{src}}'))) args.push(src);
    await new Promise<void>((resolve, reject) => {
      execFile(command[0]!, args, { timeout: timeoutMs, maxBuffer: 64 * 1024 }, (err, _stdout, stderr) => {
        if (!err) return resolve();
        const e = err as NodeJS.ErrnoException & { killed?: boolean; code?: number | string };
        const why = e.killed
          ? `did not finish within ${timeoutMs} ms`
          : typeof e.code === 'number'
            ? `exited with status ${e.code}`
            : `could not run (${e.code ?? e.message})`;
        const line = secret
          ? ''
          : String(stderr)
              .split('\n')
              .find((l) => l.trim() !== '');
        reject(
          new PillionError(
            'PILLION_ERR_SYNC_CHECK',
            `check ${command[0]} refused ${t.where}: ${why}${line ? `: ${line.slice(0, 200)}` : ''}`,
          ),
        );
      });
    });
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}
