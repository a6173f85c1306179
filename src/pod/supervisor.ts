// Runs one pod the way the kubelet does, with processes for containers:
//   - init containers in order; a regular one must exit 0; a sidecar (restartPolicy: Always) must
//     count as started (startup probe passed, postStart done) before the next one starts;
//   - then every main container at once; probes; restarts per restartPolicy with crash-loop back-off
//     (sidecars always restart);
//   - completion: with OnFailure/Never, once every main container is done, the sidecars are stopped
//     and the pod is Succeeded or Failed;
//   - termination: preStop hooks, SIGTERM to main containers, then each sidecar in reverse start
//     order once those before it have exited, all inside one grace period; when it runs out,
//     SIGTERM to all that remain and SIGKILL 2 s later. Signals go to each container's whole
//     process group, and a container's group is killed when its first process exits, so nothing
//     it started is left behind.
// Kubernetes' times are in seconds; `secondMs` scales them so tests run in milliseconds.

import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { constants } from 'node:os';
import type { Logger } from 'pino';
import { CrashLoopBackoff, type BackoffOptions, KUBELET_BACKOFF } from '../lib/backoff.js';
import { type Clock, systemClock, type TimerHandle } from '../lib/clock.js';
import { PillionError } from '../lib/errors.js';
import type { ContainerSpec, HandlerSpec, ProbeSpec } from './config.js';
import { CriLogWriter, type Stream } from './cri-log.js';
import { baseEnv, containerEnv, expand } from './env.js';
import {
  type BindMount,
  subPathEscape,
  type CgroupHandle,
  canIsolateMounts,
  createCgroup,
  ensureMountPoints,
  planLaunch,
  removeMountPoints,
  resolveExecutable,
} from './isolation.js';
import type { PodManifest } from './manifest.js';
import { type ActionResult, killGroup, runAction } from './probes.js';
import { parseQuantity } from './quantity.js';
import {
  type ContainerStatus,
  type ContainerType,
  type Phase,
  type PodDirs,
  type PodStatus,
  procStartTime,
  type TerminatedState,
} from './state.js';
import { Volumes } from './volumes.js';

export interface SupervisorOptions {
  manifest: PodManifest;
  dirs: PodDirs;
  hostEnv: Readonly<Record<string, string | undefined>>;
  logger: Logger;
  clock?: Clock;
  /** Milliseconds in one of Kubernetes' seconds (probe periods, grace periods). */
  secondMs?: number;
  backoff?: BackoffOptions;
  log?: { maxBytes: number; maxFiles: number };
  onLine?: (container: string, stream: Stream, line: string) => void;
  warnings?: string[];
}

export interface PodOutcome {
  phase: Phase;
  reason?: string | undefined;
}

interface Exit {
  code: number;
  signal?: string | undefined;
  reason: string;
  message?: string | undefined;
}

class Deferred<T = void> {
  resolve!: (v: T) => void;
  readonly promise = new Promise<T>((r) => {
    this.resolve = r;
  });
}

class Container {
  readonly spec: ContainerSpec;
  readonly type: ContainerType;
  readonly status: ContainerStatus;
  env: Record<string, string> = {};
  mounts: BindMount[] = [];
  cgroup: CgroupHandle | undefined;
  child: ChildProcess | undefined;
  /** Bumped at every launch, so probes and hooks of an old run stop acting. */
  generation = 0;
  /** True once termination has sent this container SIGTERM: it is not restarted after that. */
  stopped = false;
  loop: Promise<Exit | undefined> = Promise.resolve(undefined);
  firstStarted = new Deferred();
  wake: (() => void) | undefined;
  lastExit: Exit | undefined;
  readonly backoff: CrashLoopBackoff;
  runStart = 0;
  /** Pid whose mount namespace exec probes and hooks enter, when the run has its own. */
  nsPid: number | undefined;
  /** The cgroup's OOM-kill count when this run started. */
  oomBase = 0;

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
    return this.status.state === 'running';
  }
}

