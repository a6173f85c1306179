// /top against processes the test starts with known CPU and memory use (a busy loop, a holder of
// 160 MiB, an idle sleeper): their CPU share and resident memory, sorting and limits, the text
// table, the admin endpoint, `pillion top --once`, and the same numbers as metrics. Then
// `pillion pod top` on a detached pod with a busy container and an idle one.

import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { systemClock } from '../lib/clock.js';
import { waitFor } from '../lib/wait-for.js';
import { findPods } from '../pod/index.js';
import type { Runtime } from '../runtime/index.js';
import { startRuntimeOn } from '../runtime/test-support.js';
import { cli, podCli } from '../cli/pod-cli-harness.js';
import { renderTopTable, TopSampler, type TopSnapshot, topFamilies } from './index.js';
import { readParent } from './proc.js';
import { readTrees } from './sampler.js';

const HOLD = 160 * 1024 * 1024;
let busy: ChildProcess;
let holder: ChildProcess;
let sleeper: ChildProcess;
let runtime: Runtime;
const dir = mkdtempSync(join(tmpdir(), 'pillion-top-'));

before(async () => {
  busy = spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' });
  holder = spawn(
    process.execPath,
    [
      '-e',
      `const b = Buffer.alloc(${HOLD}, 1); process.stdout.write('held\\n'); setInterval(() => b[0]++, 1000);`,
    ],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  );
  sleeper = spawn('sleep', ['600'], { stdio: 'ignore' });
  await new Promise((resolve) => holder.stdout!.once('data', resolve));
  writeFileSync(join(dir, 'pillion.yaml'), 'admin: { listen: 127.0.0.1:0 }\n');
  runtime = await startRuntimeOn(join(dir, 'pillion.yaml'));
});

after(async () => {
  for (const c of [busy, holder, sleeper]) c.kill('SIGKILL');
  await runtime.shutdown('test over');
  rmSync(dir, { recursive: true, force: true });
});

