// How a pod and its containers read to a person, as kubectl words it: READY, STATUS and RESTARTS
// derived the way kubectl's printPod does (pkg/printers/internalversion/printers.go), ages the
// way its HumanDuration writes them, and a container's state as `kubectl describe` names it.
// The CLI lays these out; what they say is decided here.

import type { ContainerStatus, PodRecord, PodStatus } from './state.js';

export interface PodSummary {
  /** Ready containers (main containers and sidecars) of all of them: "1/2". */
  ready: string;
  /** kubectl's STATUS column: Running, Completed, CrashLoopBackOff, Init:1/3, Init:Error, OOMKilled, ... */
  status: string;
  /** Restarts, with how long ago the last one was: "3 (12s ago)". */
  restarts: string;
  age: string;
}

export function podSummary(p: PodRecord, now: number): PodSummary {
  const s = p.status;
  const inits = s.containers.filter((c) => c.type !== 'main');
  const mains = s.containers.filter((c) => c.type === 'main');
  const total = mains.length + inits.filter((c) => c.type === 'sidecar').length;
  let ready = 0;
  let reason: string = s.phase;
  let restarts = 0;
  let sidecarRestarts = 0;
  let lastRestart = 0;
  let lastSidecarRestart = 0;

  let initializing = false;
  for (const [i, c] of inits.entries()) {
    restarts += c.restartCount;
    const finished = time(c.lastState?.finishedAt);
    lastRestart = Math.max(lastRestart, finished);
    if (c.type === 'sidecar') {
      sidecarRestarts += c.restartCount;
      lastSidecarRestart = Math.max(lastSidecarRestart, finished);
    }
    if (c.state === 'terminated' && c.terminated?.exitCode === 0) continue;
    if (c.type === 'sidecar' && c.started) {
      if (c.ready) ready++;
      continue;
    }
    if (c.state === 'terminated')
      reason = `Init:${c.terminated?.reason || `ExitCode:${c.terminated?.exitCode}`}`;
    else if (c.state === 'waiting' && c.reason && c.reason !== 'PodInitializing') reason = `Init:${c.reason}`;
    else reason = `Init:${i}/${inits.length}`;
    initializing = true;
    break;
  }

  if (!initializing || s.conditions.initialized) {
    restarts = sidecarRestarts;
    lastRestart = lastSidecarRestart;
    let hasRunning = false;
    let errorReason = '';
    for (const c of [...mains].reverse()) {
      restarts += c.restartCount;
      lastRestart = Math.max(lastRestart, time(c.lastState?.finishedAt));
      if (c.state === 'waiting' && c.reason) reason = c.reason;
      else if (c.state === 'terminated' && c.terminated) {
        reason = c.terminated.reason || `ExitCode:${c.terminated.exitCode}`;
        if (c.terminated.exitCode !== 0) errorReason = reason;
      } else if (c.ready && c.state === 'running') {
        hasRunning = true;
        ready++;
      }
    }
    // kubectl says Running again while a container still runs, though another has completed.
    if (reason === 'Completed') {
      if (hasRunning && s.conditions.ready) reason = 'Running';
      else if (errorReason) reason = errorReason;
      else if (hasRunning) reason = 'NotReady';
    }
  }

  const terminal = s.phase === 'Succeeded' || s.phase === 'Failed';
  // No runner, no kubelet: kubectl shows Unknown for a pod whose node stopped reporting.
  if (!p.alive && !terminal) reason = 'Unknown';
  else if (s.terminating && !terminal) reason = 'Terminating';

  return {
    ready: `${ready}/${total}`,
    status: reason,
    restarts: restartsText(restarts, lastRestart, now),
    age: humanDuration(now - time(s.startTime)),
  };
}

/** A container's restart count, as kubectl prints a pod's: "2 (40s ago)". */
export function containerRestarts(c: ContainerStatus, now: number): string {
  return restartsText(c.restartCount, time(c.lastState?.finishedAt), now);
}

/** How `kubectl describe` names a container's state: Running, Waiting (CrashLoopBackOff), Terminated (Completed). */
export function containerStateText(c: ContainerStatus): string {
  if (c.state === 'running') return 'Running';
  if (c.state === 'terminated') return `Terminated (${c.terminated?.reason ?? ''})`;
  return c.reason ? `Waiting (${c.reason})` : 'Waiting';
}

/**
 * Why the containers of a pod are unhappy, one line each: a container waiting for a reason (a
 * back-off, a container that could not be created), and the probes that fail, with why.
 */
export function podProblems(s: PodStatus, now: number): string[] {
  const out: string[] = [];
  for (const c of s.containers) {
    if (c.state === 'waiting' && c.message) out.push(`${c.name}: ${c.reason}: ${c.message}`);
  }
  for (const c of s.containers) {
    if (c.state !== 'running') continue;
    for (const [, p] of Object.entries(c.probes ?? {})) {
      if (p.ok !== false || !p.lastFailure) continue;
      const times = p.consecutiveFailures > 1 ? `, ${p.consecutiveFailures} in a row` : '';
      out.push(
        `${c.name}: ${p.lastFailure.message} (${humanDuration(now - time(p.lastFailure.at))} ago${times})`,
      );
    }
  }
  return out;
}

function restartsText(n: number, last: number, now: number): string {
  return n !== 0 && last > 0 ? `${n} (${humanDuration(now - last)} ago)` : String(n);
}

function time(iso: string | undefined): number {
  return iso ? Date.parse(iso) : 0;
}

/** kubectl's HumanDuration (apimachinery/pkg/util/duration): 45s, 3m20s, 15m, 5h30m, 2d3h, 400d, 3y20d. */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 10) return seconds % 60 === 0 ? `${minutes}m` : `${minutes}m${seconds % 60}s`;
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 8) return minutes % 60 === 0 ? `${hours}h` : `${hours}h${minutes % 60}m`;
  if (hours < 48) return `${hours}h`;
  if (hours < 24 * 8) return hours % 24 === 0 ? `${hours / 24}d` : `${Math.floor(hours / 24)}d${hours % 24}h`;
  const days = Math.floor(hours / 24);
  if (hours < 24 * 365 * 2) return `${days}d`;
  if (hours < 24 * 365 * 8)
    return days % 365 === 0 ? `${days / 365}y` : `${Math.floor(days / 365)}y${days % 365}d`;
  return `${Math.floor(days / 365)}y`;
}
