import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { waitFor } from '../lib/wait-for.js';
import { findPods } from '../pod/index.js';
import { cli, podCli } from './pod-cli-harness.js';

const { root, state, pillion, manifest, remove } = podCli();
after(remove);

// Pods run through the real CLI, in the foreground and detached: exit codes, signals, back-off,
// pid reuse. (A detached pod driven from other processes: pod-detach.test.ts.)

test('up in the foreground streams prefixed logs and exits with the outcome: 0 Succeeded, 1 Failed', () => {
  const ok = manifest(
    'ok',
    'apiVersion: batch/v1\nkind: Job\nmetadata: { name: okjob }\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{ name: work, command: [echo, done] }]\n',
  );
  const r = pillion('pod', 'up', ok);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'work | done\n');
  const bad = manifest(
    'bad',
    'apiVersion: v1\nkind: Pod\nmetadata: { name: badpod }\nspec:\n  restartPolicy: Never\n  containers: [{ name: work, command: [sh, -c, "exit 7"] }]\n',
  );
  const f = pillion('pod', 'up', bad);
  assert.equal(f.status, 1);
  assert.match(
    pillion('pod', 'status', 'badpod').stdout,
    /work\s+main\s+Terminated \(Error\)\s+false\s+0\s+-\s+7\s+Error/,
  );
});

test('regression: the runner stays up through a crash-loop back-off with no container process alive', async () => {
  const file = manifest(
    'crashy',
    'apiVersion: v1\nkind: Pod\nmetadata: { name: crashy }\nspec:\n  containers: [{ name: c, command: [sh, -c, "echo crash; exit 3"] }]\n',
  );
  assert.equal(pillion('pod', 'up', file, '--detach', '--backoff-base', '700ms').status, 0);
  await waitFor(() => findPods(state, 'crashy')[0]?.status.containers[0]?.reason === 'CrashLoopBackOff', {
    what: 'CrashLoopBackOff',
    timeoutMs: 30_000,
  });
  // The second restart comes after a back-off wait with no process alive; the third after another.
  await waitFor(() => (findPods(state, 'crashy')[0]?.status.containers[0]?.restartCount ?? 0) >= 3, {
    what: 'three restarts',
    timeoutMs: 30_000,
  });
  assert.equal(findPods(state, 'crashy')[0]!.alive, true);
  assert.doesNotMatch(pillion('pod', 'status', 'crashy').stdout, /Unknown/);
  const log = readFileSync(
    join(
      state,
      'run',
      readdirSync(join(state, 'run')).find((d) => d.includes('_crashy_'))!,
      'supervisor.log',
    ),
    'utf8',
  );
  assert.doesNotMatch(log, /c \| crash/, 'a detached runner does not copy container output into its own log');
  assert.equal(pillion('pod', 'down', 'crashy').status, 0);
});

test('regression: SIGHUP (a closed terminal) stops a foreground pod in order; a closed stdout does not orphan it', async () => {
  const file = manifest(
    'hup',
    `apiVersion: v1\nkind: Pod\nmetadata: { name: hup }\nspec:\n  containers:\n    - name: c\n      command: [sh, -c, "echo $$ > $DIR/hup.pid; trap 'exit 0' TERM; while :; do echo tick; sleep 0.02; done"]\n`,
  );
  const up = spawn(process.execPath, [cli, 'pod', 'up', file, '--state-dir', state], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  await new Promise<void>((resolve) => up.stdout.once('data', () => resolve()));
  up.stdout.destroy(); // the reader goes away: writes now fail with EPIPE
  const logFile = () => {
    const id = readdirSync(join(state, 'pods')).find((d) => d.includes('_hup_'));
    return id ? join(state, 'pods', id, 'c', '0.log') : '';
  };
  const ticks = () => (existsSync(logFile()) ? readFileSync(logFile(), 'utf8').split('\n').length : 0);
  const before = ticks();
  await waitFor(() => ticks() >= before + 10, {
    what: 'the pod to go on after its stdout closed',
    timeoutMs: 30_000,
  });
  assert.equal(up.exitCode, null, 'still running after its stdout closed');
  const pid = Number(readFileSync(join(root, 'hup.pid'), 'utf8'));
  up.kill('SIGHUP');
  const code = await new Promise((r) => up.on('exit', r));
  assert.equal(code, 130);
  await waitFor(
    () => {
      try {
        process.kill(pid, 0);
        return false;
      } catch {
        return true;
      }
    },
    { what: 'the container to be gone', timeoutMs: 30_000 },
  );
});

test('regression: down never signals a pid that a finished pod once had (pids are reused)', async () => {
  const bystander = spawn('sleep', ['30']);
  try {
    const file = manifest(
      'done',
      'apiVersion: v1\nkind: Pod\nmetadata: { name: donepod }\nspec:\n  restartPolicy: Never\n  containers: [{ name: c, command: ["true"] }]\n',
    );
    assert.equal(pillion('pod', 'up', file).status, 0);
    const dir = join(
      state,
      'run',
      readdirSync(join(state, 'run')).find((d) => d.includes('_donepod_'))!,
    );
    const status = JSON.parse(readFileSync(join(dir, 'status.json'), 'utf8'));
    status.supervisorPid = bystander.pid; // as if the runner's pid had been given to another process
    status.containers[0].pid = bystander.pid;
    writeFileSync(join(dir, 'status.json'), JSON.stringify(status));
    assert.match(pillion('pod', 'list').stdout, /donepod\s+0\/1\s+Completed/);
    assert.equal(pillion('pod', 'down', 'donepod').status, 0);
    assert.equal(bystander.exitCode, null);
    assert.equal(bystander.signalCode, null, 'the bystander was not signalled');
  } finally {
    bystander.kill();
  }
});
