// What /top answers: the host and the processes of the app and its sidecars, CPU use as a share
// of one core over the time since the sampler's previous reading (since the process started, or
// since boot for the host, the first time), as top does between two refreshes.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Clock } from '../lib/clock.js';
import {
  type CpuTimes,
  type FileSystemReading,
  type HostReading,
  listPids,
  type ProcessReading,
  readFileSystem,
  readHost,
  readParent,
  readProcess,
} from './proc.js';

export type Scope = 'pod' | 'self' | 'all';

export interface ProcessRow {
  pid: number;
  ppid: number;
  /** The pod's container the process belongs to, when pillion runs under `pillion pod`. */
  container?: string;
  command: string;
  state: string;
  /** Percent of one core over the sampling window. */
  cpuPercent: number;
  cpuSeconds: number;
  rssBytes: number;
  threads: number;
  fds: number | null;
  startTime: string;
}

export interface TopSnapshot {
  time: string;
  /** Seconds the CPU percentages are measured over. */
  windowSeconds: number;
  scope: Scope;
  host: {
    loadAverage: [number, number, number];
    cpuPercent: number;
    coresPercent: number[];
    memory: HostReading['memory'];
    swap: HostReading['swap'];
    uptimeSeconds: number;
    fileSystems: FileSystemReading[];
    network: HostReading['network'];
  };
  processes: ProcessRow[];
}

export interface TopOptions {
  sort?: 'cpu' | 'mem' | 'pid';
  limit?: number;
  scope?: Scope;
}

export interface SamplerDeps {
  clock: Clock;
  env: Readonly<Record<string, string | undefined>>;
  /** The pid whose tree `self` means (this process). */
  self?: number;
  proc?: string;
}

/** A container's processes: its main pid and every descendant. */
export interface ContainerPids {
  name: string;
  pid: number;
}

export class TopSampler {
  #deps: SamplerDeps;
  #lastCpu = new Map<number, { at: number; seconds: number; start: number }>();
  #lastHost: { at: number; cpu: CpuTimes; cores: CpuTimes[] } | undefined;

  constructor(deps: SamplerDeps) {
    this.#deps = deps;
  }

  /** The default scope: the pod under `pillion pod`, else this process and its children. */
  get defaultScope(): Scope {
    return this.#deps.env.PILLION_POD_DIR ? 'pod' : 'self';
  }

