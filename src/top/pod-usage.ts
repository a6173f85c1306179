// Per-container CPU and memory of a local pod, as `kubectl top pod --containers` shows them: CPU
// in cores over a window between two readings of each container's process tree, memory from the
// container's own cgroup when the pod runner made one (a container with limits), else the sum of
// its processes' resident memory from /proc.

import { setTimeout as sleep } from 'node:timers/promises';
import { ownCgroupMemory } from './proc.js';
import { type ContainerPids, readTrees } from './sampler.js';

export interface ContainerUsage {
  name: string;
  /** CPU in cores (0.25 is 250m) over the window. */
  cpuCores: number;
  memoryBytes: number;
  /** Where the memory figure comes from. */
  memorySource: 'cgroup' | 'proc';
  processes: number;
}

function cpuByContainer(roots: readonly ContainerPids[]) {
  const out = new Map<string, { cpu: number; rss: number; pids: number }>();
  for (const { reading, container } of readTrees(roots)) {
    const c = out.get(container) ?? { cpu: 0, rss: 0, pids: 0 };
    c.cpu += reading.cpuSeconds;
    c.rss += reading.rssBytes;
    c.pids++;
    out.set(container, c);
  }
  return out;
}

/** Reads the containers' trees twice, windowMs apart. */
export async function podUsage(
  containers: readonly ContainerPids[],
  runnerPid: number,
  windowMs = 1000,
): Promise<ContainerUsage[]> {
  const first = cpuByContainer(containers);
  const t0 = process.hrtime.bigint();
  await sleep(windowMs);
  const second = cpuByContainer(containers);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return containers.map((c) => {
    const a = first.get(c.name);
    const b = second.get(c.name);
    const cgroup = ownCgroupMemory(c.pid, runnerPid);
    return {
      name: c.name,
      cpuCores: a && b ? Math.max(0, (b.cpu - a.cpu) / seconds) : 0,
      memoryBytes: cgroup ?? b?.rss ?? 0,
      memorySource: cgroup !== undefined ? 'cgroup' : 'proc',
      processes: b?.pids ?? 0,
    };
  });
}
