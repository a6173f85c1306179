// Readers of Linux's /proc and cgroup files for /top: a process's state, CPU time, memory,
// threads and descriptors; the host's load, CPU time per core, memory, swap, uptime and network
// counters. Every read tolerates a process that exits while it is read (it is left out).
// CPU times in /proc are in clock ticks of USER_HZ, which is 100 on every architecture Linux
// exposes to user space (getconf CLK_TCK).

import { readdirSync, readFileSync, statfsSync } from 'node:fs';
import { join } from 'node:path';

export const TICKS_PER_SECOND = 100;

export interface ProcessReading {
  pid: number;
  ppid: number;
  command: string;
  /** R running, S sleeping, D disk sleep, Z zombie, T stopped, ... */
  state: string;
  /** User + system CPU time, seconds. */
  cpuSeconds: number;
  rssBytes: number;
  threads: number;
  /** Open file descriptors, or null when /proc/PID/fd cannot be read (another user's process). */
  fds: number | null;
  /** Seconds since boot at which the process started. */
  startedAfterBoot: number;
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** Every pid in /proc. */
export function listPids(proc = '/proc'): number[] {
  const out: number[] = [];
  for (const name of readdirSync(proc)) {
    const c = name.charCodeAt(0);
    if (c >= 48 && c <= 57) out.push(Number(name));
  }
  return out;
}

/**
 * A process's pid and parent, from its stat line alone (kept, for readProcess to use rather than
 * read it again); undefined when it is gone.
 */
export function readParent(
  pid: number,
  proc = '/proc',
): { pid: number; ppid: number; stat: string } | undefined {
  const stat = read(join(proc, String(pid), 'stat'));
  if (stat === undefined) return undefined;
  // After the command's closing parenthesis: the state, then the parent's pid.
  const after = stat.slice(stat.lastIndexOf(')') + 2);
  const space = after.indexOf(' ');
  return { pid, ppid: Number(after.slice(space + 1, after.indexOf(' ', space + 1))), stat };
}

/** One process, or undefined when it is gone; `stat` is its stat line when already read. */
export function readProcess(
  pid: number,
  proc = '/proc',
  stat = read(join(proc, String(pid), 'stat')),
): ProcessReading | undefined {
  const status = read(join(proc, String(pid), 'status'));
  if (stat === undefined || status === undefined) return undefined;
  // The command name is in parentheses and may itself hold spaces and parentheses.
  const close = stat.lastIndexOf(')');
  const comm = stat.slice(stat.indexOf('(') + 1, close);
  const f = stat.slice(close + 2).split(' ');
  // f[0] is field 3 (state); utime is field 14, stime 15, num_threads 20, starttime 22.
  const ticks = Number(f[11]) + Number(f[12]);
  const rss = /^VmRSS:\s+(\d+) kB/m.exec(status);
  let fds: number | null = null;
  try {
    fds = readdirSync(join(proc, String(pid), 'fd')).length;
  } catch {
    // another user's process
  }
  const cmdline = read(join(proc, String(pid), 'cmdline'));
  const command =
    cmdline !== undefined && cmdline.length > 0
      ? cmdline.replace(/\0+$/, '').replaceAll('\0', ' ')
      : `[${comm}]`;
  return {
    pid,
    ppid: Number(f[1]),
    command: command.length > 512 ? `${command.slice(0, 511)}…` : command,
    state: f[0]!,
    cpuSeconds: ticks / TICKS_PER_SECOND,
    rssBytes: rss ? Number(rss[1]) * 1024 : 0,
    threads: Number(f[17]),
    fds,
    startedAfterBoot: Number(f[19]) / TICKS_PER_SECOND,
  };
}

export interface CpuTimes {
  /** Busy seconds (everything but idle and iowait). */
  busy: number;
  total: number;
}

export interface HostReading {
  loadAverage: [number, number, number];
  /** The whole machine, then one entry per core. */
  cpu: CpuTimes;
  cores: CpuTimes[];
  bootTime: number;
  uptimeSeconds: number;
  memory: { totalBytes: number; availableBytes: number; usedBytes: number };
  swap: { totalBytes: number; freeBytes: number; usedBytes: number };
  network: { interface: string; rxBytes: number; txBytes: number; rxPackets: number; txPackets: number }[];
}

export function readHost(proc = '/proc'): HostReading {
  const load = (read(join(proc, 'loadavg')) ?? '0 0 0').split(' ');
  const stat = read(join(proc, 'stat')) ?? '';
  let cpu: CpuTimes = { busy: 0, total: 0 };
  const cores: CpuTimes[] = [];
  let bootTime = 0;
  for (const line of stat.split('\n')) {
    if (line.startsWith('cpu')) {
      const [name, ...v] = line.split(/\s+/);
      const n = v.slice(0, 8).map(Number); // user nice system idle iowait irq softirq steal
      const total = n.reduce((a, b) => a + b, 0) / TICKS_PER_SECOND;
      const idle = (n[3]! + n[4]!) / TICKS_PER_SECOND;
      const t = { busy: total - idle, total };
      if (name === 'cpu') cpu = t;
      else cores.push(t);
    } else if (line.startsWith('btime ')) bootTime = Number(line.slice(6));
  }
  const mem = read(join(proc, 'meminfo')) ?? '';
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(mem)?.[1] ?? 0) * 1024;
  const totalBytes = kb('MemTotal');
  const availableBytes = kb('MemAvailable');
  const swapTotal = kb('SwapTotal');
  const swapFree = kb('SwapFree');
  const network: HostReading['network'] = [];
  for (const line of (read(join(proc, 'net', 'dev')) ?? '').split('\n').slice(2)) {
    const m = /^\s*([^:]+):\s*(.*)$/.exec(line);
    if (!m) continue;
    const v = m[2]!.split(/\s+/).map(Number);
    network.push({ interface: m[1]!, rxBytes: v[0]!, rxPackets: v[1]!, txBytes: v[8]!, txPackets: v[9]! });
  }
  return {
    loadAverage: [Number(load[0]), Number(load[1]), Number(load[2])],
    cpu,
    cores,
    bootTime,
    uptimeSeconds: Number((read(join(proc, 'uptime')) ?? '0').split(' ')[0]),
    memory: { totalBytes, availableBytes, usedBytes: totalBytes - availableBytes },
    swap: { totalBytes: swapTotal, freeBytes: swapFree, usedBytes: swapTotal - swapFree },
    network,
  };
}

