import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { FakeClock } from '../lib/clock.js';
import { waitFor } from '../lib/wait-for.js';
import { isAlive } from './state.js';
import { containerOf, removeTestDirs, startPod, trapTerm } from './test-support.js';

// Stopping containers: ordered pod termination, the grace period, preStop, and the kubelet's
// minimum 2 s between SIGTERM and SIGKILL. Signals are read from the runner's own log, whose
// records carry the FakeClock's time, so "SIGKILL at 6 s" is asserted without a stopwatch.
after(removeTestDirs);

/** Records "term" on each SIGTERM it sees, and goes on running. */
const STUBBORN = `[sh, -c, "trap 'echo term >> $EV' TERM; echo up >> $EV; while :; do sleep 0.01; done"]`;

const hookPid = (dir: string) => Number(readFileSync(join(dir, 'hook.pid'), 'utf8'));

test('termination: preStop, then SIGTERM to main containers, then sidecars in reverse start order, one SIGTERM each', async () => {
  const clock = new FakeClock();
  const h = startPod(
    `  restartPolicy: Always
  terminationGracePeriodSeconds: 50
  initContainers:
    - name: s1
      restartPolicy: Always
      command: ${trapTerm('s1')}
    - name: s2
      restartPolicy: Always
      command: ${trapTerm('s2')}
      lifecycle:
        preStop: { exec: { command: [sh, -c, "echo s2 prestop >> $EV"] } }
  containers:
    - name: m
      command: ${trapTerm('m', 'sleep 0.1;')}
      lifecycle:
        preStop: { exec: { command: [sh, -c, "echo m prestop >> $EV"] } }
`,
    { clock, second: 1000 },
  );
  await waitFor(() => ['s1 up', 's2 up', 'm up'].every((e) => h.events().includes(e)), { what: 'all up' });
  await h.sup.terminate();
  await h.run;
  assert.equal(clock.now(), h.t0, 'done within the grace period, no timer needed');
  const ev = h.events().filter((e) => !e.endsWith(' up'));
  assert.ok(ev.indexOf('m prestop') < ev.indexOf('m term'), 'preStop before SIGTERM');
  assert.ok(ev.indexOf('m term') < ev.indexOf('s2 term'), 'the main container before the sidecars');
  assert.ok(ev.indexOf('s2 term') < ev.indexOf('s1 term'), 'the last-started sidecar first');
  assert.ok(ev.includes('s2 prestop'));
  for (const name of ['s1', 's2', 'm']) {
    assert.equal(containerOf(h.status(), name).restartCount, 0, `${name} not restarted`);
    assert.deepEqual(h.signals(name, 'SIGTERM'), [0], `${name}: one SIGTERM`);
    assert.deepEqual(h.signals(name, 'SIGKILL'), [], `${name}: no SIGKILL`);
  }
  const killing = (h.status().events ?? []).filter((e) => e.reason === 'Killing').map((e) => e.message);
  assert.deepEqual(killing.sort(), [
    'Stopping container m',
    'Stopping container s1',
    'Stopping container s2',
  ]);
});

test('the grace period bounds shutdown: a container that ignores SIGTERM is SIGKILLed when it ends (on the injected clock)', async () => {
  const clock = new FakeClock();
  const h = startPod(
    `  restartPolicy: Always
  terminationGracePeriodSeconds: 5
  containers:
    - name: stubborn
      command: ${STUBBORN}
`,
    { clock, second: 1000 },
  );
  await waitFor(() => h.events().includes('up'), { what: 'container up' });
  void h.sup.terminate();
  await waitFor(() => h.events().includes('term'), { what: 'SIGTERM seen' });
  await clock.advance(4_999);
  assert.deepEqual(h.signals('stubborn', 'SIGKILL'), []);
  await clock.advance(1);
  await h.run;
  assert.deepEqual(h.signals('stubborn', 'SIGTERM'), [0]);
  assert.deepEqual(h.signals('stubborn', 'SIGKILL'), [5_000]);
  const c = containerOf(h.status(), 'stubborn');
  assert.deepEqual([c.terminated?.signal, c.terminated?.exitCode], ['SIGKILL', 137]);
  assert.ok((h.status().events ?? []).some((e) => e.reason === 'ExceededGracePeriod'));
});

