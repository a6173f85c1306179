// One container of a running pod: its spec, the status the runner reports for it, and its
// current run — one process and everything that hangs off it (hook and probe processes, the
// SIGKILL timer). A run ends when its process exits; whatever it still has running then is
// killed with it, so no hook outlives its container and nothing outlives the pod.

import type { ChildProcess } from 'node:child_process';
import type { Logger } from 'pino';
import { CrashLoopBackoff, type BackoffOptions } from '../lib/backoff.js';
import type { Clock, TimerHandle } from '../lib/clock.js';
import type { ContainerSpec, HandlerSpec, ProbeSpec } from './config.js';
import type { PodEvents } from './events.js';
import type { BindMount, CgroupHandle } from './isolation.js';
import { type ActionResult, killGroup, runAction } from './probes.js';
import type { ContainerStatus, ContainerType } from './state.js';

export interface Exit {
  code: number;
  signal?: string | undefined;
  reason: string;
  message?: string | undefined;
}

export class Deferred<T = void> {
  resolve!: (v: T) => void;
  settled = false;
  readonly promise = new Promise<T>((r) => {
    this.resolve = (v: T) => {
      this.settled = true;
      r(v);
    };
  });
}

/** What the parts of the runner share: time, the log, events, and a way to publish status. */
export interface PodContext {
  clock: Clock;
  /** Milliseconds in one of Kubernetes' seconds (probe periods, grace periods). */
  secondMs: number;
  log: Logger;
  events: PodEvents;
  /** Writes the pod's status file (after any change worth showing). */
  write(): void;
  /** The manifest's directory: relative commands and the default working directory. */
  cwd: string;
}

/** One process of a container, from launch to exit. */
export class Run {
  /** Aborted when the process has exited: hooks, probes and timers of this run stop. */
  readonly abort = new AbortController();
  /** Clock time of the launch; probe delays and the back-off's run time count from it. */
  readonly startedAt: number;
  child: ChildProcess | undefined;
  /** Pid whose mount namespace exec probes and hooks enter, when the run has its own. */
  nsPid: number | undefined;
  /** The cgroup's OOM-kill count when this run started. */
  oomBase = 0;
  /** Exec hook and probe processes of this run, killed with it. */
  readonly procs = new Set<number>();
  /** When this run was sent SIGTERM: at most once, whoever asks (a probe or pod termination). */
  termAt: number | undefined;
  /** The preStop hook in flight, shared by a probe's kill and the pod's termination. */
  preStop: Promise<void> | undefined;
  /** Settles once postStart has returned or failed, or the run ended first. */
  readonly postStartDone = new Deferred();
  #timers: TimerHandle[] = [];

  constructor(startedAt: number) {
    this.startedAt = startedAt;
  }

  get ended(): boolean {
    return this.abort.signal.aborted;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** A timer that is cancelled when the run ends. */
  timer(clock: Clock, fn: () => void, ms: number): void {
    if (this.ended) return;
    this.#timers.push(clock.setTimeout(fn, ms));
  }

  /** The process has exited: stop everything that belongs to this run. */
  end(): void {
    if (this.ended) return;
    this.abort.abort();
    for (const t of this.#timers) t.cancel();
    this.killProcs();
    this.postStartDone.resolve();
  }

  /** SIGKILLs the groups of this run's hook and probe processes, synchronously. */
  killProcs(): void {
    for (const pid of this.procs) killGroup(pid, 'SIGKILL');
    this.procs.clear();
  }
}

export class Container {
  readonly spec: ContainerSpec;
  readonly type: ContainerType;
  readonly status: ContainerStatus;
  env: Record<string, string> = {};
  mounts: BindMount[] = [];
  cgroup: CgroupHandle | undefined;
  /** The current run, while its process is alive (and until the next launch, for its exit). */
  run: Run | undefined;
  /** True once this container may not start again: the pod is stopping it, or it is done. */
  stopped = false;
  loop: Promise<Exit | undefined> = Promise.resolve(undefined);
  /** Settles when the container counts as started for the first time (postStart, startup probe). */
  readonly firstStarted = new Deferred();
  /** Settles when the first run's postStart has returned, or that run could not get that far. */
  readonly firstPostStart = new Deferred();
  /** Cuts a back-off wait short. */
  wake: (() => void) | undefined;
  lastExit: Exit | undefined;
  readonly backoff: CrashLoopBackoff;

  constructor(spec: ContainerSpec, type: ContainerType, backoff: BackoffOptions) {
    this.spec = spec;
    this.type = type;
    this.backoff = new CrashLoopBackoff(backoff);
    this.status = {
      name: spec.name,
      type,
      state: 'waiting',
      reason: 'PodInitializing',
      ready: false,
      started: false,
      restartCount: 0,
    };
  }

  get name(): string {
    return this.spec.name;
  }

  get alive(): boolean {
    return this.status.state === 'running' && this.run !== undefined && !this.run.ended;
  }

  /** The run, if it is still alive. */
  get live(): Run | undefined {
    return this.run && !this.run.ended ? this.run : undefined;
  }

  /** Runs a hook or probe action for one run; it ends early (killed) when that run ends. */
  handle(
    run: Run,
    action: HandlerSpec | ProbeSpec,
    timeoutMs: number,
    ctx: PodContext,
  ): Promise<ActionResult> {
    if ('sleep' in action && action.sleep) {
      return sleep(ctx.clock, action.sleep.seconds * ctx.secondMs, run.abort.signal).then(() => ({
        ok: true,
      }));
    }
    return runAction(action, {
      env: this.env,
      cwd: this.spec.workingDir ?? ctx.cwd,
      nsPid: run.nsPid,
      timeoutMs,
      clock: ctx.clock,
      ports: this.spec.ports,
      signal: run.abort.signal,
      procs: run.procs,
    });
  }
}

/** Sleeps on the clock; ends early when the signal aborts. */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  if (ms <= 0 || signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      timer.cancel();
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = clock.setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
