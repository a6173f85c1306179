import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { waitFor } from '../lib/wait-for.js';

const cli = new URL('../../dist/cli/main.js', import.meta.url).pathname;
const root = mkdtempSync(join(tmpdir(), 'pillion-podcli-'));
const state = join(root, 'state');
after(() => {
  spawnSync(process.execPath, [cli, 'pod', 'down', 'svc', '--state-dir', state]);
  rmSync(root, { recursive: true, force: true });
});

const pillion = (...args: string[]) =>
  spawnSync(process.execPath, [cli, ...args, '--state-dir', state], {
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1' },
  });

function manifest(name: string, body: string): string {
  const p = join(root, `${name}.yaml`);
  writeFileSync(p, body.replaceAll('$DIR', root));
  return p;
}

test('up --detach runs in the background; status, logs and down work from other processes', async () => {
  const file = manifest(
    'svc',
    `apiVersion: v1
kind: Pod
metadata: { name: svc }
spec:
  terminationGracePeriodSeconds: 5
  nodeSelector: { disk: ssd }
  initContainers:
    - name: side
      restartPolicy: Always
      command: [sh, -c, "echo side says hi; trap 'echo side-term >> $DIR/order; exit 0' TERM; while :; do sleep 0.05; done"]
  containers:
    - name: app
      command: [sh, -c, "echo run $(cat $DIR/runs 2>/dev/null); echo x >> $DIR/runs; [ $(wc -l < $DIR/runs) -ge 2 ] || exit 4; trap 'echo app-term >> $DIR/order; exit 0' TERM; while :; do sleep 0.05; done"]
`,
  );
  const up = pillion('pod', 'up', file, '--detach', '--backoff-base', '100ms');
  assert.equal(up.status, 0, up.stderr);
  assert.match(up.stdout, /^pod\/svc started in the background/);
  assert.match(up.stderr, /PILLION_ERR_POD_UNSUPPORTED_FIELD spec\.nodeSelector/);

  await waitFor(() => /svc\s+2\/2\s+Running/.test(pillion('pod', 'status', 'svc').stdout), {
    what: 'Running 2/2',
    timeoutMs: 15_000,
  });
  const status = pillion('pod', 'status', 'svc').stdout;
  assert.match(
    status,
    /^NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE\nsvc\s+2\/2\s+Running\s+1 \(\d+s ago\)\s+\d+s\n/,
    status,
  );
  assert.match(status, /\napp\s+main\s+Running\s+true\s+1 \(\d+s ago\)\s+\S+\s+4\s+Error\n/, status);
  assert.match(status, /\nside\s+sidecar\s+Running\s+true\s+0 /);
  assert.match(
    pillion('pod', 'status', 'svc', '-o', 'wide').stdout,
    /^NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE\s+IP\s+NODE\s+KIND\s+FILE\nsvc\s+2\/2\s+Running\s+1 \(\d+s ago\)\s+\d+s\s+127\.0\.0\.1\s+\S+\s+Pod\s+\S+svc\.yaml\n/,
  );
  assert.match(pillion('pod', 'list').stdout, /default\s+svc\s+2\/2\s+Running\s+1 \(/);
  const yaml = pillion('pod', 'status', 'svc', '-o', 'yaml').stdout;
  assert.match(yaml, /^- name: svc\n/);
  assert.match(yaml, /\n {2}runnerAlive: true\n/);

  const again = pillion('pod', 'up', file);
  assert.equal(again.status, 1);
  assert.match(again.stderr, /PILLION_ERR_POD_ALREADY_RUNNING/);

  assert.equal(pillion('pod', 'logs', 'svc', 'app').stdout, 'run x\n');
  assert.equal(pillion('pod', 'logs', 'svc', 'app', '--previous').stdout, 'run\n');
  const side = pillion('pod', 'logs', 'svc', 'side', '--timestamps');
  assert.match(side.stdout, /^\d{4}-\d\d-\d\dT\S+Z side says hi\n$/);
  const dflt = pillion('pod', 'logs', 'svc');
  assert.match(dflt.stderr, /Defaulted container "app" out of: side, app/);

  // -f follows until the pod ends
  const follow = spawn(process.execPath, [cli, 'pod', 'logs', 'svc', 'app', '-f', '--state-dir', state]);
  let followed = '';
  follow.stdout.on('data', (b) => {
    followed += b;
  });
  await waitFor(() => followed.includes('run x'), { what: 'follow prints existing lines' });

  const down = pillion('pod', 'down', 'svc');
  assert.equal(down.status, 0, down.stderr);
  assert.equal(down.stdout, 'pod/svc deleted\n');
  assert.deepEqual(readFileSync(join(root, 'order'), 'utf8').trim().split('\n'), ['app-term', 'side-term']);
  await new Promise((r) => follow.on('exit', r));
  assert.match(pillion('pod', 'status', 'svc').stderr, /PILLION_ERR_POD_NOT_FOUND/);
});

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

test('a manifest with errors is refused with line:col before anything starts', () => {
  const file = manifest(
    'broken',
    'apiVersion: v1\nkind: Pod\nmetadata: { name: broken }\nspec:\n  containers:\n    - name: web\n      image: nginx\n',
  );
  const r = pillion('pod', 'up', file);
  assert.equal(r.status, 1);
  assert.match(
    r.stderr,
    new RegExp(
      `${file.replaceAll('/', '\\/')}:6:7 PILLION_ERR_POD_NO_COMMAND spec\\.containers\\[0\\]: container "web" has no command`,
    ),
  );
  assert.match(pillion('pod', 'status', 'broken').stderr, /PILLION_ERR_POD_NOT_FOUND/);
});

test('regression: up refuses a misspelt field with a did-you-mean; --strict=false runs it with a warning', () => {
  const file = manifest(
    'typo',
    'apiVersion: v1\nkind: Pod\nmetadata: { name: typo }\nspec:\n  restartPolicy: Never\n  containers:\n    - name: web\n      command: ["true"]\n      livenesProbe: { exec: { command: ["true"] } }\n',
  );
  const strict = pillion('pod', 'up', file);
  assert.equal(strict.status, 1);
  assert.match(
    strict.stderr,
    /typo\.yaml:9:7 PILLION_ERR_CONFIG_UNKNOWN_KEY spec\.containers\[0\]\.livenesProbe: unknown field \(did you mean "livenessProbe"\?\)/,
  );
  const lax = pillion('pod', 'up', file, '--strict=false');
  assert.equal(lax.status, 0, lax.stderr);
  assert.match(
    lax.stderr,
    /warning: .*livenesProbe: unknown field, ignored \(did you mean "livenessProbe"\?\)/,
  );
});

test('regression: the runner stays up through a crash-loop back-off with no container process alive', async () => {
  const file = manifest(
    'crashy',
    'apiVersion: v1\nkind: Pod\nmetadata: { name: crashy }\nspec:\n  containers: [{ name: c, command: [sh, -c, "echo crash; exit 3"] }]\n',
  );
  assert.equal(pillion('pod', 'up', file, '--detach', '--backoff-base', '700ms').status, 0);
  await waitFor(() => /CrashLoopBackOff/.test(pillion('pod', 'status', 'crashy').stdout), {
    what: 'CrashLoopBackOff',
  });
  // The second restart comes after a back-off wait with no process alive; the third after another.
  const json = () =>
    JSON.parse(pillion('pod', 'status', 'crashy', '-o', 'json').stdout) as {
      runnerAlive: boolean;
      containers: { restartCount: number }[];
    }[];
  await waitFor(() => json()[0]!.containers[0]!.restartCount >= 3, { what: 'three restarts' });
  assert.equal(json()[0]!.runnerAlive, true);
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
  await waitFor(() => ticks() >= before + 10, { what: 'the pod to go on after its stdout closed' });
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
    { what: 'the container to be gone' },
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

test('status without a name prints one table of all pods, as kubectl get pods; -A adds their namespaces', () => {
  const dir = join(root, 'table-state');
  const run = (...args: string[]) =>
    spawnSync(process.execPath, [cli, ...args, '--state-dir', dir], { encoding: 'utf8' });
  const job = (name: string, ns: string, cmd: string) =>
    manifest(
      name,
      `apiVersion: batch/v1\nkind: Job\nmetadata: { name: ${name}, namespace: ${ns} }\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{ name: work, command: [sh, -c, "${cmd}"] }]\n`,
    );
  assert.equal(run('pod', 'up', job('done1', 'default', 'true')).status, 0);
  assert.equal(run('pod', 'up', job('fail1', 'default', 'exit 3')).status, 1);
  assert.equal(run('pod', 'up', job('other1', 'team', 'true')).status, 0);
  const table = run('pod', 'status').stdout;
  const lines = table.trimEnd().split('\n');
  assert.match(lines[0]!, /^NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE$/);
  assert.deepEqual(
    lines
      .slice(1)
      .map((l) => l.split(/\s+/).slice(0, 4).join(' '))
      .sort(),
    ['done1 0/1 Completed 0', 'fail1 0/1 Error 0'],
  );
  const all = run('pod', 'status', '-A').stdout.trimEnd().split('\n');
  assert.match(all[0]!, /^NAMESPACE\s+NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE$/);
  assert.ok(
    all.some((l) => /^team\s+other1\s+0\/1\s+Completed\s+0\s+\d+s$/.test(l)),
    all.join('\n'),
  );
  assert.equal(run('pod', 'status', '-n', 'nothing-here').stdout, 'No pods in namespace nothing-here.\n');
});

test('regression: PILLION_ERR_POD_NOT_FOUND names the state directory it looked in and how to choose another; an empty PILLION_STATE_DIR is an error', () => {
  const env: Record<string, string | undefined> = { ...process.env, NO_COLOR: '1', HOME: join(root, 'home') };
  delete env.PILLION_STATE_DIR;
  delete env.XDG_STATE_HOME;
  const run = (extra: Record<string, string>, ...args: string[]) =>
    spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: { ...env, ...extra } });
  const dflt = run({}, 'pod', 'logs', 'nope');
  assert.equal(dflt.status, 1);
  assert.equal(
    dflt.stderr,
    `PILLION_ERR_POD_NOT_FOUND no pod "nope" in ${join(root, 'home', '.local', 'state', 'pillion')} (the default state directory): it has no pods; a pod started by another user or with another state directory is found with --state-dir DIR or PILLION_STATE_DIR=DIR\n`,
  );
  const file = manifest(
    'found',
    'apiVersion: v1\nkind: Pod\nmetadata: { name: findme }\nspec:\n  restartPolicy: Never\n  containers: [{ name: c, command: ["true"] }]\n',
  );
  const dir = join(root, 'found-state');
  assert.equal(run({}, 'pod', 'up', file, '--state-dir', dir).status, 0);
  assert.match(
    run({ PILLION_STATE_DIR: dir }, 'pod', 'status', 'findm').stderr,
    new RegExp(
      `^PILLION_ERR_POD_NOT_FOUND no pod "findm" in ${dir} \\(from \\$PILLION_STATE_DIR\\): did you mean "findme"\\? `,
    ),
  );
  assert.match(
    run({}, 'pod', 'describe', 'other', '--state-dir', dir).stderr,
    / \(given with --state-dir\): pods there: findme; /,
  );
  const empty = run({ PILLION_STATE_DIR: '' }, 'pod', 'status');
  assert.equal(empty.status, 1);
  assert.match(
    empty.stderr,
    /^PILLION_ERR_STATE_DIR_EMPTY PILLION_STATE_DIR is set but empty: that names no directory/,
  );
  assert.equal(empty.stdout, '');
});

test("describe shows containers with state, last state, exit code and restarts, and the pod's events", () => {
  const file = manifest(
    'desc',
    `apiVersion: v1
kind: Pod
metadata: { name: desc }
spec:
  restartPolicy: OnFailure
  containers:
    - name: app
      image: example/app:1
      command: [sh, -c, "[ -f $DIR/desc-ran ] && exit 0; touch $DIR/desc-ran; exit 5"]
`,
  );
  assert.equal(pillion('pod', 'up', file).status, 0);
  const text = pillion('pod', 'describe', 'desc').stdout;
  for (const line of [
    /^Status: +Succeeded$/m,
    /^ {4}Image: +example\/app:1 \(not pulled: the command runs on this host\)$/m,
    /^ {4}State: +Terminated\n {6}Reason: +Completed\n {6}Exit Code: +0$/m,
    /^ {4}Last State: +Terminated\n {6}Reason: +Error\n {6}Exit Code: +5$/m,
    /^ {4}Restart Count: +1 \(\d+s ago\)$/m,
    /^ {2}Normal +Started +\d+s \(x2 over \d+s\) +pillion \(app\) +Started container app$/m,
    /^ {2}Normal +Completed +\d+s +pillion +Pod completed: every main container exited 0$/m,
  ]) {
    assert.match(text, line, text);
  }
});

test('regression: the demo (npm start) keeps its pod in the default state directory and names it, with the exact commands', async () => {
  const demo = (await import(new URL('../../examples/legacy-orders/demo.mjs', import.meta.url).href)) as {
    demoPlan: (env: Record<string, string>) => { stateDir: string; args: string[]; banner: string };
  };
  const plan = demo.demoPlan({ HOME: '/home/ann' });
  assert.equal(plan.stateDir, '/home/ann/.local/state/pillion');
  assert.ok(!plan.args.includes('--state-dir'), 'the pod goes where every pod command looks by default');
  assert.match(
    plan.banner,
    /The pod's state and container logs: \/home\/ann\/\.local\/state\/pillion \(the default state directory of this user\)/,
  );
  assert.match(plan.banner, /\n {4}npx pillion pod status legacy-orders +its containers/);
  const sudo = demo.demoPlan({ HOME: '/root', SUDO_USER: 'ann' });
  assert.match(sudo.banner, /\/root\/\.local\/state\/pillion \(the default state directory of root\)/);
  assert.match(sudo.banner, /\n {4}sudo npx pillion pod describe legacy-orders /);
  const env = demo.demoPlan({ HOME: '/h', PILLION_STATE_DIR: '/srv/pods' });
  assert.match(
    env.banner,
    /\/srv\/pods \(from \$PILLION_STATE_DIR: the other terminal needs PILLION_STATE_DIR=\/srv\/pods too\)/,
  );
  assert.throws(
    () => demo.demoPlan({ HOME: '/h', PILLION_STATE_DIR: '' }),
    /PILLION_STATE_DIR is set but empty/,
  );
});
