import assert from 'node:assert/strict';
import { unlinkSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { FakeClock } from '../lib/clock.js';
import { waitFor } from '../lib/wait-for.js';
import { containerOf, IDLE, removeTestDirs, startPod } from './test-support.js';

// Probes and postStart with real processes and real sockets. When a probe ran is asserted on a
// FakeClock: a test HTTP server notes the clock's time of each request it receives, and the
// clock only moves when the test advances it.
after(removeTestDirs);

async function server(
  handler: (req: IncomingMessage) => number,
): Promise<{ port: number; seen: string[]; close: () => void }> {
  const seen: string[] = [];
  const s: Server = createServer((req, res) => {
    seen.push(req.url ?? '');
    res.statusCode = handler(req);
    res.end();
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return { port: (s.address() as AddressInfo).port, seen, close: () => s.close() };
}

async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

test('readiness: not ready until the probe passes successThreshold times; unready after failureThreshold', async () => {
  const h = startPod(`  restartPolicy: Always
  containers:
    - name: web
      command: ${IDLE}
      readinessProbe:
        exec: { command: [sh, -c, "test -f $DIR/ready"] }
        periodSeconds: 1
        timeoutSeconds: 100
        successThreshold: 2
        failureThreshold: 2
`);
  await waitFor(() => containerOf(h.status(), 'web').state === 'running', { what: 'running' });
  assert.equal(containerOf(h.status(), 'web').ready, false);
  assert.equal(h.status().conditions.ready, false);
  writeFileSync(join(h.dir, 'ready'), '');
  await waitFor(() => h.status().conditions.ready, { what: 'pod Ready' });
  unlinkSync(join(h.dir, 'ready'));
  await waitFor(() => !containerOf(h.status(), 'web').ready, { what: 'unready again' });
  assert.equal(containerOf(h.status(), 'web').restartCount, 0, 'readiness never restarts');
  await h.sup.terminate();
  await h.run;
});

test('initialDelaySeconds holds the first probe back, then it runs every periodSeconds (on the injected clock)', async () => {
  const clock = new FakeClock();
  const at: number[] = [];
  const srv = await server(() => {
    at.push(clock.now());
    return 200;
  });
  try {
    const h = startPod(
      `  restartPolicy: Always
  containers:
    - name: web
      command: ${IDLE}
      readinessProbe:
        httpGet: { path: /ready, port: ${srv.port} }
        initialDelaySeconds: 15
        periodSeconds: 2
`,
      { clock, second: 1000 },
    );
    await waitFor(() => containerOf(h.status(), 'web').state === 'running', { what: 'running' });
    await clock.advance(14_999);
    assert.deepEqual(at, [], 'no probe before initialDelaySeconds');
    await clock.advance(1);
    await waitFor(() => containerOf(h.status(), 'web').ready, { what: 'ready' });
    await clock.advance(2_000);
    await waitFor(() => at.length === 2, { what: 'the second probe' });
    assert.deepEqual(
      at.map((t) => t - h.t0),
      [15_000, 17_000],
    );
    await h.sup.terminate();
    await h.run;
  } finally {
    srv.close();
  }
});

test('regression: a liveness probe behind a startup probe counts initialDelaySeconds from the container start, as the kubelet does', async () => {
  const clock = new FakeClock();
  const live: number[] = [];
  let started = false;
  const srv = await server((req) => {
    if (req.url === '/live') live.push(clock.now());
    return req.url === '/startup' && !started ? 503 : 200;
  });
  try {
    const h = startPod(
      `  restartPolicy: Always
  containers:
    - name: app
      command: ${IDLE}
      startupProbe:
        httpGet: { path: /startup, port: ${srv.port} }
        periodSeconds: 1
        failureThreshold: 100
      livenessProbe:
        httpGet: { path: /live, port: ${srv.port} }
        initialDelaySeconds: 5
        periodSeconds: 10
`,
      { clock, second: 1000 },
    );
    const startupFailures = () => containerOf(h.status(), 'app').probes?.startup?.consecutiveFailures ?? 0;
    // The startup probe fails at 0, 1 and 2 s and passes at 3 s.
    await waitFor(() => startupFailures() === 1, { what: 'the first startup probe' });
    for (const n of [2, 3]) {
      await clock.advance(1000);
      await waitFor(() => startupFailures() === n, { what: `startup probe ${n}` });
    }
    started = true;
    await clock.advance(1000);
    await waitFor(() => containerOf(h.status(), 'app').started, { what: 'started at 3 s' });
    await clock.advance(1999);
    assert.deepEqual(live, [], 'not before 5 s from the start');
    await clock.advance(1);
    await waitFor(() => live.length === 1, { what: 'the first liveness probe at 5 s, not 3 + 5 s' });
    assert.deepEqual(
      live.map((t) => t - h.t0),
      [5_000],
    );
    await h.sup.terminate();
    await h.run;
  } finally {
    srv.close();
  }
});

test('liveness failure restarts the container; a startup probe that never passes restarts it too', async () => {
  const h = startPod(`  restartPolicy: Always
  terminationGracePeriodSeconds: 2
  containers:
    - name: live
      command: [sh, -c, "echo live >> $EV; trap 'exit 0' TERM; while :; do sleep 0.01; done"]
      livenessProbe:
        exec: { command: ["false"] }
        periodSeconds: 1
        timeoutSeconds: 100
        failureThreshold: 2
    - name: slow
      command: [sh, -c, "echo slow >> $EV; trap 'exit 0' TERM; while :; do sleep 0.01; done"]
      startupProbe:
        exec: { command: ["false"] }
        periodSeconds: 1
        timeoutSeconds: 100
        failureThreshold: 2
`);
  await waitFor(
    () =>
      h.events().filter((e) => e === 'live').length >= 2 &&
      h.events().filter((e) => e === 'slow').length >= 2,
    { what: 'both restarted' },
  );
  await h.sup.terminate();
  await h.run;
  const s = h.status();
  assert.ok(containerOf(s, 'live').restartCount >= 1);
  assert.ok(containerOf(s, 'slow').restartCount >= 1);
  assert.equal(containerOf(s, 'slow').started, false);
  const messages = (s.events ?? []).map((e) => `${e.reason} ${e.message}`);
  assert.ok(
    messages.includes('Killing Container live failed liveness probe, will be restarted'),
    messages.join('\n'),
  );
  assert.ok(messages.includes('Killing Container slow failed startup probe, will be restarted'));
  assert.ok(
    messages.some((m) => /^Unhealthy Liveness probe failed: command "false" exited with code 1$/.test(m)),
  );
});

test('probe actions: httpGet sends its headers and passes on 2xx/3xx; tcpSocket; an exec probe past timeoutSeconds fails and says so', async () => {
  const clock = new FakeClock();
  const headers: string[] = [];
  const srv = await server((req) => {
    headers.push(`${req.url} ${req.headers['x-probe']} ${req.headers['user-agent']}`);
    return req.url === '/ok' ? 302 : 500;
  });
  try {
    const h = startPod(
      `  restartPolicy: Always
  containers:
    - name: http
      command: ${IDLE}
      readinessProbe:
        httpGet: { path: /ok, port: ${srv.port}, httpHeaders: [{ name: X-Probe, value: yes }] }
    - name: tcp
      command: ${IDLE}
      readinessProbe:
        tcpSocket: { port: ${srv.port} }
    - name: slowexec
      command: ${IDLE}
      readinessProbe:
        exec: { command: [sleep, "30"] }
        timeoutSeconds: 2
`,
      { clock, second: 1000 },
    );
    await waitFor(() => containerOf(h.status(), 'http').ready && containerOf(h.status(), 'tcp').ready, {
      what: 'http and tcp ready',
    });
    assert.match(headers[0]!, /^\/ok yes kube-probe\//);
    await waitFor(() => containerOf(h.status(), 'slowexec').state === 'running', { what: 'slowexec up' });
    await clock.advance(1_999);
    assert.equal(containerOf(h.status(), 'slowexec').probes?.readiness?.lastFailure, undefined);
    await clock.advance(1);
    await waitFor(() => containerOf(h.status(), 'slowexec').probes?.readiness?.lastFailure, {
      what: 'the timeout recorded',
    });
    const c = containerOf(h.status(), 'slowexec');
    assert.equal(c.ready, false);
    assert.equal(
      c.probes?.readiness?.lastFailure?.message,
      'Readiness probe failed: command "sleep 30" timed out after 2s',
    );
    await h.sup.terminate();
    await h.run;
  } finally {
    srv.close();
  }
});

test("regression: named probe ports resolve from the container's ports; a failing probe says why in status and the log", async () => {
  const clock = new FakeClock();
  const srv = await server(() => 200);
  const closed = await closedPort();
  try {
    const h = startPod(
      `  restartPolicy: Always
  containers:
    - name: web
      command: ${IDLE}
      ports: [{ name: http, containerPort: ${srv.port} }]
      readinessProbe: { httpGet: { path: /healthz, port: http } }
      livenessProbe: { tcpSocket: { port: http } }
    - name: down
      command: ${IDLE}
      ports: [{ name: admin, containerPort: ${closed} }]
      readinessProbe: { httpGet: { path: /ready, port: admin } }
`,
      { clock, second: 1000 },
    );
    await waitFor(() => containerOf(h.status(), 'web').ready, { what: 'web ready through port "http"' });
    assert.ok(srv.seen.includes('/healthz'));
    await waitFor(() => containerOf(h.status(), 'down').probes?.readiness?.lastFailure, {
      what: 'the failure',
    });
    const expected = `Readiness probe failed: Get "http://127.0.0.1:${closed}/ready": dial tcp 127.0.0.1:${closed}: connect: connection refused`;
    assert.equal(containerOf(h.status(), 'down').probes?.readiness?.lastFailure?.message, expected);
    assert.ok(
      h.logs.some((l) => l.container === 'down' && l.msg === `down: ${expected}`),
      'the runner logs why',
    );
    const unhealthy = (h.status().events ?? []).find(
      (e) => e.reason === 'Unhealthy' && e.container === 'down',
    );
    assert.deepEqual([unhealthy?.type, unhealthy?.message], ['Warning', expected]);
    await h.sup.terminate();
    await h.run;
  } finally {
    srv.close();
  }
});

test('regression: exec probes of a container with volume mounts run in its workingDir, inside its namespace', async () => {
  const h = startPod(`  restartPolicy: Always
  volumes: [{ name: v, emptyDir: {} }]
  containers:
    - name: app
      workingDir: $MNT/work-x
      command: [sh, -c, "echo ok > ./check; trap 'exit 0' TERM; while :; do sleep 0.01; done"]
      volumeMounts: [{ name: v, mountPath: $MNT/work-x }]
      readinessProbe: { exec: { command: [sh, -c, "test -f ./check"] }, periodSeconds: 1, timeoutSeconds: 100 }
`);
  await waitFor(() => containerOf(h.status(), 'app').ready, {
    what: 'ready through a relative path in its workingDir',
  });
  await h.sup.terminate();
  await h.run;
});

test('a failed postStart hook stops the container (FailedPostStartHook) and the restart policy decides', async () => {
  const clock = new FakeClock();
  const h = startPod(
    `  restartPolicy: Never
  containers:
    - name: app
      command: [sh, -c, "trap 'echo term >> $EV; exit 0' TERM; echo up >> $EV; while :; do sleep 0.01; done"]
      lifecycle:
        postStart: { exec: { command: [sh, -c, "until grep -q up $EV; do sleep 0.01; done; echo cannot >&2; exit 1"] } }
`,
    { clock, second: 1000 },
  );
  assert.equal((await h.run).phase, 'Succeeded', 'it exited 0 on SIGTERM');
  const s = h.status();
  const reasons = (s.events ?? []).map((e) => `${e.type} ${e.reason} ${e.message}`);
  assert.ok(reasons.includes('Warning FailedPostStartHook PostStartHook failed: cannot'), reasons.join('\n'));
  assert.ok(reasons.includes('Normal Killing Container app failed its postStart hook, will be restarted'));
  assert.equal(containerOf(s, 'app').started, false);
});