/** Runs the CLI without blocking this process, whose admin server it talks to. */
function pillion(...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

const row = (s: TopSnapshot, pid: number) => s.processes.find((p) => p.pid === pid);

test("the sampler reads the test's processes: a busy loop's CPU share, a holder's memory, an idle sleeper", async () => {
  const sampler = new TopSampler({ clock: systemClock, env: {} });
  sampler.snapshot();
  // Over a window between two snapshots, the busy loop has most of a core, the sleeper none.
  const s = await waitFor(
    () => {
      const snap = sampler.snapshot();
      const b = row(snap, busy.pid!);
      return b && snap.windowSeconds >= 0.5 && b.cpuPercent >= 10 ? snap : undefined;
    },
    {
      what: 'the busy loop at 10% of a core or more (a loaded machine shares it)',
      timeoutMs: 30_000,
      intervalMs: 600,
    },
  );
  const b = row(s, busy.pid!)!;
  const h = row(s, holder.pid!)!;
  const z = row(s, sleeper.pid!)!;
  assert.equal(b.ppid, process.pid);
  assert.equal(b.state, 'R');
  assert.match(b.command, /for \(;;\) \{\}/);
  assert.ok(h.rssBytes >= HOLD, `the holder's RSS ${h.rssBytes} is below ${HOLD}`);
  assert.ok(z.cpuPercent < 5, `the sleeper uses ${z.cpuPercent}%`);
  assert.equal(z.state, 'S');
  assert.equal(z.command, 'sleep 600');
  assert.ok(z.threads === 1 && (z.fds ?? 0) >= 1);
  assert.ok(Date.parse(z.startTime) <= Date.now());
  // The host.
  assert.ok(s.host.memory.totalBytes > s.host.memory.usedBytes && s.host.memory.usedBytes > 0);
  assert.ok(s.host.coresPercent.length >= 1 && s.host.cpuPercent > 0);
  assert.equal(s.host.loadAverage.length, 3);
  assert.ok(s.host.fileSystems.some((f) => f.path === '/' && f.totalBytes > 0));
  assert.ok(s.host.network.some((n) => n.interface === 'lo'));
  // Sorted by memory with a limit: the holder comes first.
  const mem = sampler.snapshot({ sort: 'mem', limit: 2 });
  assert.equal(mem.processes.length, 2);
  assert.equal(mem.processes[0]!.pid, holder.pid);
  assert.ok(mem.processes[0]!.rssBytes >= mem.processes[1]!.rssBytes);
  // The text table: one aligned row per process.
  const table = renderTopTable(s);
  assert.match(table, /^up .*load average: [\d.]+, [\d.]+, [\d.]+\ncpu [\d.]+% \(cpu0 /);
  assert.match(table, /\n\s*PID\s+PPID\s+S\s+%CPU\s+RSS\s+THR\s+FDS\s+STARTED\s+COMMAND\n/);
  assert.match(
    table,
    new RegExp(
      `\\n\\s*${sleeper.pid}\\s+${process.pid}\\s+S\\s+0\\.0\\s+[\\d.]+[KM]iB\\s+1\\s+\\d+\\s+\\S+\\s+sleep 600\\n`,
    ),
  );
  // The same numbers as metrics.
  const families = topFamilies(s);
  const cpu = families.find((f) => f.name === 'pillion_top_process_cpu_seconds_total')!;
  assert.equal(cpu.values.find((v) => v.labels.pid === String(busy.pid))!.value, b.cpuSeconds);
  const rss = families.find((f) => f.name === 'pillion_top_process_resident_memory_bytes')!;
  assert.equal(rss.values.find((v) => v.labels.pid === String(holder.pid))!.value, h.rssBytes);
});

test('GET /top on the admin API: JSON by default, the text table for Accept: text/plain, bad queries refused', async () => {
  const admin = `http://127.0.0.1:${runtime.adminAddress!.port}`;
  // scope=all: the runtime runs in this process, so self is this process's tree too.
  const json = (await (await fetch(`${admin}/top?sort=mem&limit=3&scope=all`)).json()) as TopSnapshot;
  assert.equal(json.processes.length, 3);
  assert.ok(json.processes[0]!.rssBytes >= json.processes[1]!.rssBytes);
  assert.ok(json.processes.some((p) => p.pid === holder.pid));
  const self = (await (await fetch(`${admin}/top`)).json()) as TopSnapshot;
  assert.equal(self.scope, 'self');
  assert.ok(row(self, process.pid) && row(self, sleeper.pid!), 'this process and its children');
  const text = await fetch(`${admin}/top?sort=pid`, { headers: { accept: 'text/plain' } });
  assert.match(text.headers.get('content-type')!, /^text\/plain/);
  assert.match(await text.text(), /\n\s*PID\s+PPID\s+S\s+%CPU/);
  for (const q of ['sort=name', 'limit=0', 'scope=world']) {
    const r = await fetch(`${admin}/top?${q}`);
    assert.equal(r.status, 400);
    assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'PILLION_ERR_ADMIN_BAD_QUERY');
  }
  // `pillion top --once` prints the same table.
  const out = await pillion(
    'top',
    '--once',
    '--admin',
    `127.0.0.1:${runtime.adminAddress!.port}`,
    '--sort',
    'mem',
    '--limit',
    '5',
  );
  assert.equal(out.status, 0, out.stderr);
  assert.match(out.stdout, /^up .*\ncpu .*\nmem .* used of /);
  assert.match(out.stdout, /\n\s*PID\s+PPID\s+S\s+%CPU\s+RSS/);
  assert.equal(
    out.stdout
      .trimEnd()
      .split('\n')
      .filter((l) => /^\s*\d+\s+\d+\s/.test(l)).length <= 5,
    true,
  );
  const unreachable = await pillion('top', '--once', '--admin', '127.0.0.1:1');
  assert.equal(unreachable.status, 1);
  assert.match(unreachable.stderr, /cannot reach the admin API at 127\.0\.0\.1:1/);
});

test('pillion pod top: per-container CPU and memory of a running pod, as kubectl top pod --containers', async () => {
  const pod = podCli();
  try {
    const file = pod.manifest(
      'busy',
      `apiVersion: v1
kind: Pod
metadata: { name: busy }
spec:
  terminationGracePeriodSeconds: 2
  containers:
    - name: spin
      command: [${JSON.stringify(process.execPath)}, -e, "for (;;) {}"]
    - name: idle
      command: [sleep, "600"]
`,
    );
    const up = pod.pillion('pod', 'up', file, '--detach');
    assert.equal(up.status, 0, up.stderr);
    await waitFor(
      () => {
        const [p] = findPods(pod.state, 'busy');
        return p?.status.phase === 'Running' && p.status.containers.every((c) => c.state === 'running');
      },
      { what: 'the pod running', timeoutMs: 30_000 },
    );
    const top = pod.pillion('pod', 'top', 'busy', '--window', '1s');
    assert.equal(top.status, 0, top.stderr);
    const lines = top.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^POD\s+NAME\s+CPU\(cores\)\s+MEMORY\(bytes\)$/);
    const spin = /^busy\s+spin\s+(\d+)m\s+(\d+)Mi$/.exec(lines.find((l) => /\sspin\s/.test(l)) ?? '');
    const idle = /^busy\s+idle\s+(\d+)m\s+(\d+)Mi$/.exec(lines.find((l) => /\sidle\s/.test(l)) ?? '');
    assert.ok(spin && idle, top.stdout);
    assert.ok(Number(spin[1]) >= 100, `spin uses ${spin[1]}m`);
    assert.ok(Number(idle[1]) <= 50, `idle uses ${idle[1]}m`);
    assert.ok(Number(spin[2]) > Number(idle[2]), 'node holds more memory than sleep');
    const json = JSON.parse(pod.pillion('pod', 'top', 'busy', '-o', 'json').stdout) as {
      containers: { name: string; memorySource: string; processes: number }[];
    }[];
    assert.deepEqual(
      json[0]!.containers.map((c) => [c.name, c.memorySource, c.processes > 0]),
      [
        ['spin', 'proc', true],
        ['idle', 'proc', true],
      ],
    );
    assert.match(pod.pillion('pod', 'top', 'nope').stderr, /PILLION_ERR_POD_NOT_FOUND/);
  } finally {
    spawnSync(process.execPath, [cli, 'pod', 'down', 'busy', '--state-dir', pod.state]);
    pod.remove();
  }
});

