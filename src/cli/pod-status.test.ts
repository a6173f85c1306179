import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { cli, podCli } from './pod-cli-harness.js';

// `pillion pod status`, `describe` and the state directory through the real CLI. Each command is
// a process of its own, as a person's would be; pods here are Jobs run in the foreground, so
// nothing needs waiting for. (Running pods through the CLI: pod.test.ts.)
const { root, pillion, manifest, remove } = podCli();
after(remove);

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