test('regression: a liveness kill whose preStop outlasts the grace period still sends SIGTERM, allows 2 s more before SIGKILL, and kills the hook', async () => {
  const clock = new FakeClock();
  const h = startPod(
    `  restartPolicy: Never
  terminationGracePeriodSeconds: 4
  containers:
    - name: app
      command: ${STUBBORN}
      livenessProbe: { exec: { command: ["false"] }, periodSeconds: 1, failureThreshold: 1 }
      lifecycle:
        preStop: { exec: { command: [sh, -c, "echo $$ > $DIR/hook.pid; echo prestop >> $EV; sleep 30; echo prestop-end >> $EV"] } }
`,
    { clock, second: 1000 },
  );
  await waitFor(() => h.events().includes('prestop'), { what: 'the liveness kill running preStop' });
  const pid = hookPid(h.dir);
  await clock.advance(3_999);
  assert.deepEqual(h.signals('app', 'SIGTERM'), [], 'preStop has the grace period');
  await clock.advance(1);
  await waitFor(() => h.events().includes('term'), { what: 'the container sees SIGTERM at 4 s' });
  await clock.advance(1_999);
  assert.deepEqual(h.signals('app', 'SIGKILL'), [], 'at least 2 s between SIGTERM and SIGKILL');
  await clock.advance(1);
  assert.deepEqual(await h.run, { phase: 'Failed', reason: 'Error' });
  assert.deepEqual(h.signals('app', 'SIGTERM'), [4_000]);
  assert.deepEqual(h.signals('app', 'SIGKILL'), [6_000]);
  await waitFor(() => !isAlive(pid), { what: `the preStop hook (pid ${pid}) to be gone with its container` });
  assert.ok(!h.events().includes('prestop-end'));
});

test('regression: a container whose preStop loses the race with the grace deadline gets one SIGTERM, then SIGKILL 2 s later', async () => {
  const clock = new FakeClock();
  const h = startPod(
    `  restartPolicy: Always
  terminationGracePeriodSeconds: 3
  initContainers:
    - name: side
      restartPolicy: Always
      command: ${trapTerm('side')}
  containers:
    - name: app
      command: ${STUBBORN}
      lifecycle:
        preStop: { exec: { command: [sh, -c, "echo $$ > $DIR/hook.pid; echo prestop >> $EV; sleep 30"] } }
`,
    { clock, second: 1000 },
  );
  await waitFor(() => h.events().includes('up') && h.events().includes('side up'), { what: 'up' });
  void h.sup.terminate();
  await waitFor(() => h.events().includes('prestop'), { what: 'preStop running' });
  const pid = hookPid(h.dir);
  await clock.advance(3_000);
  await waitFor(() => h.events().includes('term'), { what: 'SIGTERM at the deadline' });
  await clock.advance(1_999);
  assert.deepEqual(h.signals('app', 'SIGKILL'), []);
  await clock.advance(1);
  await h.run;
  assert.deepEqual(h.signals('app', 'SIGTERM'), [3_000], 'exactly one SIGTERM');
  assert.deepEqual(h.signals('app', 'SIGKILL'), [5_000]);
  assert.deepEqual(
    h.signals('side', 'SIGTERM'),
    [3_000],
    'the sidecar, whose turn never came, at the deadline',
  );
  await waitFor(() => !isAlive(pid), { what: 'the hook gone' });
});

test('regression: nothing the pod started outlives it — a postStart hook still running when the pod stops is killed', async () => {
  const clock = new FakeClock();
  const h = startPod(
    `  restartPolicy: Always
  containers:
    - name: app
      command: [sh, -c, "trap 'exit 0' TERM; while :; do sleep 0.01; done"]
      lifecycle:
        postStart: { exec: { command: [sh, -c, "echo $$ > $DIR/hook.pid; echo hook >> $EV; sleep 30"] } }
`,
    { clock, second: 1000 },
  );
  await waitFor(() => h.events().includes('hook'), { what: 'postStart running' });
  const pid = hookPid(h.dir);
  await h.sup.terminate();
  await h.run;
  await waitFor(() => !isAlive(pid), { what: `postStart hook ${pid} gone with the pod` });
});

