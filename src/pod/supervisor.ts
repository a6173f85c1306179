// Runs one pod the way the kubelet does, with processes for containers. This file is the pod's
// own sequence; the parts a container goes through live beside it:
//   - start: init containers in order; a regular one must exit 0; a sidecar (restartPolicy:
//     Always) must count as started (postStart done, startup probe passed) before the next one
//     starts. Then the main containers in order, each once the one before it has returned from
//     its postStart hook, as the kubelet starts them (a holdApplicationUntilProxyStarts-style
//     postStart holds up the next container);
//   - restarts per restartPolicy with crash-loop back-off (sidecars always restart);
//   - completion: with OnFailure/Never, once every main container is done, the sidecars are
//     stopped and the pod is Succeeded or Failed; a failed init container fails the pod;
//   - termination (termination.ts), probes and hooks (prober.ts), one run of a process (launch.ts).
// Kubernetes' times are in seconds; `secondMs` scales them so tests can run on fast real time,
// and the clock is injected so they can run on a fake one.

import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { type BackoffOptions, KUBELET_BACKOFF } from '../lib/backoff.js';
import { type Clock, systemClock } from '../lib/clock.js';
import { PillionError } from '../lib/errors.js';
import { Container, Deferred, type Exit, type PodContext, sleep } from './container.js';
import type { Stream } from './cri-log.js';
import { baseEnv, containerEnv } from './env.js';
import { PodEvents } from './events.js';
import { canIsolateMounts, createCgroup, ensureMountPoints, removeMountPoints } from './isolation.js';
import { launch } from './launch.js';
import type { PodManifest } from './manifest.js';
import { killGroup } from './probes.js';
import { afterStart } from './prober.js';
import { parseQuantity } from './quantity.js';
import { type Phase, type PodDirs, type PodStatus, procStartTime } from './state.js';
import { terminateContainers } from './termination.js';
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

