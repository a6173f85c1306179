// How a container's process is started: in its own process group, in its cgroups, and, when it
// mounts volumes, in a private mount namespace where each volume is bind-mounted at its
// mountPath. A small POSIX sh wrapper does the joining and mounting, then execs the command, so
// the container's pid is the wrapper's pid and signals to its group reach everything it started.

import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  readFileSync,
  realpathSync,
  rmdirSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';

export interface BindMount {
  source: string;
  target: string;
  readOnly: boolean;
  /** For a subPath: the volume's root, which the resolved source must stay inside. */
  within?: string | undefined;
}

/**
 * The reason a subPath mount may not be made now, or undefined. Checked at every launch: a
 * container with write access may have replaced a directory in the volume by a symlink since.
 */
export function subPathEscape(m: BindMount): string | undefined {
  if (!m.within) return undefined;
  try {
    const root = realpathSync(m.within);
    const real = realpathSync(m.source);
    return real === root || real.startsWith(`${root}/`)
      ? undefined
      : `subPath resolves to ${real}, outside its volume`;
  } catch (err) {
    return `subPath cannot be resolved: ${(err as Error).message}`;
  }
}

export interface LaunchPlan {
  file: string;
  args: string[];
  /** The process joins a private mount namespace (exec probes and hooks enter it by pid). */
  mountNamespace: boolean;
}

// $1.. : <n cgroup files> files... <n mounts> (src dst ro|rw)... <workdir or ""> command args...
// Mounts come shallowest first, each mount point made just before its bind (so a mount inside
// another volume works, and one another pod removed is made again); read-only remounts come last,
// after every bind, so a read-only volume can still hold the mount points of those inside it.
const WRAPPER = [
  'n=$1; shift',
  'while [ "$n" -gt 0 ]; do echo $$ > "$1" || { echo "pillion: cannot join cgroup $1" >&2; exit 126; }; shift; n=$((n-1)); done',
  'n=$1; shift; ro=',
  'while [ "$n" -gt 0 ]; do',
  '  if [ -d "$1" ]; then mkdir -p "$2"; else mkdir -p "$(dirname "$2")" && { [ -e "$2" ] || : > "$2"; }; fi',
  '  mount --bind "$1" "$2" || { echo "pillion: cannot mount $1 at $2" >&2; exit 126; }',
  '  if [ "$3" = ro ]; then ro="$ro$2\n"; fi',
  '  shift 3; n=$((n-1))',
  'done',
  'if [ -n "$ro" ]; then printf "$ro" | while IFS= read -r d; do mount -o remount,bind,ro "$d" || exit 126; done || exit 126; fi',
  'if [ -n "$1" ]; then cd "$1" || { echo "pillion: workingDir $1: no such directory" >&2; exit 126; }; fi; shift',
  'exec "$@"',
].join('\n');

export function planLaunch(opts: {
  command: string[];
  workingDir?: string | undefined;
  mounts: BindMount[];
  cgroupFiles: string[];
}): LaunchPlan {
  const { command, mounts, cgroupFiles } = opts;
  if (mounts.length === 0 && cgroupFiles.length === 0) {
    // Nothing to set up: run the command itself (the spawn's cwd handles workingDir).
    return { file: command[0]!, args: command.slice(1), mountNamespace: false };
  }
  const ordered = [...mounts].sort((a, b) => depth(a.target) - depth(b.target));
  const args = [
    '-c',
    WRAPPER,
    'pillion-container',
    String(cgroupFiles.length),
    ...cgroupFiles,
    String(ordered.length),
    ...ordered.flatMap((m) => [m.source, m.target, m.readOnly ? 'ro' : 'rw']),
    opts.workingDir ?? '',
    ...command,
  ];
  if (mounts.length === 0) return { file: '/bin/sh', args, mountNamespace: false };
  return {
    file: 'unshare',
    args: ['--mount', '--propagation', 'private', '--', '/bin/sh', ...args],
    mountNamespace: true,
  };
}

function depth(p: string): number {
  return p.split('/').filter(Boolean).length;
}

/** Whether this process may create private mount namespaces (root, with CAP_SYS_ADMIN). */
export function canIsolateMounts(): boolean {
  try {
    execFileSync('unshare', ['--mount', '--propagation', 'private', 'true'], {
      stdio: 'ignore',
      timeout: 5000,
    });
    return true;
  } catch {
    return false;
  }
}

/**
 * Creates the mount points a container needs, as empty directories (or empty files for a file
 * bind), and returns those it created so they can be removed when the pod goes away.
 */
export function ensureMountPoints(mounts: BindMount[]): string[] {
  const created: string[] = [];
  // A mount point inside another mount's target is made inside that volume, at launch.
  const outer = mounts.filter((m) => !mounts.some((o) => o !== m && m.target.startsWith(`${o.target}/`)));
  for (const m of outer) {
    if (existsSync(m.target)) continue;
    const isFile = existsSync(m.source) && statSync(m.source).isFile();
    let missing = isFile ? join(m.target, '..') : m.target;
    const chain: string[] = [];
    while (!existsSync(missing)) {
      chain.unshift(missing);
      missing = join(missing, '..');
    }
    mkdirSync(isFile ? join(m.target, '..') : m.target, { recursive: true });
    if (isFile) {
      writeFileSync(m.target, '', { flag: 'wx' });
      created.push(m.target);
    }
    created.push(...chain.reverse());
  }
  return created;
}

