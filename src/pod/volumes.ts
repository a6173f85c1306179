// Pod volumes on the host: emptyDir (tmpfs for medium: Memory, as root), hostPath, and configMap,
// secret and downwardAPI (fields and resources) projected the way the kubelet's AtomicWriter does it: files go into a
// timestamped directory, `..data` is a symlink to it, and each top-level name is a symlink
// through `..data`. An update writes a new directory and renames a new `..data` over the old one,
// so a reader sees the old set of files or the new, never a mix.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectAtomically, type ProjectedFile } from '../lib/atomic-dir.js';
import { PillionError } from '../lib/errors.js';
import type { VolumeSpec } from './config.js';
import { fieldValue, resourceValue } from './env.js';
import type { PodManifest } from './manifest.js';
import { parseQuantity } from './quantity.js';
import { type Allocatable, hostAllocatable } from './resources.js';

export { projectAtomically, type ProjectedFile } from '../lib/atomic-dir.js';

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