export class Supervisor {
  #o: Required<Pick<SupervisorOptions, 'secondMs' | 'backoff' | 'log'>> & SupervisorOptions;
  #ctx: PodContext;
  #clock: Clock;
  #log: Logger;
  #events: PodEvents;
  #pod: PodManifest;
  #inits: Container[];
  #mains: Container[];
  #all: Container[];
  #volumes: Volumes;
  #phase: Phase = 'Pending';
  #reason: string | undefined;
  #initialized = false;
  #terminating = false;
  /** Settles when termination begins, to cut the start sequence short. */
  #terminated = new Deferred();
  #termination: Promise<void> | undefined;
  #startTime: string;
  #endTime: string | undefined;
  #createdMountPoints: string[] = [];
  #warnings: string[];
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
    this.#events = new PodEvents(this.#clock);
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
    this.#ctx = {
      clock: this.#clock,
      secondMs: this.#o.secondMs,
      log: this.#log,
      events: this.#events,
      write: () => this.#write(),
      cwd: dirname(this.#pod.file),
    };
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
      // As the kubelet reports a container it could not create: waiting, with the reason.
      for (const c of this.#all) {
        c.status.reason = 'CreateContainerError';
        c.status.message = (err as Error).message;
      }
      this.#events.warning('Failed', `Error: ${(err as Error).message}`);
      this.#endTime = new Date(this.#clock.now()).toISOString();
      this.#write();
      this.#cleanup();
      throw err;
    }
    this.#write();

    const failedInit = await this.#startInits();
    if (!failedInit && !this.#terminating) {
      this.#initialized = true;
      this.#phase = 'Running';
      for (const c of this.#mains) c.status.reason = 'ContainerCreating';
      this.#write();
      await this.#startMains();
      await Promise.race([Promise.all(this.#mains.map((c) => c.loop)), this.#terminated.promise]);
    }
    if (!this.#terminating) this.#complete(failedInit);
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
   * SIGKILLs every container's process group, and every hook and probe process, at once and
   * synchronously: the last resort when the runner itself is going away (process 'exit'), so no
   * container outlives it unsupervised.
   */
  killAllNow(): void {
    for (const c of this.#all) {
      const run = c.live;
      if (!run) continue;
      killGroup(run.pid, 'SIGKILL');
      run.killProcs();
    }
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
    this.#o.dirs.writeSpec(this.#pod);
    this.#volumes.prepare();
    const base = baseEnv(this.#o.hostEnv, this.#pod, resolve(this.#o.dirs.runDir));
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
    this.killAllNow(); // nothing the pod started outlives it
    for (const c of this.#all) c.cgroup?.remove();
    this.#volumes.cleanup();
    removeMountPoints(this.#createdMountPoints);
  }

  // === start =====================================================================================

  /** Runs the init containers in order; returns the one that failed the pod, if one did. */
  async #startInits(): Promise<Container | undefined> {
    for (const c of this.#inits) {
      if (this.#terminating) return undefined;
      c.loop = this.#runLoop(c);
      if (c.type === 'sidecar') {
        await Promise.race([c.firstStarted.promise, this.#terminated.promise]);
        continue;
      }
      const exit = await c.loop;
      if (this.#terminating) return undefined;
      if (!exit || exit.code !== 0) return c;
    }
    return undefined;
  }

  // The kubelet starts the containers of spec.containers one after another, and startContainer
  // returns only once the postStart hook has (kubernetes/kubernetes#81450): Istio's
  // holdApplicationUntilProxyStarts and Linkerd's proxy-await rely on a postStart holding up the
  // next container.
  async #startMains(): Promise<void> {
    for (const c of this.#mains) {
      if (this.#terminating) return;
      c.loop = this.#runLoop(c);
      await Promise.race([c.firstPostStart.promise, this.#terminated.promise]);
    }
  }

  // === restart policy ============================================================================

  async #runLoop(c: Container): Promise<Exit | undefined> {
    for (;;) {
      if (this.#mayNotStart(c)) return c.lastExit;
      const exit = await launch(c, this.#ctx, {
        logDir: (name) => this.#o.dirs.containerLogDir(name),
        log: this.#o.log,
        onLine: this.#o.onLine,
        onStarted: (x, run) =>
          void afterStart(x, run, this.#ctx, {
            podGraceSeconds: this.#pod.spec.terminationGracePeriodSeconds,
          }),
      });
      c.lastExit = exit;
      if (this.#mayNotStart(c) || !this.#restarts(c, exit)) return exit;
      const ran = this.#clock.now() - c.run!.startedAt;
      const delay = c.backoff.next(ran);
      if (delay > 0) {
        // kubectl shows a container in back-off as waiting, with the run that ended as its last state.
        c.status.state = 'waiting';
        c.status.reason = 'CrashLoopBackOff';
        c.status.message = `back-off ${formatSeconds(delay / this.#o.secondMs)} restarting failed container=${c.name} pod=${this.#pod.name}`;
        c.status.lastState = c.status.terminated;
        c.status.terminated = undefined;
        this.#events.warning('BackOff', `Back-off restarting failed container ${c.name}`, c.name);
        this.#write();
        this.#log.warn(
          { container: c.name, exitCode: exit.code, delayMs: delay },
          `${c.name} exited (${exit.reason}); restarting after back-off`,
        );
        const wake = new AbortController();
        c.wake = () => wake.abort();
        await sleep(this.#clock, delay, wake.signal);
        c.wake = undefined;
        if (this.#mayNotStart(c)) return exit;
      } else {
        this.#log.warn(
          { container: c.name, exitCode: exit.code },
          `${c.name} exited (${exit.reason}); restarting`,
        );
      }
      c.status.restartCount++;
    }
  }

  /** A container the pod is stopping does not start again; a sidecar does, until its SIGTERM. */
  #mayNotStart(c: Container): boolean {
    return c.stopped || (this.#terminating && c.type !== 'sidecar');
  }

  #restarts(c: Container, exit: Exit): boolean {
    if (c.type === 'sidecar') return true;
    const policy = this.#pod.spec.restartPolicy;
    if (c.type === 'init') return exit.code !== 0 && policy !== 'Never';
    return policy === 'Always' || (policy === 'OnFailure' && exit.code !== 0);
  }

  // === completion and termination ================================================================

  // Nothing more will run: the main containers are done (or an init container failed the pod),
  // and the sidecars must not keep the pod alive.
  #complete(failedInit: Container | undefined): void {
    const failedMains = this.#mains.filter((c) => c.lastExit?.code !== 0);
    const failed = failedInit !== undefined || failedMains.length > 0;
    this.#phase = failed ? 'Failed' : 'Succeeded';
    if (failedInit) {
      this.#reason = 'InitContainerFailed';
      const exit = failedInit.lastExit;
      const how = exit ? `exited with ${exit.code} (${exit.reason})` : 'did not complete';
      this.#log.warn(
        { container: failedInit.name, phase: this.#phase },
        `init container ${failedInit.name} ${how}; the pod has failed, stopping its sidecars`,
      );
      this.#events.warning(
        'Failed',
        `Init container ${failedInit.name} ${how}; the pod has failed`,
        failedInit.name,
      );
    } else {
      this.#reason ??= failed ? 'Error' : 'Completed';
      const what = failed
        ? `main container${failedMains.length > 1 ? 's' : ''} ${failedMains.map((c) => c.name).join(', ')} failed`
        : 'every main container exited 0';
      this.#log.info({ phase: this.#phase }, `main containers are done (${what}); stopping sidecars`);
      if (failed) this.#events.warning('Failed', `Pod failed: ${what}`);
      else this.#events.normal('Completed', `Pod completed: ${what}`);
    }
    void this.terminate('Completed');
  }

  async #terminate(reason: string): Promise<void> {
    this.#terminating = true;
    this.#terminated.resolve();
    if (reason !== 'Completed') this.#reason = reason;
    const graceMs = this.#pod.spec.terminationGracePeriodSeconds * this.#o.secondMs;
    this.#log.info({ reason, gracePeriodMs: graceMs }, 'terminating pod');
    this.#write();
    await terminateContainers({ inits: this.#inits, mains: this.#mains, graceMs }, this.#ctx);
    if (this.#phase === 'Running' || this.#phase === 'Pending') {
      this.#phase =
        this.#mains.every((c) => c.lastExit?.code === 0) && this.#initialized ? 'Succeeded' : 'Failed';
    }
  }

  // === status ====================================================================================

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
      events: this.#events.list(),
    };
    try {
      this.#o.dirs.writeStatus(status);
    } catch (err) {
      this.#log.error({ err }, 'cannot write pod status');
    }
  }
}

function formatSeconds(s: number): string {
  return Number.isInteger(s) ? `${s}s` : `${s.toFixed(1)}s`;
}