export class Supervisor {
  #o: Required<Pick<SupervisorOptions, 'secondMs' | 'backoff' | 'log'>> & SupervisorOptions;
  #clock: Clock;
  #log: Logger;
  #pod: PodManifest;
  #inits: Container[];
  #mains: Container[];
  #all: Container[];
  #volumes: Volumes;
  #phase: Phase = 'Pending';
  #reason: string | undefined;
  #initialized = false;
  #terminating = false;
  #terminated = new Deferred();
  #termination: Promise<void> | undefined;
  #startTime: string;
  #endTime: string | undefined;
  #createdMountPoints: string[] = [];
  #warnings: string[];
  #cwd: string;
  #selfStart = procStartTime(process.pid);

  constructor(opts: SupervisorOptions) {
    this.#o = {
      secondMs: 1000,
      backoff: KUBELET_BACKOFF,
      log: { maxBytes: 10 * 1024 * 1024, maxFiles: 5 },
      ...opts,
    };
    this.#clock = opts.clock ?? systemClock;
    this.#log = opts.logger;
    this.#pod = opts.manifest;
    const spec = this.#pod.spec;
    this.#inits = spec.initContainers.map(
      (c) => new Container(c, c.restartPolicy === 'Always' ? 'sidecar' : 'init', this.#o.backoff),
    );
    this.#mains = spec.containers.map((c) => new Container(c, 'main', this.#o.backoff));
    this.#all = [...this.#inits, ...this.#mains];
    this.#volumes = new Volumes(this.#pod, opts.dirs.volumesDir, (m) => this.#warn(m));
    this.#startTime = new Date(this.#clock.now()).toISOString();
    this.#warnings = [...(opts.warnings ?? [])];
    this.#cwd = dirname(this.#pod.file);
  }

  /** Runs the pod until it completes or is terminated. */
  async run(): Promise<PodOutcome> {
    // Every timer here is unref'd (lib/clock): during a back-off wait with no container process
    // alive, nothing else would keep the runner's event loop, and Node would exit mid-pod.
    const keepAlive = setInterval(() => {}, 1 << 30);
    try {
      return await this.#run();
    } finally {
      clearInterval(keepAlive);
    }
  }

  async #run(): Promise<PodOutcome> {
    try {
      this.#prepare();
    } catch (err) {
      this.#phase = 'Failed';
      this.#reason = (err as PillionError).code ?? 'StartError';
      this.#warn((err as Error).message);
      this.#endTime = new Date(this.#clock.now()).toISOString();
      this.#write();
      this.#cleanup();
      throw err;
    }
    this.#write();

    let initFailed = false;
    for (const c of this.#inits) {
      if (this.#terminating) break;
      c.loop = this.#runLoop(c);
      if (c.type === 'sidecar') {
        await Promise.race([c.firstStarted.promise, this.#terminated.promise]);
      } else {
        const exit = await c.loop;
        if (this.#terminating) break;
        if (!exit || exit.code !== 0) {
          initFailed = true;
          this.#reason = 'InitContainerFailed';
          break;
        }
      }
    }
    if (!initFailed && !this.#terminating) {
      this.#initialized = true;
      this.#phase = 'Running';
      for (const c of this.#mains) c.status.reason = 'ContainerCreating';
      this.#write();
      for (const c of this.#mains) c.loop = this.#runLoop(c);
      await Promise.race([Promise.all(this.#mains.map((c) => c.loop)), this.#terminated.promise]);
    }
    if (!this.#terminating) {
      // Completion: the main containers are done and will not restart; the sidecars must not keep the pod alive.
      const failed = initFailed || this.#mains.some((c) => c.lastExit?.code !== 0);
      this.#phase = failed ? 'Failed' : 'Succeeded';
      this.#reason ??= failed ? 'Error' : 'Completed';
      this.#log.info({ phase: this.#phase }, 'main containers are done; stopping sidecars');
      await this.terminate('Completed');
    }
    await this.#termination;
    this.#endTime = new Date(this.#clock.now()).toISOString();
    this.#write();
    this.#cleanup();
    return { phase: this.#phase, reason: this.#reason };
  }

  /** Shuts the pod down in order (preStop, mains, sidecars in reverse), within the grace period. */
  terminate(reason = 'Terminated'): Promise<void> {
    this.#termination ??= this.#terminate(reason);
    return this.#termination;
  }

  /**
   * SIGKILLs every container's process group at once, synchronously: the last resort when the
   * runner itself is going away (process 'exit'), so no container outlives it unsupervised.
   */
  killAllNow(): void {
    for (const c of this.#all) if (c.child?.pid) killGroup(c.child.pid, 'SIGKILL');
  }

  /** Applies newer ConfigMap and Secret data to mounted volumes (the pod spec itself is immutable). */
  updateConfig(next: PodManifest): string[] {
    const changed = this.#volumes.update(next);
    if (changed.length) this.#log.info({ volumes: changed }, 'volumes updated');
    return changed;
  }

  get phase(): Phase {
    return this.#phase;
  }

  /** The host directory of a volume (for inspection and tests). */
  volumePath(name: string): string {
    return this.#volumes.source(name);
  }

  // === preparation ===============================================================================

  #prepare(): void {
    this.#o.dirs.create();
    this.#volumes.prepare();
    const base = baseEnv(this.#o.hostEnv, this.#pod);
    const needsMounts = this.#all.some((c) => c.spec.volumeMounts.length > 0);
    if (needsMounts && !canIsolateMounts()) {
      throw new PillionError(
        'PILLION_ERR_POD_ISOLATION',
        'volumeMounts need a private mount namespace for each container, which needs root here (unshare --mount failed); run pillion pod as root or remove volumeMounts',
      );
    }
    let limitsWarned = false;
    for (const c of this.#all) {
      c.env = containerEnv(c.spec, this.#pod, base);
      c.mounts = c.spec.volumeMounts.map((m) => ({
        source: m.subPath ? join(this.#volumes.source(m.name), m.subPath) : this.#volumes.source(m.name),
        target: m.mountPath,
        readOnly: m.readOnly,
        within: m.subPath ? this.#volumes.source(m.name) : undefined,
      }));
      for (const m of c.spec.volumeMounts) {
        if (m.subPath) {
          const source = join(this.#volumes.source(m.name), m.subPath);
          if (!existsSync(source)) mkdirSync(source, { recursive: true }); // created, as the kubelet does
        }
      }
      this.#createdMountPoints.push(...ensureMountPoints(c.mounts));
      const limits = c.spec.resources?.limits;
      if (limits && (limits.memory !== undefined || limits.cpu !== undefined)) {
        const mem = limits.memory !== undefined ? parseQuantity(limits.memory) : undefined;
        const cpu = limits.cpu !== undefined ? parseQuantity(limits.cpu) : undefined;
        try {
          c.cgroup = createCgroup(`pillion-${this.#o.dirs.id}-${c.name}`, {
            memoryBytes: mem?.ok ? Math.floor(mem.value) : undefined,
            cpu: cpu?.ok ? cpu.value : undefined,
          });
        } catch (err) {
          if (!limitsWarned)
            this.#warn(
              `PILLION_ERR_POD_LIMITS_NOT_ENFORCED: resources.limits are not enforced: ${(err as Error).message}`,
            );
          limitsWarned = true;
        }
      }
    }
  }

  #cleanup(): void {
    for (const c of this.#all) c.cgroup?.remove();
    this.#volumes.cleanup();
    removeMountPoints(this.#createdMountPoints);
  }

  // === one container =============================================================================

  async #runLoop(c: Container): Promise<Exit | undefined> {
    for (;;) {
      if (c.stopped || (this.#terminating && c.type !== 'sidecar')) return c.lastExit;
      c.runStart = this.#clock.now();
      const exit = await this.#runOnce(c);
      c.lastExit = exit;
      if (c.stopped || (this.#terminating && c.type !== 'sidecar')) return exit;
      if (!this.#restarts(c, exit)) return exit;
      const delay = c.backoff.next(this.#clock.now() - c.runStart);
      if (delay > 0) {
        c.status.state = 'waiting';
        c.status.reason = 'CrashLoopBackOff';
        c.status.message = `back-off ${Math.round(delay / this.#o.secondMs)}s restarting failed container=${c.name}`;
        this.#write();
        this.#log.warn(
          { container: c.name, exitCode: exit.code, delayMs: delay },
          `${c.name} exited (${exit.reason}); restarting after back-off`,
        );
        await this.#sleep(delay, c);
        if (c.stopped || (this.#terminating && c.type !== 'sidecar')) return exit;
      } else {
        this.#log.warn(
          { container: c.name, exitCode: exit.code },
          `${c.name} exited (${exit.reason}); restarting`,
        );
      }
      c.status.restartCount++;
    }
  }

  #restarts(c: Container, exit: Exit): boolean {
    if (c.type === 'sidecar') return true;
    const policy = this.#pod.spec.restartPolicy;
    if (c.type === 'init') return exit.code !== 0 && policy !== 'Never';
    return policy === 'Always' || (policy === 'OnFailure' && exit.code !== 0);
  }

  #runOnce(c: Container): Promise<Exit> {
    const generation = ++c.generation;
    const command = [...(c.spec.command ?? []), ...c.spec.args].map((s) => expand(s, c.env));
    const cwd = c.spec.workingDir ?? this.#cwd;
    const logDir = this.#o.dirs.containerLogDir(c.name);
    mkdirSync(logDir, { recursive: true });
    const writer = new CriLogWriter(join(logDir, `${c.status.restartCount}.log`), {
      ...this.#o.log,
      onLine: this.#o.onLine ? (stream, line) => this.#o.onLine!(c.name, stream, line) : undefined,
    });

    const insideMount = (p: string) => c.mounts.some((m) => p === m.target || p.startsWith(`${m.target}/`));
    const startError = (message: string): Promise<Exit> => {
      writer.write('stderr', Buffer.from(`${message}\n`));
      writer.close();
      return Promise.resolve(this.#recordExit(c, { code: 128, reason: 'StartError', message }));
    };
    const exe = command[0]!;
    if (!insideMount(exe) && !resolveExecutable(exe, c.env.PATH ?? '', cwd)) {
      return startError(`exec: "${exe}": executable file not found in $PATH`);
    }
    if (!insideMount(cwd) && !(existsSync(cwd) && statSync(cwd).isDirectory())) {
      return startError(`workingDir "${cwd}" does not exist`);
    }

    for (const m of c.mounts) {
      const escape = subPathEscape(m);
      if (escape) return startError(`volumeMount at ${m.target}: ${escape}`);
    }
    c.oomBase = c.cgroup?.oomKills() ?? 0;
    const plan = planLaunch({
      command,
      workingDir: cwd,
      mounts: c.mounts,
      cgroupFiles: c.cgroup?.procFiles ?? [],
    });
    const direct = plan.file === command[0];
    let child: ChildProcess;
    try {
      child = spawn(plan.file, plan.args, {
        cwd: direct ? cwd : this.#cwd,
        env: c.env,
        detached: true, // its own process group (and session), signalled as a whole
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    } catch (err) {
      return startError(`cannot start: ${(err as Error).message}`);
    }
    c.child = child;
    child.stdout!.on('data', (b: Buffer) => writer.write('stdout', b));
    child.stderr!.on('data', (b: Buffer) => writer.write('stderr', b));

    const done = new Promise<Exit>((resolve) => {
      let settled = false;
      const finish = (exit: Exit) => {
        if (settled) return;
        settled = true;
        // The first process is gone: end whatever it left in its group, as a container's end does.
        killGroup(child.pid, 'SIGKILL');
        const closeLog = () => writer.close();
        if (child.stdout!.readableEnded && child.stderr!.readableEnded) closeLog();
        else {
          // A process that left the group (setsid) may hold the pipes open: stop reading after 2 s.
          const t = setTimeout(() => {
            child.stdout!.destroy();
            child.stderr!.destroy();
            closeLog();
          }, 2000);
          t.unref();
          child.once('close', () => {
            clearTimeout(t);
            closeLog();
          });
        }
        resolve(this.#recordExit(c, exit));
      };
      child.once('error', (err: NodeJS.ErrnoException) =>
        finish({ code: 128, reason: 'StartError', message: err.message }),
      );
      child.once('exit', (code, signal) => {
        if (signal) {
          const signo = constants.signals[signal] ?? 0;
          const oom = c.cgroup !== undefined && c.cgroup.oomKills() > c.oomBase;
          finish({ code: 128 + signo, signal, reason: oom ? 'OOMKilled' : 'Error' });
        } else {
          // The kernel may kill a child of the container's first process; the container then exits 137 itself.
          const oom = code !== 0 && c.cgroup !== undefined && c.cgroup.oomKills() > c.oomBase;
          finish({ code: code ?? 0, reason: code === 0 ? 'Completed' : oom ? 'OOMKilled' : 'Error' });
        }
      });
    });

    const onSpawned = () => {
      c.status.state = 'running';
      c.status.reason = undefined;
      c.status.message = undefined;
      c.status.pid = child.pid;
      c.status.pidStart = child.pid ? procStartTime(child.pid) : undefined;
      c.status.startedAt = new Date(this.#clock.now()).toISOString();
      // kubectl's "Last State": the run before this one.
      if (c.status.terminated) c.status.lastState = c.status.terminated;
      c.status.terminated = undefined;
      this.#log.info(
        { container: c.name, pid: child.pid, restart: c.status.restartCount },
        `started ${c.type} container ${c.name}`,
      );
      this.#write();
      c.nsPid = plan.mountNamespace ? child.pid : undefined;
      void this.#afterStart(c, generation, c.nsPid);
    };
    // A pid means the process exists now. Node's 'spawn' event can come later than the process's
    // first output, and a termination in between must already see the container running.
    if (child.pid !== undefined) onSpawned();
    else child.once('spawn', onSpawned);
    return done;
  }

  #recordExit(c: Container, exit: Exit): Exit {
    c.generation++; // stop this run's probes and hooks
    const t: TerminatedState = {
      exitCode: exit.code,
      signal: exit.signal,
      reason: exit.reason,
      message: exit.message,
      startedAt: c.status.startedAt,
      finishedAt: new Date(this.#clock.now()).toISOString(),
    };
    c.status.state = 'terminated';
    c.status.terminated = t;
    c.status.pid = undefined;
    c.status.pidStart = undefined;
    c.status.ready = false;
    c.status.started = false;
    c.child = undefined;
    this.#log.info(
      { container: c.name, exitCode: exit.code, reason: exit.reason },
      `${c.name} exited with ${exit.code} (${exit.reason})`,
    );
    this.#write();
    return exit;
  }

  // Runs postStart, then the probes. The container counts as started once postStart has
  // finished and its startup probe (if any) has passed.
  async #afterStart(c: Container, gen: number, nsPid: number | undefined): Promise<void> {
    const hook = c.spec.lifecycle?.postStart;
    if (hook) {
      const r = await this.#runHandler(
        c,
        hook,
        nsPid,
        this.#pod.spec.terminationGracePeriodSeconds * this.#o.secondMs,
      );
      if (c.generation !== gen) return;
      if (!r.ok) {
        this.#log.warn(
          { container: c.name, message: r.message },
          'postStart hook failed; killing the container',
        );
        this.#kill(c, 'FailedPostStartHook');
        return;
      }
    }
    if (c.spec.startupProbe) {
      void this.#probeLoop(c, gen, nsPid, c.spec.startupProbe, 'startup');
    } else {
      this.#markStarted(c, gen, nsPid);
    }
  }

  #markStarted(c: Container, gen: number, nsPid: number | undefined): void {
    if (c.generation !== gen) return;
    c.status.started = true;
    c.firstStarted.resolve();
    if (c.spec.livenessProbe) void this.#probeLoop(c, gen, nsPid, c.spec.livenessProbe, 'liveness');
    if (c.spec.readinessProbe) void this.#probeLoop(c, gen, nsPid, c.spec.readinessProbe, 'readiness');
    else c.status.ready = c.type !== 'init';
    this.#write();
  }

  async #probeLoop(
    c: Container,
    gen: number,
    nsPid: number | undefined,
    probe: ProbeSpec,
    kind: 'startup' | 'liveness' | 'readiness',
  ): Promise<void> {
    const s = this.#o.secondMs;
    let successes = 0;
    let failures = 0;
    await this.#sleep(probe.initialDelaySeconds * s);
    while (c.generation === gen && !(c.stopped && kind !== 'readiness')) {
      const r = await this.#runHandler(c, probe, nsPid, probe.timeoutSeconds * s);
      if (c.generation !== gen) return;
      if (r.ok) {
        successes++;
        failures = 0;
      } else {
        failures++;
        successes = 0;
      }
      if (kind === 'startup') {
        if (r.ok) return this.#markStarted(c, gen, nsPid);
        if (failures >= probe.failureThreshold) {
          this.#log.warn(
            { container: c.name, message: r.message },
            'startup probe failed; restarting the container',
          );
          return this.#kill(c, 'StartupProbeFailed', probe.terminationGracePeriodSeconds);
        }
      } else if (kind === 'liveness') {
        if (failures >= probe.failureThreshold) {
          this.#log.warn(
            { container: c.name, message: r.message },
            'liveness probe failed; restarting the container',
          );
          return this.#kill(c, 'LivenessProbeFailed', probe.terminationGracePeriodSeconds);
        }
      } else {
        const ready =
          successes >= probe.successThreshold
            ? true
            : failures >= probe.failureThreshold
              ? false
              : c.status.ready;
        if (ready !== c.status.ready) {
          c.status.ready = ready;
          if (!ready) this.#log.warn({ container: c.name, message: r.message }, 'readiness probe failed');
          this.#write();
        }
      }
      await this.#sleep(probe.periodSeconds * s);
    }
  }

  #runHandler(
    c: Container,
    action: HandlerSpec | ProbeSpec,
    nsPid: number | undefined,
    timeoutMs: number,
  ): Promise<ActionResult> {
    if ('sleep' in action && action.sleep) {
      return this.#sleep(action.sleep.seconds * this.#o.secondMs).then(() => ({ ok: true }));
    }
    return runAction(action, { env: c.env, cwd: c.spec.workingDir ?? this.#cwd, nsPid, timeoutMs });
  }

  /** A probe or hook failure: stop this run; the restart policy decides what follows. */
  // As the kubelet's killContainer: preStop (within the grace period), then SIGTERM, then SIGKILL
  // when the grace period is over.
  #kill(c: Container, reason: string, graceSeconds?: number): void {
    const pid = c.child?.pid;
    if (!pid) return;
    c.status.reason = reason;
    const grace = (graceSeconds ?? this.#pod.spec.terminationGracePeriodSeconds) * this.#o.secondMs;
    const gen = c.generation;
    this.#clock.setTimeout(() => {
      if (c.generation === gen) killGroup(pid, 'SIGKILL');
    }, grace);
    const hook = c.spec.lifecycle?.preStop;
    if (!hook) {
      killGroup(pid, 'SIGTERM');
      return;
    }
    void this.#runHandler(c, hook, c.nsPid, grace).then(() => {
      if (c.generation === gen) killGroup(pid, 'SIGTERM');
    });
  }

  // === termination ===============================================================================

  async #terminate(reason: string): Promise<void> {
    this.#terminating = true;
    this.#terminated.resolve();
    if (reason !== 'Completed') this.#reason = reason;
    const s = this.#o.secondMs;
    const graceMs = this.#pod.spec.terminationGracePeriodSeconds * s;
    this.#log.info({ reason, gracePeriodMs: graceMs }, 'terminating pod');
    this.#write();

    let expired = false;
    const deadline = new Promise<void>((resolve) => {
      this.#clock.setTimeout(() => {
        expired = true;
        resolve();
      }, graceMs);
    });
    // preStop of every running container starts now; a main container gets SIGTERM when its own is done.
    const preStops = new Map<Container, Promise<unknown>>();
    for (const c of this.#all) {
      const hook = c.spec.lifecycle?.preStop;
      preStops.set(
        c,
        hook && c.alive && graceMs > 0
          ? Promise.race([this.#runHandler(c, hook, c.nsPid, graceMs), deadline])
          : Promise.resolve(),
      );
    }
    const mains = [...this.#mains, ...this.#inits.filter((c) => c.type === 'init')];
    for (const c of mains) c.stopped = true;
    await Promise.race([
      Promise.all(
        mains.map(async (c) => {
          await preStops.get(c);
          this.#signal(c, 'SIGTERM');
          await c.loop;
        }),
      ),
      deadline,
    ]);

    // Sidecars, last started first, each once the ones before it have exited.
    const sidecars = this.#inits.filter((c) => c.type === 'sidecar').reverse();
    for (const c of sidecars) {
      if (expired) break;
      await Promise.race([preStops.get(c), deadline]);
      if (expired) break;
      this.#signal(c, 'SIGTERM');
      await Promise.race([c.loop, deadline]);
    }

    if (expired) {
      const left = this.#all.filter((c) => c.alive);
      this.#log.warn(
        { containers: left.map((c) => c.name) },
        'grace period over: SIGTERM to all that remain, SIGKILL in 2s',
      );
      for (const c of this.#all) this.#signal(c, 'SIGTERM');
      const killed = new Promise<void>((resolve) => this.#clock.setTimeout(resolve, 2 * s));
      await Promise.race([Promise.all(this.#all.map((c) => c.loop)), killed]);
      for (const c of this.#all) if (c.alive) killGroup(c.child?.pid, 'SIGKILL');
    }
    await Promise.all(this.#all.map((c) => c.loop));
    if (this.#phase === 'Running' || this.#phase === 'Pending') {
      this.#phase =
        this.#mains.every((c) => c.lastExit?.code === 0) && this.#initialized ? 'Succeeded' : 'Failed';
    }
  }

  /** Sends a signal to a container's group and marks it stopped, so it is not restarted. */
  #signal(c: Container, sig: NodeJS.Signals): void {
    c.stopped = true;
    c.wake?.(); // cut short a back-off wait
    if (c.alive) killGroup(c.child?.pid, sig);
  }

  // === helpers ===================================================================================

  /** Sleeps on the clock; a container's wait ends early when it is stopped. */
  #sleep(ms: number, c?: Container): Promise<void> {
    if (ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        timer.cancel();
        if (c) c.wake = undefined;
        resolve();
      };
      const timer: TimerHandle = this.#clock.setTimeout(done, ms);
      if (c) c.wake = done;
    });
  }

  #warn(message: string): void {
    this.#warnings.push(message);
    this.#log.warn(message);
  }

  #write(): void {
    const containersReady =
      this.#initialized &&
      [...this.#inits.filter((c) => c.type === 'sidecar'), ...this.#mains].every((c) => c.status.ready);
    const status: PodStatus = {
      name: this.#pod.name,
      namespace: this.#pod.namespace,
      uid: this.#pod.uid,
      kind: this.#pod.kind,
      file: this.#pod.file,
      phase: this.#phase,
      reason: this.#reason,
      terminating: this.#terminating && this.#endTime === undefined,
      supervisorPid: process.pid,
      supervisorStart: this.#selfStart,
      gracePeriodMs: this.#pod.spec.terminationGracePeriodSeconds * this.#o.secondMs,
      startTime: this.#startTime,
      endTime: this.#endTime,
      conditions: {
        initialized: this.#initialized,
        containersReady,
        ready: containersReady && this.#phase === 'Running' && !this.#terminating,
      },
      containers: this.#all.map((c) => ({ ...c.status })),
      warnings: this.#warnings,
    };
    try {
      this.#o.dirs.writeStatus(status);
    } catch (err) {
      this.#log.error({ err }, 'cannot write pod status');
    }
  }
}