export interface FileSystemReading {
  path: string;
  totalBytes: number;
  usedBytes: number;
  availableBytes: number;
}

export function readFileSystem(path: string): FileSystemReading | undefined {
  try {
    const s = statfsSync(path);
    const total = s.blocks * s.bsize;
    return {
      path,
      totalBytes: total,
      usedBytes: total - s.bfree * s.bsize,
      availableBytes: s.bavail * s.bsize,
    };
  } catch {
    return undefined;
  }
}

/**
 * The memory a process's own cgroup charges (cgroup v2 memory.current, v1 memory.usage_in_bytes),
 * or undefined when it shares the cgroup of `than` (the runner) or none can be read.
 */
export function ownCgroupMemory(pid: number, than: number, root = '/sys/fs/cgroup'): number | undefined {
  const mine = read(`/proc/${pid}/cgroup`);
  const theirs = read(`/proc/${than}/cgroup`);
  if (mine === undefined || mine === theirs) return undefined;
  const lines = mine.trim().split('\n');
  const v1 = lines.find((l) => l.split(':')[1]?.split(',').includes('memory'));
  if (v1) {
    const v = read(join(root, 'memory', v1.split(':')[2]!, 'memory.usage_in_bytes'));
    if (v !== undefined) return Number(v);
  }
  const unified = lines.find((l) => l.startsWith('0::'));
  if (unified) {
    const v = read(join(root, unified.slice(3), 'memory.current'));
    if (v !== undefined) return Number(v);
  }
  return undefined;
}
