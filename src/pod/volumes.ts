// Pod volumes on the host: emptyDir (tmpfs for medium: Memory, as root), hostPath, and configMap,
// secret and downwardAPI (fields and resources) projected the way the kubelet's AtomicWriter does it: files go into a
// timestamped directory, `..data` is a symlink to it, and each top-level name is a symlink
// through `..data`. An update writes a new directory and renames a new `..data` over the old one,
// so a reader sees the old set of files or the new, never a mix.

import { execFileSync } from 'node:child_process';
import {
  chmodSync,
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
import { PillionError } from '../lib/errors.js';
import type { VolumeSpec } from './config.js';
import { fieldValue, resourceValue } from './env.js';
import type { PodManifest } from './manifest.js';
import { parseQuantity } from './quantity.js';
import { type Allocatable, hostAllocatable } from './resources.js';

export interface ProjectedFile {
  path: string;
  data: Buffer;
  mode: number;
}

export class Volumes {
  #pod: PodManifest;
  #root: string;
  #tmpfs: string[] = [];
  #warn: (message: string) => void;
  #node: Allocatable;

  constructor(
    pod: PodManifest,
    root: string,
    warn: (message: string) => void,
    node: Allocatable = hostAllocatable(),
  ) {
    this.#pod = pod;
    this.#root = root;
    this.#warn = warn;
    this.#node = node;
  }

  /** Creates every volume; throws a PillionError that names the volume when one cannot be made. */
  prepare(): void {
    for (const v of this.#pod.spec.volumes) {
      if (v.hostPath) {
        checkHostPath(v);
        continue;
      }
      const dir = join(this.#root, v.name);
      mkdirSync(dir, { recursive: true, mode: 0o755 });
      if (v.emptyDir?.medium === 'Memory') this.#mountTmpfs(v, dir);
      const files = this.#projection(v);
      if (files) projectAtomically(dir, files);
    }
  }

  /** The host path a volume's content is at (for bind mounts, and for tests). */
  source(name: string): string {
    const v = this.#pod.spec.volumes.find((x) => x.name === name);
    if (!v) throw new Error(`no volume ${name}`);
    return v.hostPath ? v.hostPath.path : join(this.#root, name);
  }

  /** Re-projects configMap and secret volumes from a newer manifest; returns the names that changed. */
  update(next: PodManifest): string[] {
    this.#pod = { ...this.#pod, configMaps: next.configMaps, secrets: next.secrets };
    const changed: string[] = [];
    for (const v of this.#pod.spec.volumes) {
      if (!v.configMap && !v.secret) continue;
      const files = this.#projection(v);
      if (files && projectAtomically(join(this.#root, v.name), files)) changed.push(v.name);
    }
    return changed;
  }

  /** Unmounts what prepare() mounted. */
  cleanup(): void {
    for (const dir of this.#tmpfs.splice(0)) {
      try {
        execFileSync('umount', [dir], { stdio: 'ignore' });
      } catch {
        this.#warn(`could not unmount tmpfs at ${dir}`);
      }
    }
  }

  #mountTmpfs(v: VolumeSpec, dir: string): void {
    const size = v.emptyDir?.sizeLimit !== undefined ? parseQuantity(v.emptyDir.sizeLimit) : undefined;
    const opts = ['mode=0777', ...(size?.ok ? [`size=${Math.ceil(size.value)}`] : [])].join(',');
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', opts, 'tmpfs', dir], { stdio: 'pipe' });
      this.#tmpfs.push(dir);
    } catch (err) {
      this.#warn(
        `emptyDir "${v.name}" with medium: Memory is a plain directory: mounting tmpfs needs root (${firstLine(err)})`,
      );
    }
  }

  #projection(v: VolumeSpec): ProjectedFile[] | undefined {
    if (v.configMap || v.secret) {
      const src = v.configMap
        ? {
            data: this.#pod.configMaps.get(v.configMap.name),
            items: v.configMap.items,
            mode: v.configMap.defaultMode,
          }
        : {
            data: this.#pod.secrets.get(v.secret!.secretName),
            items: v.secret!.items,
            mode: v.secret!.defaultMode,
          };
      const data = src.data ?? new Map<string, Buffer>(); // an optional, absent source: an empty volume
      const items = src.items ?? [...data.keys()].map((key) => ({ key, path: key, mode: undefined }));
      return items
        .filter((i) => data.has(i.key))
        .map((i) => ({ path: i.path, data: data.get(i.key)!, mode: i.mode ?? src.mode }));
    }
    if (v.downwardAPI) {
      return v.downwardAPI.items.map((i) => ({
        path: i.path,
        data: Buffer.from(
          (i.fieldRef
            ? fieldValue(i.fieldRef.fieldPath, this.#pod)
            : resourceValue(i.resourceFieldRef!, this.#pod, this.#node)) ?? '',
        ),
        mode: i.mode ?? v.downwardAPI!.defaultMode,
      }));
    }
    return undefined;
  }
}

/**
 * Writes files into dir through a `..data` symlink swap. Returns false when the content is what
 * is already there (nothing is written then).
 */
export function projectAtomically(dir: string, files: ProjectedFile[]): boolean {
  for (const f of files) {
    if (f.path.startsWith('/') || f.path.split('/').includes('..') || f.path.startsWith('..')) {
      throw new PillionError(
        'PILLION_ERR_POD_INVALID',
        `volume item path "${f.path}" must be relative and may not contain ".."`,
      );
    }
  }
  const dataLink = join(dir, '..data');
  if (existsSync(dataLink) && sameContent(dataLink, files)) return false;

  const stamp = new Date().toISOString().replace(/[-:T]/g, '_').replace('Z', '');
  const target = join(dir, `..${stamp}.${Math.random().toString(36).slice(2, 8)}`);
  mkdirSync(target, { mode: 0o755 });
  for (const f of files) {
    const p = join(target, f.path);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, f.data);
    chmodSync(p, f.mode);
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

function sameContent(dataLink: string, files: ProjectedFile[]): boolean {
  try {
    const current = listFiles(dataLink);
    if (current.length !== files.length) return false;
    for (const f of files) {
      const p = join(dataLink, f.path);
      if ((statSync(p).mode & 0o777) !== f.mode) return false;
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

function checkHostPath(v: VolumeSpec): void {
  const { path, type } = v.hostPath!;
  const exists = existsSync(path);
  const fail = (what: string) => {
    throw new PillionError('PILLION_ERR_POD_INVALID', `hostPath volume "${v.name}": ${path} ${what}`);
  };
  switch (type) {
    case 'DirectoryOrCreate':
      if (!exists) mkdirSync(path, { recursive: true, mode: 0o755 });
      else if (!statSync(path).isDirectory()) fail('is not a directory');
      return;
    case 'Directory':
      if (!exists || !statSync(path).isDirectory()) fail('is not an existing directory');
      return;
    case 'FileOrCreate':
      if (!exists) writeFileSync(path, '', { mode: 0o644 });
      else if (!statSync(path).isFile()) fail('is not a file');
      return;
    case 'File':
      if (!exists || !statSync(path).isFile()) fail('is not an existing file');
      return;
    case 'Socket':
      if (!exists || !statSync(path).isSocket()) fail('is not a socket');
      return;
    case 'CharDevice':
      if (!exists || !statSync(path).isCharacterDevice()) fail('is not a character device');
      return;
    case 'BlockDevice':
      if (!exists || !statSync(path).isBlockDevice()) fail('is not a block device');
      return;
    default:
      if (!exists) fail('does not exist');
  }
}

function firstLine(err: unknown): string {
  const e = err as { stderr?: Buffer; message: string };
  return (e.stderr?.toString() || e.message).split('\n')[0]!.trim();
}
