// The process's own metrics, under the names and labels Prometheus's Node.js client (prom-client)
// gives them, so dashboards built for any Node service read pillion too: CPU, memory (from
// /proc/self/status), file descriptors, event loop delay, active handles and resources, heap
// spaces, the Node version and GC pauses. Values are read when /metrics is scraped; the event loop
// delay and GC pauses are sampled by Node itself (monitorEventLoopDelay, a 'gc' observer).

import { readdirSync, readFileSync } from 'node:fs';
import { constants as perf, monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { getHeapSpaceStatistics } from 'node:v8';
import { Gauge, Histogram, type Registry } from './registry.js';

const GC_KINDS: Record<number, string> = {
  [perf.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [perf.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [perf.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [perf.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
};

export function processMetrics(registry: Registry): void {
  const add = <M extends Gauge | Histogram>(m: M): M => {
    registry.registerMetric(m);
    return m;
  };
  const gauge = (name: string, help: string, collect?: (g: Gauge) => void, labelNames: string[] = []) => {
    const g: Gauge = add(
      new Gauge({ name, help, labelNames, ...(collect ? { collect: () => collect(g) } : {}) }),
    );
    return g;
  };

  // CPU: counters in prom-client, set from process.cpuUsage() at each scrape.
  const startUsage = process.cpuUsage();
  const cpu = (name: string, help: string, pick: (u: NodeJS.CpuUsage) => number) => {
    const m = new CpuCounter(name, help, () => pick(process.cpuUsage(startUsage)) / 1e6);
    registry.registerMetric(m);
  };
  cpu('process_cpu_user_seconds_total', 'Total user CPU time spent in seconds.', (u) => u.user);
  cpu('process_cpu_system_seconds_total', 'Total system CPU time spent in seconds.', (u) => u.system);
  cpu(
    'process_cpu_seconds_total',
    'Total user and system CPU time spent in seconds.',
    (u) => u.user + u.system,
  );

  const started = Math.round(Date.now() / 1000 - process.uptime());
  gauge('process_start_time_seconds', 'Start time of the process since unix epoch in seconds.').set(started);

  const status: Record<string, number> = {};
  gauge('process_resident_memory_bytes', 'Resident memory size in bytes.', (g) => {
    readStatus(status);
    if (status.VmRSS !== undefined) g.set(status.VmRSS);
  });
  gauge('process_virtual_memory_bytes', 'Virtual memory size in bytes.', (g) => {
    if (status.VmSize !== undefined) g.set(status.VmSize);
  });
  gauge('process_heap_bytes', 'Process heap size in bytes.', (g) => {
    if (status.VmData !== undefined) g.set(status.VmData);
  });
  gauge('process_open_fds', 'Number of open file descriptors.', (g) => {
    try {
      g.set(readdirSync('/proc/self/fd').length - 1); // less the one the listing opened
    } catch {
      // not Linux
    }
  });
  gauge('process_max_fds', 'Maximum number of open file descriptors.', (g) => {
    try {
      const line = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
      if (line) g.set(Number(line[1]));
    } catch {
      // not Linux
    }
  });

  // Event loop delay: Node samples it in the background; each scrape reads and resets the window.
  const delay = monitorEventLoopDelay();
  delay.enable();
  gauge('nodejs_eventloop_lag_seconds', 'Lag of event loop in seconds.', (g) => {
    const start = process.hrtime.bigint();
    setImmediate(() => g.set(Number(process.hrtime.bigint() - start) / 1e9));
    min.set(delay.min / 1e9);
    max.set(delay.max / 1e9);
    mean.set(delay.mean / 1e9);
    stddev.set(delay.stddev / 1e9);
    p50.set(delay.percentile(50) / 1e9);
    p90.set(delay.percentile(90) / 1e9);
    p99.set(delay.percentile(99) / 1e9);
    delay.reset();
  });
  const min = gauge('nodejs_eventloop_lag_min_seconds', 'The minimum recorded event loop delay.');
  const max = gauge('nodejs_eventloop_lag_max_seconds', 'The maximum recorded event loop delay.');
  const mean = gauge('nodejs_eventloop_lag_mean_seconds', 'The mean of the recorded event loop delays.');
  const stddev = gauge(
    'nodejs_eventloop_lag_stddev_seconds',
    'The standard deviation of the recorded event loop delays.',
  );
  const p50 = gauge(
    'nodejs_eventloop_lag_p50_seconds',
    'The 50th percentile of the recorded event loop delays.',
  );
  const p90 = gauge(
    'nodejs_eventloop_lag_p90_seconds',
    'The 90th percentile of the recorded event loop delays.',
  );
  const p99 = gauge(
    'nodejs_eventloop_lag_p99_seconds',
    'The 99th percentile of the recorded event loop delays.',
  );

  const byType = (g: Gauge, types: Iterable<string>) => {
    g.reset();
    for (const t of types) g.inc({ type: t });
  };
  gauge(
    'nodejs_active_resources',
    'Number of active resources that are currently keeping the event loop alive, grouped by async resource type.',
    (g) => byType(g, process.getActiveResourcesInfo()),
    ['type'],
  );
  gauge('nodejs_active_resources_total', 'Total number of active resources.', (g) =>
    g.set(process.getActiveResourcesInfo().length),
  );
  // process._getActiveHandles/_getActiveRequests: what prom-client reads, undocumented but stable.
  const internals = process as unknown as {
    _getActiveHandles?: () => object[];
    _getActiveRequests?: () => object[];
  };
  const names = (list: object[]) => list.flatMap((o) => (o?.constructor ? [o.constructor.name] : []));
  gauge(
    'nodejs_active_handles',
    'Number of active libuv handles grouped by handle type. Every handle type is C++ class name.',
    (g) => byType(g, names(internals._getActiveHandles?.() ?? [])),
    ['type'],
  );
  gauge('nodejs_active_handles_total', 'Total number of active handles.', (g) =>
    g.set(internals._getActiveHandles?.().length ?? 0),
  );
  gauge(
    'nodejs_active_requests',
    'Number of active libuv requests grouped by request type. Every request type is C++ class name.',
    (g) => byType(g, names(internals._getActiveRequests?.() ?? [])),
    ['type'],
  );
  gauge('nodejs_active_requests_total', 'Total number of active requests.', (g) =>
    g.set(internals._getActiveRequests?.().length ?? 0),
  );

  let usage: NodeJS.MemoryUsage | undefined;
  gauge('nodejs_heap_size_total_bytes', 'Process heap size from Node.js in bytes.', (g) => {
    usage = process.memoryUsage();
    g.set(usage.heapTotal);
  });
  gauge('nodejs_heap_size_used_bytes', 'Process heap size used from Node.js in bytes.', (g) =>
    g.set(usage?.heapUsed ?? 0),
  );
  gauge('nodejs_external_memory_bytes', 'Node.js external memory size in bytes.', (g) =>
    g.set(usage?.external ?? 0),
  );
  const spaces = (name: string, help: string, pick: (s: import('node:v8').HeapSpaceInfo) => number) =>
    gauge(
      name,
      help,
      (g) => {
        for (const s of getHeapSpaceStatistics())
          g.set({ space: s.space_name.replace(/_space$/, '') }, pick(s));
      },
      ['space'],
    );
  spaces(
    'nodejs_heap_space_size_total_bytes',
    'Process heap space size total from Node.js in bytes.',
    (s) => s.space_size,
  );
  spaces(
    'nodejs_heap_space_size_used_bytes',
    'Process heap space size used from Node.js in bytes.',
    (s) => s.space_used_size,
  );
  spaces(
    'nodejs_heap_space_size_available_bytes',
    'Process heap space size available from Node.js in bytes.',
    (s) => s.space_available_size,
  );

  const [major, minor, patch] = process.versions.node.split('.');
  add(
    new Gauge({
      name: 'nodejs_version_info',
      help: 'Node.js version info.',
      labelNames: ['version', 'major', 'minor', 'patch'],
    }),
  ).set({ version: process.version, major: major!, minor: minor!, patch: patch! }, 1);

  const gc = add(
    new Histogram({
      name: 'nodejs_gc_duration_seconds',
      help: 'Garbage collection duration by kind, one of major, minor, incremental or weakcb.',
      labelNames: ['kind'],
      buckets: [0.001, 0.01, 0.1, 1, 2, 5],
    }),
  );
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = GC_KINDS[(e as { detail?: { kind?: number } }).detail?.kind ?? -1];
      if (kind) gc.observe({ kind }, e.duration / 1000);
    }
  }).observe({ entryTypes: ['gc'] });
}

/** A counter whose value is read from elsewhere when scraped (the CPU time Node keeps). */
class CpuCounter {
  readonly type = 'counter';
  constructor(
    readonly name: string,
    readonly help: string,
    readonly read: () => number,
  ) {}
  get() {
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      values: [{ labels: {}, value: this.read() }],
    };
  }
}

/** VmRSS, VmSize and VmData of /proc/self/status, in bytes (a virtual file: reading never blocks). */
function readStatus(into: Record<string, number>): void {
  let text: string;
  try {
    text = readFileSync('/proc/self/status', 'utf8');
  } catch {
    return;
  }
  for (const key of ['VmRSS', 'VmSize', 'VmData']) {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text);
    if (m) into[key] = Number(m[1]) * 1024;
  }
}
