// Stopping containers, as the kubelet's killContainer does it (kuberuntime_container.go):
//   1. the preStop hook runs, for at most the grace period;
//   2. then SIGTERM, once per run, however many reasons there are to stop it;
//   3. then SIGKILL when the grace period is over — but never sooner than 2 s after the SIGTERM
//      (minimumGracePeriodInSeconds), so a preStop that used up the grace period still leaves the
//      process its 2 s to exit on SIGTERM.
// A hook that is still running when its container exits is killed with it (see container.ts).
//
// Pod termination (KEP-753, pod-termination docs) runs that for every container at once under one
// grace period: the preStop hooks of all running containers start together; each main container
// gets SIGTERM when its own preStop is done; sidecars wait for their turn — after the last main
// container has exited, the last-started sidecar, then each earlier one once the one after it has
// exited. When the grace period runs out, whatever has not had its SIGTERM gets it then.

import type { Container, PodContext, Run } from './container.js';
import { killGroup } from './probes.js';

const MIN_GRACE_SECONDS = 2;

/**
 * Starts the run's preStop hook, or returns the one already running (a liveness kill and the
 * pod's termination share it). Resolves when it returns; it may outlive `graceMs`, callers race it.
 */
export function startPreStop(c: Container, run: Run, ctx: PodContext, graceMs: number): Promise<void> {
  const hook = c.spec.lifecycle?.preStop;
  if (!hook || graceMs <= 0 || run.ended) return Promise.resolve();
  run.preStop ??= c.handle(run, hook, graceMs, ctx).then((r) => {
    if (r.ok || run.ended) return;
    ctx.log.warn({ container: c.name, message: r.message }, `preStop hook of ${c.name} failed`);
    ctx.events.warning('FailedPreStopHook', `PreStop hook failed: ${r.message ?? ''}`, c.name);
  });
  return run.preStop;
}

/**
 * Sends SIGTERM to the run (once) and arms SIGKILL for when the grace period ends at `deadlineAt`,
 * or 2 s after the SIGTERM if that is later.
 */
export function sendTerm(c: Container, run: Run, ctx: PodContext, deadlineAt: number): void {
  if (run.ended) return;
  const now = ctx.clock.now();
  if (run.termAt === undefined) {
    run.termAt = now;
    ctx.log.info({ container: c.name, signal: 'SIGTERM' }, `SIGTERM to ${c.name}`);
    killGroup(run.pid, 'SIGTERM');
  }
  const killIn = Math.max(deadlineAt - now, run.termAt + MIN_GRACE_SECONDS * ctx.secondMs - now);
  run.timer(ctx.clock, () => sendKill(c, run, ctx), killIn);
}

function sendKill(c: Container, run: Run, ctx: PodContext): void {
  if (run.ended) return;
  ctx.log.warn(
    { container: c.name, signal: 'SIGKILL' },
    `${c.name} did not exit within its grace period: SIGKILL`,
  );
  ctx.events.warning(
    'ExceededGracePeriod',
    `Container ${c.name} did not stop within its grace period and was killed`,
    c.name,
  );
  killGroup(run.pid, 'SIGKILL');
  run.killProcs();
}

/**
 * Stops one run because a probe or a hook says so (the restart policy decides what follows):
 * preStop within the grace period, then SIGTERM, then SIGKILL.
 */
export async function killContainer(
  c: Container,
  run: Run,
  ctx: PodContext,
  opts: { graceMs: number; message: string },
): Promise<void> {
  if (run.ended || run.termAt !== undefined || run.preStop) return; // already being stopped
  ctx.log.warn({ container: c.name }, opts.message);
  ctx.events.normal('Killing', opts.message, c.name);
  const deadlineAt = ctx.clock.now() + opts.graceMs;
  const hook = startPreStop(c, run, ctx, opts.graceMs);
  await Promise.race([hook, graceOver(run, ctx, opts.graceMs)]);
  sendTerm(c, run, ctx, deadlineAt);
}

function graceOver(run: Run, ctx: PodContext, ms: number): Promise<void> {
  return new Promise((resolve) => run.timer(ctx.clock, resolve, ms));
}

/** Shuts the pod's containers down in order within one grace period; resolves when all have exited. */
export async function terminateContainers(
  p: { inits: readonly Container[]; mains: readonly Container[]; graceMs: number },
  ctx: PodContext,
): Promise<void> {
  const { clock } = ctx;
  const all = [...p.inits, ...p.mains];
  const deadlineAt = clock.now() + p.graceMs;
  let expired = false;
  const deadline = new Promise<void>((resolve) =>
    clock.setTimeout(() => {
      expired = true;
      resolve();
    }, p.graceMs),
  );
  const stop = (c: Container) => {
    c.stopped = true;
    c.wake?.(); // cut short a back-off wait
    const run = c.live;
    if (run) sendTerm(c, run, ctx, deadlineAt);
  };

  // Every running container's preStop starts now, inside the one grace period.
  const preStops = new Map<Container, Promise<void>>();
  for (const c of all) {
    const run = c.live;
    if (!run) continue;
    ctx.events.normal('Killing', `Stopping container ${c.name}`, c.name);
    preStops.set(c, Promise.race([startPreStop(c, run, ctx, p.graceMs), deadline]));
  }

  // Main (and regular init) containers: SIGTERM as soon as their own preStop is done.
  const regular = all.filter((c) => c.type !== 'sidecar');
  for (const c of regular) {
    c.stopped = true; // none of them starts again
    c.wake?.();
  }
  await Promise.race([
    Promise.all(
      regular.map(async (c) => {
        await preStops.get(c);
        stop(c);
        await c.loop;
      }),
    ),
    deadline,
  ]);

  // Sidecars, last started first, each once the one after it has exited (or the time is up).
  for (const c of p.inits.filter((x) => x.type === 'sidecar').reverse()) {
    await Promise.race([preStops.get(c), deadline]);
    stop(c);
    if (!expired) await Promise.race([c.loop, deadline]);
  }
  await Promise.all(all.map((c) => c.loop));
}
