// /top's numbers as Prometheus families, from the same readings, so /top and /metrics never
// disagree: CPU seconds and resident memory of each process in scope, summed per container under
// `pillion pod`, and the host's memory and load. The pid label is bounded by the scope (the app
// and its sidecars), not the whole machine.

import type { MetricSnapshot, Sample } from '../metrics/index.js';
import type { TopSnapshot } from './sampler.js';

export function topFamilies(s: TopSnapshot): MetricSnapshot[] {
  const cpu: Sample[] = [];
  const rss: Sample[] = [];
  const containers = new Map<string, { cpu: number; rss: number }>();
  for (const p of s.processes) {
    const labels: Record<string, string> = {
      pid: String(p.pid),
      command: (p.command.split(' ', 1)[0] ?? '').split('/').at(-1)!.slice(0, 64),
    };
    if (p.container !== undefined) {
      labels.container = p.container;
      const c = containers.get(p.container) ?? { cpu: 0, rss: 0 };
      c.cpu += p.cpuSeconds;
      c.rss += p.rssBytes;
      containers.set(p.container, c);
    }
    cpu.push({ labels, value: p.cpuSeconds });
    rss.push({ labels, value: p.rssBytes });
  }
  const out: MetricSnapshot[] = [
    {
      name: 'pillion_top_process_cpu_seconds_total',
      help: 'CPU time (user and system) of each process of the app and its sidecars, as /top reads it.',
      type: 'counter',
      values: cpu,
    },
    {
      name: 'pillion_top_process_resident_memory_bytes',
      help: 'Resident memory of each process of the app and its sidecars, as /top reads it.',
      type: 'gauge',
      values: rss,
    },
  ];
  if (containers.size > 0)
    out.push(
      {
        name: 'pillion_top_container_cpu_seconds_total',
        help: "CPU time of each container's processes (pillion pod), as pillion pod top reads it.",
        type: 'counter',
        values: [...containers].map(([container, c]) => ({ labels: { container }, value: c.cpu })),
      },
      {
        name: 'pillion_top_container_resident_memory_bytes',
        help: "Resident memory of each container's processes (pillion pod), as pillion pod top reads it.",
        type: 'gauge',
        values: [...containers].map(([container, c]) => ({ labels: { container }, value: c.rss })),
      },
    );
  out.push(
    {
      name: 'pillion_top_host_memory_used_bytes',
      help: "The host's memory in use (total less available), as /top reads it.",
      type: 'gauge',
      values: [{ labels: {}, value: s.host.memory.usedBytes }],
    },
    {
      name: 'pillion_top_host_load1',
      help: "The host's 1-minute load average.",
      type: 'gauge',
      values: [{ labels: {}, value: s.host.loadAverage[0] }],
    },
  );
  return out;
}