test('edge case: a sidecar whose startup probe never passes still gets SIGTERM when the pod is stopped', async () => {
  const clock = new FakeClock();
  const h = startPod(
    `  restartPolicy: Always
  initContainers:
    - name: side
      restartPolicy: Always
      command: ${trapTerm('side')}
      startupProbe:
        exec: { command: ["false"] }
        periodSeconds: 1
        failureThreshold: 1000
  containers:
    - name: main
      command: [sh, -c, "echo main >> $EV"]
`,
    { clock, second: 1000 },
  );
  await waitFor(() => h.events().includes('side up'), { what: 'sidecar up' });
  await h.sup.terminate();
  await h.run;
  assert.deepEqual(h.events(), ['side up', 'side term']);
  assert.equal(h.status().conditions.initialized, false);
});

test('edge case: a sidecar that exits during shutdown is restarted before it was sent SIGTERM, never after', async () => {
  const clock = new FakeClock();
  const h = startPod(
    `  restartPolicy: Always
  terminationGracePeriodSeconds: 100
  initContainers:
    - name: side
      restartPolicy: Always
      command: [sh, -c, "echo side up >> $EV; trap 'echo side term >> $EV; exit 0' TERM; while [ ! -f $DIR/main-stopping ] || [ -f $DIR/side-crashed ]; do sleep 0.01; done; touch $DIR/side-crashed; echo side crash >> $EV; exit 1"]
  containers:
    - name: main
      command: [sh, -c, "trap 'touch $DIR/main-stopping; while [ $(grep -c \\"side up\\" $EV) -lt 2 ]; do sleep 0.01; done; echo main term >> $EV; exit 0' TERM; echo main up >> $EV; while :; do sleep 0.01; done"]
`,
    { clock, second: 1000 },
  );
  await waitFor(() => h.events().includes('main up'), { what: 'main up' });
  await h.sup.terminate();
  await h.run;
  assert.deepEqual(h.events(), ['side up', 'main up', 'side crash', 'side up', 'main term', 'side term']);
  assert.equal(
    containerOf(h.status(), 'side').restartCount,
    1,
    'restarted once (the crash), not after SIGTERM',
  );
});

test('a preStop httpGet hook is called before the container gets SIGTERM', async () => {
  const calls: string[] = [];
  const server = createServer((req, res) => {
    calls.push(req.url ?? '');
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  try {
    const h = startPod(
      `  restartPolicy: Always
  containers:
    - name: web
      command: [sh, -c, "trap 'echo term >> $EV; exit 0' TERM; echo up >> $EV; while :; do sleep 0.01; done"]
      lifecycle:
        preStop: { httpGet: { path: /shutdown, port: ${port} } }
`,
      { clock: new FakeClock(), second: 1000 },
    );
    await waitFor(() => h.events().includes('up'), { what: 'up' });
    await h.sup.terminate();
    await h.run;
    assert.deepEqual(calls, ['/shutdown']);
    assert.deepEqual(h.events(), ['up', 'term']);
  } finally {
    server.close();
  }
});

test('regression: a liveness kill runs preStop first, as the kubelet does', async () => {
  const h = startPod(`  restartPolicy: Always
  terminationGracePeriodSeconds: 500
  containers:
    - name: app
      command: [sh, -c, "trap 'echo term >> $EV; exit 0' TERM; echo up >> $EV; while :; do sleep 0.01; done"]
      livenessProbe: { exec: { command: [sh, -c, "! grep -q up $EV"] }, periodSeconds: 1, timeoutSeconds: 100, failureThreshold: 1 }
      lifecycle:
        preStop: { exec: { command: [sh, -c, "echo prestop >> $EV"] } }
`);
  await waitFor(() => h.events().includes('term'), { what: 'first liveness kill' });
  await h.sup.terminate();
  await h.run;
  const ev = h.events();
  assert.deepEqual(ev.slice(0, 3), ['up', 'prestop', 'term']);
});