test('the scope’s processes are found from the stat lines alone; only they are read in full', () => {
  const proc = mkdtempSync(join(tmpdir(), 'pillion-fake-proc-'));
  try {
    const write = (pid: number, ppid: number, comm: string, full: boolean) => {
      mkdirSync(join(proc, String(pid), 'fd'), { recursive: true });
      const rest = `S ${ppid} 1 1 0 -1 4194560 10 0 0 0 150 50 0 0 20 0 3 0 500 1000 256`;
      writeFileSync(join(proc, String(pid), 'stat'), `${pid} (${comm}) ${rest}\n`);
      // A process of another tree has no status file here: reading it in full would leave it out.
      if (full) writeFileSync(join(proc, String(pid), 'status'), 'Name:\tx\nVmRSS:\t  2048 kB\n');
      writeFileSync(join(proc, String(pid), 'cmdline'), `${comm}\0--flag\0`);
    };
    write(10, 1, 'pillion', true);
    write(11, 10, 'a (tricky) name', true);
    write(12, 11, 'grandchild', true);
    write(20, 1, 'other', false);
    const parent = readParent(11, proc);
    assert.deepEqual([parent?.pid, parent?.ppid], [11, 10]);
    const rows = readTrees([{ name: 'app', pid: 10 }], proc);
    assert.deepEqual(
      rows.map((r) => [r.reading.pid, r.reading.ppid, r.reading.command, r.reading.rssBytes, r.container]),
      [
        [10, 1, 'pillion --flag', 2097152, 'app'],
        [11, 10, 'a (tricky) name --flag', 2097152, 'app'],
        [12, 11, 'grandchild --flag', 2097152, 'app'],
      ],
    );
    assert.equal(rows[0]!.reading.cpuSeconds, 2);
  } finally {
    rmSync(proc, { recursive: true, force: true });
  }
});
