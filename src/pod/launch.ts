// Starts one run of a container and reports how it ended, as the container runtime does for the
// kubelet: checks what would make the start fail (command not found, no working directory, a
// subPath that leaves its volume) and reports those as StartError; spawns the process in its own
// process group (and cgroups and mount namespace, see isolation.ts); writes its output to the CRI
// log file of this restart; and, when the first process exits, kills what is left of its group
// and records the exit code, signal, and OOMKilled when the kernel's OOM killer ended it.

import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { constants } from 'node:os';
import { type Container, type Exit, type PodContext, Run } from './container.js';
import { CriLogWriter, type Stream } from './cri-log.js';
import { expand } from './env.js';
import { planLaunch, resolveExecutable, subPathEscape } from './isolation.js';
import { killGroup } from './probes.js';
import { procStartTime, type TerminatedState } from './state.js';

export interface LaunchOptions {
  /** The directory of a container's CRI log files. */
  logDir(container: string): string;
  log: { maxBytes: number; maxFiles: number };
  onLine?: ((container: string, stream: Stream, line: string) => void) | undefined;
  /** Called once the process exists: postStart and the probes begin there. */
  onStarted(c: Container, run: Run): void;
}

/** Starts a run of c; resolves with its exit (a StartError when it could not start). */
export function launch(c: Container, ctx: PodContext, o: LaunchOptions): Promise<Exit> {
  const run = new Run(ctx.clock.now());
  c.run = run;
  const command = [...(c.spec.command ?? []), ...c.spec.args].map((s) => expand(s, c.env));
  const cwd = c.spec.workingDir ?? ctx.cwd;
  const logDir = o.logDir(c.name);
  mkdirSync(logDir, { recursive: true });
  const writer = new CriLogWriter(join(logDir, `${c.status.restartCount}.log`), {
    ...o.log,
    onLine: o.onLine ? (stream, line) => o.onLine!(c.name, stream, line) : undefined,
  });

  const insideMount = (p: string) => c.mounts.some((m) => p === m.target || p.startsWith(`${m.target}/`));
  const startError = (message: string): Promise<Exit> => {
    writer.write('stderr', Buffer.from(`${message}\n`));
    writer.close();
    ctx.events.warning('Failed', `Error: ${message}`, c.name);
    return Promise.resolve(recordExit(c, run, ctx, { code: 128, reason: 'StartError', message }));
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
  run.oomBase = c.cgroup?.oomKills() ?? 0;
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
      cwd: direct ? cwd : ctx.cwd,
      env: c.env,
      detached: true, // its own process group (and session), signalled as a whole
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (err) {
    return startError(`cannot start: ${(err as Error).message}`);
  }
  run.child = child;
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
      resolve(recordExit(c, run, ctx, exit));
    };
    child.once('error', (err: NodeJS.ErrnoException) =>
      finish({ code: 128, reason: 'StartError', message: err.message }),
    );
    child.once('exit', (code, signal) => {
      if (signal) {
        const signo = constants.signals[signal] ?? 0;
        const oom = c.cgroup !== undefined && c.cgroup.oomKills() > run.oomBase;
        finish({ code: 128 + signo, signal, reason: oom ? 'OOMKilled' : 'Error' });
      } else {
        // The kernel may kill a child of the container's first process; the container then exits 137 itself.
        const oom = code !== 0 && c.cgroup !== undefined && c.cgroup.oomKills() > run.oomBase;
        finish({ code: code ?? 0, reason: code === 0 ? 'Completed' : oom ? 'OOMKilled' : 'Error' });
      }
    });
  });

  const onSpawned = () => {
    if (run.ended) return; // it failed to start after all ('error' came first)
    c.status.state = 'running';
    c.status.reason = undefined;
    c.status.message = undefined;
    c.status.pid = child.pid;
    c.status.pidStart = child.pid ? procStartTime(child.pid) : undefined;
    c.status.startedAt = new Date(ctx.clock.now()).toISOString();
    // kubectl's "Last State": the run before this one.
    if (c.status.terminated) c.status.lastState = c.status.terminated;
    c.status.terminated = undefined;
    ctx.log.info(
      { container: c.name, pid: child.pid, restart: c.status.restartCount },
      `started ${c.type} container ${c.name}`,
    );
    ctx.events.normal('Started', `Started container ${c.name}`, c.name);
    ctx.write();
    run.nsPid = plan.mountNamespace ? child.pid : undefined;
    o.onStarted(c, run);
  };
  // A pid means the process exists now. Node's 'spawn' event can come later than the process's
  // first output, and a termination in between must already see the container running.
  if (child.pid !== undefined) onSpawned();
  else child.once('spawn', onSpawned);
  return done;
}

function recordExit(c: Container, run: Run, ctx: PodContext, exit: Exit): Exit {
  run.end(); // its hooks, probes and timers stop, and their processes are killed
  const t: TerminatedState = {
    exitCode: exit.code,
    signal: exit.signal,
    reason: exit.reason,
    message: exit.message,
    startedAt: c.status.startedAt,
    finishedAt: new Date(ctx.clock.now()).toISOString(),
  };
  c.status.state = 'terminated';
  c.status.reason = undefined;
  c.status.message = undefined;
  c.status.terminated = t;
  c.status.pid = undefined;
  c.status.pidStart = undefined;
  c.status.ready = false;
  c.status.started = false;
  c.firstPostStart.resolve(); // a run that ended before its postStart returned holds nothing up
  ctx.log.info(
    { container: c.name, exitCode: exit.code, reason: exit.reason },
    `${c.name} exited with ${exit.code} (${exit.reason})`,
  );
  ctx.write();
  return exit;
}
