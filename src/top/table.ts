// The text form of /top (Accept: text/plain) and of `pillion top`: a summary of the host, then
// one aligned row per process, as top prints them.

import type { TopSnapshot } from './sampler.js';

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v}B` : `${v.toFixed(1)}${units[i]}`;
}

function duration(seconds: number): string {
  const d = Math.floor(seconds / 86400);
  const h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  return d > 0 ? `${d}d ${h}h` : h > 0 ? `${h}h ${m}m` : `${m}m ${Math.floor(seconds % 60)}s`;
}

/** Columns padded to their widest cell; the last column is not padded. */
export function alignRows(
  rows: readonly (readonly string[])[],
  right: ReadonlySet<number> = new Set(),
): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows
    .map((r) =>
      r
        .map((c, i) =>
          i === r.length - 1 ? c : right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!),
        )
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export function renderTopTable(s: TopSnapshot, width = 200): string {
  const h = s.host;
  const lines = [
    `up ${duration(h.uptimeSeconds)}, load average: ${h.loadAverage.map((l) => l.toFixed(2)).join(', ')}`,
    `cpu ${h.cpuPercent.toFixed(1)}% (${h.coresPercent.map((c, i) => `cpu${i} ${c.toFixed(1)}%`).join(', ')}) over ${s.windowSeconds}s`,
    `mem ${formatBytes(h.memory.usedBytes)} used of ${formatBytes(h.memory.totalBytes)}, ${formatBytes(h.memory.availableBytes)} available; swap ${formatBytes(h.swap.usedBytes)} of ${formatBytes(h.swap.totalBytes)}`,
    ...h.fileSystems.map(
      (f) =>
        `fs ${f.path}: ${formatBytes(f.usedBytes)} used of ${formatBytes(f.totalBytes)}, ${formatBytes(f.availableBytes)} free`,
    ),
    '',
  ];
  const pod = s.processes.some((p) => p.container !== undefined);
  const header = [
    'PID',
    'PPID',
    ...(pod ? ['CONTAINER'] : []),
    'S',
    '%CPU',
    'RSS',
    'THR',
    'FDS',
    'STARTED',
    'COMMAND',
  ];
  const rows = s.processes.map((p) => [
    String(p.pid),
    String(p.ppid),
    ...(pod ? [p.container ?? ''] : []),
    p.state,
    p.cpuPercent.toFixed(1),
    formatBytes(p.rssBytes),
    String(p.threads),
    p.fds === null ? '-' : String(p.fds),
    p.startTime.slice(11, 19),
    p.command,
  ]);
  const right = new Set([0, 1, ...(pod ? [4, 5, 6, 7] : [3, 4, 5, 6])]);
  const table = alignRows([header, ...rows], right)
    .split('\n')
    .map((l) => (l.length > width ? `${l.slice(0, width - 1)}…` : l));
  return `${lines.join('\n')}\n${table.join('\n')}\n`;
}
