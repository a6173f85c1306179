// Runs real pods of small shell containers for the pod runner's tests. Containers append what they
// do to an events file ($EV) so order can be asserted; $DIR is the test's own directory and $MNT an
// absolute directory of its own for mountPaths, so concurrent test runs never share a mount point.
// With a FakeClock, time moves only when a test advances it: the runner's log records carry the
// fake time they were written at, so a test can assert when a signal was sent without a stopwatch.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import type { Clock } from '../lib/clock.js';
import { parseManifest } from './manifest.js';
import { PodDirs, type PodStatus } from './state.js';
import { type PodOutcome, Supervisor } from './supervisor.js';

/** One line of the runner's own log, with the clock's time when it was written. */
export interface LogRecord {
  at: number;
  level: number;
  msg: string;
  container?: string;
  signal?: string;
  [key: string]: unknown;
}

export interface PodHarness {
  sup: Supervisor;
  run: Promise<PodOutcome>;
  dir: string;
  /** The clock's time when the pod was started. */
  t0: number;
  events(): string[];
  status(): PodStatus;
  /** Container output, as `name: line`. */
  lines: string[];
  logs: LogRecord[];
  /** Clock times at which `signal` was sent to `container`, relative to t0. */
  signals(container: string, signal: string): number[];
}

export interface StartOptions {
  /** Milliseconds in a Kubernetes second (default 20 on real time; use 1000 with a FakeClock). */
  second?: number;
  backoff?: { baseMs: number; capMs: number; resetAfterMs: number };
  extraDocs?: string;
  clock?: Clock;
}

// A container that idles until SIGTERM, then exits 0.
export const IDLE = `[sh, -c, "trap 'exit 0' TERM; while :; do sleep 0.01; done"]`;

/** A container that records "NAME up" and, on SIGTERM, "NAME term" (then runs `extra` and exits 0). */
export const trapTerm = (name: string, extra = '') =>
  `[sh, -c, "trap 'echo ${name} term >> $EV; ${extra} exit 0' TERM; echo ${name} up >> $EV; while :; do sleep 0.01; done"]`;

export const containerOf = (s: PodStatus, name: string) => s.containers.find((c) => c.name === name)!;

const roots: string[] = [];
const supervisors: Supervisor[] = [];

/**
 * Kills whatever a pod of this file still runs (a test that failed half-way never terminated its
 * pod, and its containers would outlive the test run), then removes every test directory made so
 * far. Call from `after`.
 */
export function removeTestDirs(): void {
  for (const sup of supervisors.splice(0)) sup.killAllNow();
  for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true });
}

/** A fresh directory that removeTestDirs() will remove. */
export function testDir(prefix = 'pillion-pod-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  roots.push(dir);
  return dir;
}

export function startPod(spec: string, opts: StartOptions = {}): PodHarness {
  const dir = testDir();
  const ev = join(dir, 'events');
  writeFileSync(ev, '');
  const text = `${opts.extraDocs ?? ''}apiVersion: v1
kind: Pod
metadata:
  name: t
  labels: { app: t }
spec:
${spec.replaceAll('$EV', ev).replaceAll('$DIR', dir).replaceAll('$MNT', join(dir, 'mnt'))}`;
  writeFileSync(join(dir, 'pod.yaml'), text);
  const r = parseManifest(text, join(dir, 'pod.yaml'));
  assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.errors, null, 1));
  const dirs = new PodDirs(join(dir, 'state'), r.manifest);
  const clock = opts.clock;
  const now = () => (clock ? clock.now() : Date.now());
  const t0 = now();
  const logs: LogRecord[] = [];
  const logger = pino(
    { level: 'info', base: undefined, timestamp: false },
    { write: (s: string) => logs.push({ ...(JSON.parse(s) as LogRecord), at: now() }) },
  );
  const lines: string[] = [];
  const sup = new Supervisor({
    manifest: r.manifest,
    dirs,
    hostEnv: {}, // baseEnv supplies a PATH; nothing of the test runner's environment leaks in
    logger,
    clock,
    secondMs: opts.second ?? 20,
    backoff: opts.backoff ?? { baseMs: 50, capMs: 200, resetAfterMs: 60_000 },
    onLine: (c, _s, l) => lines.push(`${c}: ${l}`),
  });
  supervisors.push(sup);
  return {
    sup,
    run: sup.run(),
    dir,
    t0,
    lines,
    logs,
    events: () => readFileSync(ev, 'utf8').split('\n').filter(Boolean),
    status: () => JSON.parse(readFileSync(dirs.statusFile, 'utf8')) as PodStatus,
    signals: (container, signal) =>
      logs.filter((l) => l.container === container && l.signal === signal).map((l) => l.at - t0),
  };
}
