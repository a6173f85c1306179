// What happens to a run once its process exists, as the kubelet's prober does it
// (pkg/kubelet/prober/worker.go):
//   - postStart runs first; the container counts as started once it has returned and the startup
//     probe (if any) has passed. A failed postStart stops the container (FailedPostStartHook).
//   - Every probe's initialDelaySeconds counts from the container's start — also for liveness and
//     readiness behind a startup probe, which only hold them back until the container has started.
//   - Liveness and readiness run once the container has started, every periodSeconds; a startup or
//     liveness failure at failureThreshold stops the container (preStop, SIGTERM, SIGKILL, with the
//     probe's terminationGracePeriodSeconds if it has one) and the restart policy decides the rest;
//     readiness only flips Ready.
//   - Each failure is an Unhealthy event with the probe's reason, kept in the container's status
//     (kubectl describe's "Last failure") and logged when a run of failures begins or its reason
//     changes.

import type { ProbeSpec } from './config.js';
import { type Container, type PodContext, type Run, sleep } from './container.js';
import type { ProbeKind, ProbeStatus } from './state.js';
import { killContainer } from './termination.js';

const TITLE: Record<ProbeKind, string> = { startup: 'Startup', liveness: 'Liveness', readiness: 'Readiness' };

export interface ProberOptions {
  /** The pod's terminationGracePeriodSeconds. */
  podGraceSeconds: number;
  /** Called once the container counts as started (the next init container may start). */
  onStarted?: (c: Container) => void;
}

/** Runs postStart, then the probes, for one run of a container. */
export async function afterStart(c: Container, run: Run, ctx: PodContext, o: ProberOptions): Promise<void> {
  const hook = c.spec.lifecycle?.postStart;
  if (hook) {
    const r = await c.handle(run, hook, o.podGraceSeconds * ctx.secondMs, ctx);
    if (run.ended) return;
    if (!r.ok) {
      ctx.log.warn({ container: c.name, message: r.message }, `postStart hook of ${c.name} failed`);
      ctx.events.warning('FailedPostStartHook', `PostStartHook failed: ${r.message ?? ''}`, c.name);
      postStartDone(c, run);
      await killContainer(c, run, ctx, {
        graceMs: o.podGraceSeconds * ctx.secondMs,
        message: `Container ${c.name} failed its postStart hook, will be restarted`,
      });
      return;
    }
  }
  postStartDone(c, run);
  if (c.spec.startupProbe) {
    void probeLoop(c, run, ctx, c.spec.startupProbe, 'startup', o);
  } else {
    markStarted(c, run, ctx, o);
  }
}

function postStartDone(c: Container, run: Run): void {
  run.postStartDone.resolve();
  c.firstPostStart.resolve();
}

function markStarted(c: Container, run: Run, ctx: PodContext, o: ProberOptions): void {
  if (run.ended) return;
  c.status.started = true;
  c.firstStarted.resolve();
  if (c.spec.livenessProbe) void probeLoop(c, run, ctx, c.spec.livenessProbe, 'liveness', o);
  if (c.spec.readinessProbe) void probeLoop(c, run, ctx, c.spec.readinessProbe, 'readiness', o);
  else c.status.ready = c.type !== 'init';
  ctx.write();
  o.onStarted?.(c);
}

async function probeLoop(
  c: Container,
  run: Run,
  ctx: PodContext,
  probe: ProbeSpec,
  kind: ProbeKind,
  o: ProberOptions,
): Promise<void> {
  const s = ctx.secondMs;
  const signal = run.abort.signal;
  // Counted from the container's start, not from when this probe became due (worker.go).
  await sleep(ctx.clock, run.startedAt + probe.initialDelaySeconds * s - ctx.clock.now(), signal);
  const state: ProbeStatus = { consecutiveFailures: 0 };
  (c.status.probes ??= {})[kind] = state;
  let successes = 0;
  while (!run.ended && !(c.stopped && kind !== 'readiness')) {
    const r = await c.handle(run, probe, probe.timeoutSeconds * s, ctx);
    if (run.ended) return;
    const wasOk = state.ok;
    if (r.ok) {
      successes++;
      state.ok = true;
      state.consecutiveFailures = 0;
      if (wasOk !== true) ctx.write();
    } else {
      successes = 0;
      const message = `${TITLE[kind]} probe failed: ${r.message ?? ''}`;
      if (state.consecutiveFailures === 0 || state.lastFailure?.message !== message) {
        ctx.log.warn({ container: c.name, probe: kind }, `${c.name}: ${message}`);
      }
      state.ok = false;
      state.consecutiveFailures++;
      state.lastFailure = { message, at: new Date(ctx.clock.now()).toISOString() };
      ctx.events.warning('Unhealthy', message, c.name);
      ctx.write();
    }
    if (kind === 'startup') {
      if (r.ok) return markStarted(c, run, ctx, o);
      if (state.consecutiveFailures >= probe.failureThreshold) {
        void killContainer(c, run, ctx, {
          graceMs: (probe.terminationGracePeriodSeconds ?? o.podGraceSeconds) * s,
          message: `Container ${c.name} failed startup probe, will be restarted`,
        });
        return;
      }
    } else if (kind === 'liveness') {
      if (state.consecutiveFailures >= probe.failureThreshold) {
        void killContainer(c, run, ctx, {
          graceMs: (probe.terminationGracePeriodSeconds ?? o.podGraceSeconds) * s,
          message: `Container ${c.name} failed liveness probe, will be restarted`,
        });
        return;
      }
    } else {
      const ready =
        successes >= probe.successThreshold
          ? true
          : state.consecutiveFailures >= probe.failureThreshold
            ? false
            : c.status.ready;
      if (ready !== c.status.ready) {
        c.status.ready = ready;
        ctx.log.info({ container: c.name, ready }, `${c.name} is ${ready ? '' : 'not '}ready`);
        ctx.write();
      }
    }
    await sleep(ctx.clock, probe.periodSeconds * s, signal);
  }
}