  snapshot(opts: TopOptions = {}): TopSnapshot {
    const now = this.#deps.clock.now();
    const proc = this.#deps.proc ?? '/proc';
    const host = readHost(proc);
    const scope = opts.scope ?? this.defaultScope;
    const readings = this.#select(scope, proc);
    const window = this.#lastHost ? (now - this.#lastHost.at) / 1000 : host.uptimeSeconds;
    const processes: ProcessRow[] = [];
    const seen = new Set<number>();
    for (const { reading: r, container } of readings) {
      seen.add(r.pid);
      const last = this.#lastCpu.get(r.pid);
      const started = host.bootTime + r.startedAfterBoot;
      let cpuPercent: number;
      if (last && last.start === r.startedAfterBoot && now > last.at)
        cpuPercent = ((r.cpuSeconds - last.seconds) / ((now - last.at) / 1000)) * 100;
      else cpuPercent = (r.cpuSeconds / Math.max(0.01, now / 1000 - started)) * 100;
      this.#lastCpu.set(r.pid, { at: now, seconds: r.cpuSeconds, start: r.startedAfterBoot });
      processes.push({
        pid: r.pid,
        ppid: r.ppid,
        ...(container !== undefined ? { container } : {}),
        command: r.command,
        state: r.state,
        cpuPercent: round(Math.max(0, cpuPercent)),
        cpuSeconds: r.cpuSeconds,
        rssBytes: r.rssBytes,
        threads: r.threads,
        fds: r.fds,
        startTime: new Date(started * 1000).toISOString(),
      });
    }
    for (const pid of this.#lastCpu.keys()) if (!seen.has(pid)) this.#lastCpu.delete(pid);
    const percent = (a: CpuTimes, b: CpuTimes | undefined) => {
      const total = a.total - (b?.total ?? 0);
      return total > 0 ? round(((a.busy - (b?.busy ?? 0)) / total) * 100) : 0;
    };
    const last = this.#lastHost;
    this.#lastHost = { at: now, cpu: host.cpu, cores: host.cores };
    const sort = opts.sort ?? 'cpu';
    processes.sort((a, b) =>
      sort === 'mem'
        ? b.rssBytes - a.rssBytes || a.pid - b.pid
        : sort === 'pid'
          ? a.pid - b.pid
          : b.cpuPercent - a.cpuPercent || b.rssBytes - a.rssBytes || a.pid - b.pid,
    );
    return {
      time: new Date(now).toISOString(),
      windowSeconds: round(window),
      scope,
      host: {
        loadAverage: host.loadAverage,
        cpuPercent: percent(host.cpu, last?.cpu),
        coresPercent: host.cores.map((c, i) => percent(c, last?.cores[i])),
        memory: host.memory,
        swap: host.swap,
        uptimeSeconds: host.uptimeSeconds,
        fileSystems: this.#fileSystems(),
        network: host.network,
      },
      processes: opts.limit !== undefined ? processes.slice(0, opts.limit) : processes,
    };
  }

  /** The readings of the scope's processes, each with its container when known. */
  #select(scope: Scope, proc: string): { reading: ProcessReading; container?: string }[] {
    if (scope === 'all')
      return listPids(proc)
        .flatMap((pid) => readProcess(pid, proc) ?? [])
        .map((reading) => ({ reading }));
    const roots: ContainerPids[] =
      scope === 'pod'
        ? podContainers(this.#deps.env.PILLION_POD_DIR)
        : [{ name: '', pid: this.#deps.self ?? process.pid }];
    return readTrees(roots, proc).map(({ reading, container }) =>
      container === '' ? { reading } : { reading, container },
    );
  }

  #fileSystems(): FileSystemReading[] {
    const paths = ['/'];
    const podDir = this.#deps.env.PILLION_POD_DIR;
    if (podDir) {
      const volumes = join(podDir, 'volumes');
      for (const v of readdirOrEmpty(volumes)) paths.push(join(volumes, v));
    }
    // Volumes that are directories of one file system show it once (under its first path).
    const devices = new Set<number>();
    return paths.flatMap((p) => {
      const dev = deviceOf(p);
      if (dev === undefined || devices.has(dev)) return [];
      devices.add(dev);
      return readFileSystem(p) ?? [];
    });
  }
}

/**
 * The processes under each root pid (the root included), each read in full and tagged with its
 * root's name. Every other process of the host has its stat line read, for its parent, and no
 * more: /top and the process metrics read a few processes, not the host's every one.
 */
export function readTrees(
  roots: readonly ContainerPids[],
  proc = '/proc',
): { reading: ProcessReading; container: string }[] {
  const parents = listPids(proc).flatMap((pid) => readParent(pid, proc) ?? []);
  return treesOf(parents, roots).flatMap(({ reading: { pid, stat }, container }) => {
    const reading = readProcess(pid, proc, stat);
    return reading ? [{ reading, container }] : [];
  });
}

/** The processes under each root pid (the root included), each tagged with its root's name. */
export function treesOf<P extends { pid: number; ppid: number }>(
  all: readonly P[],
  roots: readonly ContainerPids[],
): { reading: P; container: string }[] {
  const children = new Map<number, P[]>();
  const byPid = new Map<number, P>();
  for (const r of all) {
    byPid.set(r.pid, r);
    let list = children.get(r.ppid);
    if (!list) children.set(r.ppid, (list = []));
    list.push(r);
  }
  const out: { reading: P; container: string }[] = [];
  const seen = new Set<number>();
  for (const root of roots) {
    const first = byPid.get(root.pid);
    if (!first) continue;
    const stack = [first];
    while (stack.length > 0) {
      const r = stack.pop()!;
      if (seen.has(r.pid)) continue;
      seen.add(r.pid);
      out.push({ reading: r, container: root.name });
      for (const c of children.get(r.pid) ?? []) stack.push(c);
    }
  }
  return out;
}

/** The running containers of the pod whose run directory this is (its status.json). */
export function podContainers(podDir: string | undefined): ContainerPids[] {
  if (!podDir) return [];
  try {
    const status = JSON.parse(readFileSync(join(podDir, 'status.json'), 'utf8')) as {
      containers: { name: string; state: string; pid?: number }[];
    };
    return status.containers.flatMap((c) =>
      c.state === 'running' && c.pid !== undefined ? [{ name: c.name, pid: c.pid }] : [],
    );
  } catch {
    return [];
  }
}

function deviceOf(path: string): number | undefined {
  try {
    return statSync(path).dev;
  } catch {
    return undefined;
  }
}

function readdirOrEmpty(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}