/** Removes mount points ensureMountPoints created, deepest first, if they are still empty. */
export function removeMountPoints(paths: string[]): void {
  for (const p of [...new Set(paths)].sort((a, b) => depth(b) - depth(a))) {
    try {
      if (statSync(p).isDirectory()) rmdirSync(p);
      else if (statSync(p).size === 0) unlinkSync(p);
    } catch {
      // not empty, or in use by another pod: leave it
    }
  }
}

/** Finds an executable as execvp would, so "command not found" is reported before starting. */
export function resolveExecutable(cmd: string, path: string, cwd: string): string | undefined {
  const candidates = cmd.includes('/')
    ? [isAbsolute(cmd) ? cmd : join(cwd, cmd)]
    : path
        .split(delimiter)
        .filter(Boolean)
        .map((d) => join(d, cmd));
  for (const c of candidates) {
    try {
      const st = statSync(c);
      if (st.isFile() && (st.mode & 0o111) !== 0) return c;
    } catch {
      // keep looking
    }
  }
  return undefined;
}

// --- cgroups ----------------------------------------------------------------------------------

export interface Limits {
  memoryBytes?: number | undefined;
  /** CPU cores, e.g. 0.5 for "500m". */
  cpu?: number | undefined;
}

export interface CgroupHandle {
  /** cgroup.procs files the container's process writes its pid into. */
  procFiles: string[];
  /** The kernel's count of OOM kills in this cgroup (compare before and after a run). */
  oomKills(): number;
  remove(): void;
}

const CPU_PERIOD_US = 100_000;

/**
 * Creates cgroups that enforce limits, under the cgroup this process is in (v2 unified, or the v1
 * memory and cpu hierarchies). Throws with the reason when that is not permitted.
 */
export function createCgroup(name: string, limits: Limits, root = '/sys/fs/cgroup'): CgroupHandle {
  const self = readFileSync('/proc/self/cgroup', 'utf8').trim().split('\n');
  const unified = self.find((l) => l.startsWith('0::'));
  const v1 = (controller: string) =>
    self.find((l) => l.split(':')[1]?.split(',').includes(controller))?.split(':')[2];
  const quota = limits.cpu !== undefined ? Math.max(1000, Math.round(limits.cpu * CPU_PERIOD_US)) : undefined;

  if (existsSync(join(root, 'cgroup.controllers'))) {
    const dir = join(root, unified!.slice(3), name);
    const parent = join(dir, '..');
    const wanted = [limits.memoryBytes !== undefined ? 'memory' : '', quota ? 'cpu' : ''].filter(Boolean);
    const enabled = readFileSync(join(parent, 'cgroup.subtree_control'), 'utf8').split(/\s+/);
    for (const c of wanted)
      if (!enabled.includes(c)) writeFileSync(join(parent, 'cgroup.subtree_control'), `+${c}`);
    mkdirSync(dir);
    if (limits.memoryBytes !== undefined) writeFileSync(join(dir, 'memory.max'), String(limits.memoryBytes));
    if (quota) writeFileSync(join(dir, 'cpu.max'), `${quota} ${CPU_PERIOD_US}`);
    return {
      procFiles: [join(dir, 'cgroup.procs')],
      oomKills: () => oomKills(join(dir, 'memory.events')),
      remove: () => rmdirQuiet(dir),
    };
  }

  const dirs: string[] = [];
  const procFiles: string[] = [];
  let memDir: string | undefined;
  try {
    if (limits.memoryBytes !== undefined) {
      memDir = join(root, 'memory', v1('memory') ?? '/', name);
      mkdirSync(memDir);
      dirs.push(memDir);
      writeFileSync(join(memDir, 'memory.limit_in_bytes'), String(limits.memoryBytes));
      procFiles.push(join(memDir, 'cgroup.procs'));
    }
    if (quota) {
      const cpuDir = join(root, 'cpu', v1('cpu') ?? '/', name);
      mkdirSync(cpuDir);
      dirs.push(cpuDir);
      writeFileSync(join(cpuDir, 'cpu.cfs_period_us'), String(CPU_PERIOD_US));
      writeFileSync(join(cpuDir, 'cpu.cfs_quota_us'), String(quota));
      procFiles.push(join(cpuDir, 'cgroup.procs'));
    }
  } catch (err) {
    for (const d of dirs) rmdirQuiet(d);
    throw err;
  }
  return {
    procFiles,
    oomKills: () => (memDir ? oomKills(join(memDir, 'memory.oom_control')) : 0),
    remove: () => {
      for (const d of dirs) rmdirQuiet(d);
    },
  };
}

function oomKills(file: string): number {
  return Number(/oom_kill (\d+)/.exec(safeRead(file))?.[1] ?? 0);
}

function safeRead(p: string): string {
  try {
    return readFileSync(p, 'utf8');
  } catch {
    return '';
  }
}

function rmdirQuiet(d: string): void {
  // A cgroup can be removed once its last process has been reaped, which may trail the exit a little.
  for (let i = 0; i < 20; i++) {
    try {
      rmdirSync(d);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EBUSY') return; // gone already, or never made
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
    }
  }
}
