import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import pino from 'pino';
import { waitFor } from '../lib/wait-for.js';
import { parseManifest } from './manifest.js';
import { isAlive, PodDirs, type PodStatus } from './state.js';
import { Supervisor } from './supervisor.js';

// Each test runs a real pod of small shell processes. Kubernetes seconds are shortened to
// SECOND ms, so probe periods and grace periods take milliseconds. Containers append what they
// do to an events file ($EV) so order can be asserted.
const SECOND = 20;
const silent = pino({ level: 'silent' });
const roots: string[] = [];
after(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

interface Harness {
  sup: Supervisor;
  run: Promise<{ phase: string; reason?: string | undefined }>;
  dir: string;
  events: () => string[];
  status: () => PodStatus;
  lines: string[];
}

function start(
  spec: string,
  opts: {
    second?: number;
    backoff?: { baseMs: number; capMs: number; resetAfterMs: number };
    extraDocs?: string;
  } = {},
): Harness {
  const dir = mkdtempSync(join(tmpdir(), 'pillion-pod-'));
  roots.push(dir);
  const ev = join(dir, 'events');
  writeFileSync(ev, '');
  const text = `${opts.extraDocs ?? ''}apiVersion: v1
kind: Pod
metadata:
  name: t
  labels: { app: t }
spec:
${spec.replaceAll('$EV', ev).replaceAll('$DIR', dir)}`;
  writeFileSync(join(dir, 'pod.yaml'), text);
  const r = parseManifest(text, join(dir, 'pod.yaml'));
  assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.errors, null, 1));
  const dirs = new PodDirs(join(dir, 'state'), r.manifest);
  const lines: string[] = [];
  const sup = new Supervisor({
    manifest: r.manifest,
    dirs,
    hostEnv: process.env,
    logger: silent,
    secondMs: opts.second ?? SECOND,
    backoff: opts.backoff ?? { baseMs: 50, capMs: 200, resetAfterMs: 60_000 },
    onLine: (c, _s, l) => lines.push(`${c}: ${l}`),
  });
  const run = sup.run();
  return {
    sup,
    run,
    dir,
    lines,
    events: () => readFileSync(ev, 'utf8').split('\n').filter(Boolean),
    status: () => JSON.parse(readFileSync(dirs.statusFile, 'utf8')) as PodStatus,
  };
}

// A container that idles until SIGTERM, then exits 0.
const IDLE = `[sh, -c, "trap 'exit 0' TERM; while :; do sleep 0.01; done"]`;
const container = (s: PodStatus, name: string) => s.containers.find((c) => c.name === name)!;
const trapTerm = (name: string, extra = '') =>
  `[sh, -c, "trap 'echo ${name} term >> $EV; ${extra} exit 0' TERM; echo ${name} up >> $EV; while :; do sleep 0.01; done"]`;

test('init containers run in order; a sidecar gates the next one until its startup probe passes; mains start together', async () => {
  const h = start(`  restartPolicy: Never
  initContainers:
    - name: init1
      command: [sh, -c, "echo init1 >> $EV"]
    - name: side
      restartPolicy: Always
      command: [sh, -c, "echo side-start >> $EV; sleep 0.2; echo side-ready >> $EV; touch $DIR/side-ready; trap 'exit 0' TERM; while :; do sleep 0.01; done"]
      startupProbe:
        exec: { command: [sh, -c, "test -f $DIR/side-ready"] }
        periodSeconds: 1
        failureThreshold: 100
    - name: init2
      command: [sh, -c, "echo init2 >> $EV"]
  containers:
    - name: a
      command: [sh, -c, "echo a >> $EV"]
    - name: b
      command: [sh, -c, "echo b >> $EV"]
`);
  const out = await h.run;
  assert.equal(out.phase, 'Succeeded');
  const ev = h.events();
  assert.deepEqual(ev.slice(0, 4), ['init1', 'side-start', 'side-ready', 'init2']);
  assert.deepEqual(ev.slice(4).sort(), ['a', 'b']);
  const s = h.status();
  assert.equal(s.conditions.initialized, true);
  assert.equal(
    container(s, 'side').terminated?.reason,
    'Completed',
    'the sidecar was stopped after the mains completed',
  );
});

test('a failing init container fails the pod under restartPolicy Never; main containers never start', async () => {
  const h = start(`  restartPolicy: Never
  initContainers:
    - name: init
      command: [sh, -c, "echo init >> $EV; exit 3"]
  containers:
    - name: main
      command: [sh, -c, "echo main >> $EV"]
`);
  const out = await h.run;
  assert.deepEqual(out, { phase: 'Failed', reason: 'InitContainerFailed' });
  assert.deepEqual(h.events(), ['init']);
  const s = h.status();
  assert.equal(container(s, 'init').terminated?.exitCode, 3);
  assert.equal(container(s, 'main').state, 'waiting');
});

test('under OnFailure a failing init container is retried until it succeeds', async () => {
  const h = start(`  restartPolicy: OnFailure
  initContainers:
    - name: init
      command: [sh, -c, "echo try >> $EV; [ -f $DIR/second ] || { touch $DIR/second; exit 1; }"]
  containers:
    - name: main
      command: [sh, -c, "echo main >> $EV"]
`);
  assert.equal((await h.run).phase, 'Succeeded');
  assert.deepEqual(h.events(), ['try', 'try', 'main']);
  assert.equal(container(h.status(), 'init').restartCount, 1);
});

test('restartPolicy Never: a failed main container is not restarted and the pod Failed', async () => {
  const h = start(`  restartPolicy: Never
  containers:
    - name: main
      command: [sh, -c, "echo run >> $EV; exit 2"]
`);
  assert.deepEqual(await h.run, { phase: 'Failed', reason: 'Error' });
  assert.deepEqual(h.events(), ['run']);
  const c = container(h.status(), 'main');
  assert.deepEqual([c.restartCount, c.terminated?.exitCode, c.terminated?.reason], [0, 2, 'Error']);
});

test('restartPolicy OnFailure: restarted after a failure, not after success', async () => {
  const h = start(`  restartPolicy: OnFailure
  containers:
    - name: main
      command: [sh, -c, "echo run >> $EV; [ -f $DIR/m ] || { touch $DIR/m; exit 1; }"]
`);
  assert.equal((await h.run).phase, 'Succeeded');
  assert.deepEqual(h.events(), ['run', 'run']);
  const c = container(h.status(), 'main');
  assert.equal(c.restartCount, 1);
  assert.equal(c.lastState?.exitCode, 1, 'kubectl\'s "Last State" is the failed run');
});

test('restartPolicy Always: restarted even after exit 0, with the crash-loop back-off between restarts', async () => {
  const h = start(
    `  restartPolicy: Always
  containers:
    - name: main
      command: [sh, -c, "date +%s%N >> $EV"]
`,
    { backoff: { baseMs: 100, capMs: 200, resetAfterMs: 60_000 } },
  );
  await waitFor(() => h.events().length >= 5, { what: 'five runs' });
  await h.sup.terminate();
  await h.run;
  const t = h
    .events()
    .slice(0, 5)
    .map((x) => Number(BigInt(x) / 1_000_000n));
  const gaps = t.slice(1).map((v, i) => v - t[i]!);
  // immediate, then base, 2×base, capped: 0, 100, 200, 200 ms (plus process start-up)
  assert.ok(gaps[0]! < 90, `first restart is immediate: ${gaps}`);
  assert.ok(gaps[1]! >= 95 && gaps[1]! < 190, `then the base delay: ${gaps}`);
  assert.ok(gaps[2]! >= 195, `then doubled: ${gaps}`);
  assert.ok(gaps[3]! >= 195 && gaps[3]! < 390, `then capped: ${gaps}`);
  const s = h.status();
  assert.ok(container(s, 'main').restartCount >= 4);
});

test('a Job completes although its sidecar would run forever: the sidecar is stopped and the pod Succeeded', async () => {
  const t0 = Date.now();
  const h = start(`  restartPolicy: Never
  initContainers:
    - name: proxy
      restartPolicy: Always
      command: ${trapTerm('proxy')}
  containers:
    - name: job
      command: [sh, -c, "echo job done >> $EV"]
`);
  assert.deepEqual(await h.run, { phase: 'Succeeded', reason: 'Completed' });
  assert.ok(Date.now() - t0 < 5000);
  assert.deepEqual(h.events(), ['proxy up', 'job done', 'proxy term']);
});

test('termination: preStop, then SIGTERM to main containers, then sidecars in reverse start order', async () => {
  const h = start(`  restartPolicy: Always
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
`);
  await waitFor(() => h.events().includes('m up'), { what: 'main up' });
  await h.sup.terminate();
  await h.run;
  const ev = h.events().filter((e) => !e.endsWith(' up'));
  assert.ok(ev.indexOf('m prestop') < ev.indexOf('m term'), 'preStop before SIGTERM');
  assert.ok(ev.indexOf('m term') < ev.indexOf('s2 term'), 'the main container before the sidecars');
  assert.ok(ev.indexOf('s2 term') < ev.indexOf('s1 term'), 'the last-started sidecar first');
  assert.ok(ev.includes('s2 prestop'));
  for (const name of ['s1', 's2', 'm'])
    assert.equal(container(h.status(), name).restartCount, 0, `${name} not restarted`);
});

test('the grace period bounds shutdown: what ignores SIGTERM is SIGKILLed 2 s after it runs out', async () => {
  const second = 50;
  const h = start(
    `  restartPolicy: Always
  terminationGracePeriodSeconds: 2
  containers:
    - name: stubborn
      command: [sh, -c, "trap '' TERM; echo up >> $EV; while :; do sleep 0.01; done"]
`,
    { second },
  );
  await waitFor(() => h.events().includes('up'), { what: 'container up' });
  const t0 = Date.now();
  await h.sup.terminate();
  await h.run;
  const took = Date.now() - t0;
  // 2 "s" of grace, then SIGTERM again and 2 "s" before SIGKILL: 4 × 50 ms
  assert.ok(took >= 4 * second - 10 && took < 4 * second + 1500, `took ${took}ms`);
  const c = container(h.status(), 'stubborn');
  assert.deepEqual([c.terminated?.signal, c.terminated?.exitCode], ['SIGKILL', 137]);
});

test('nothing a container started outlives it: its whole process group is ended when it exits', async () => {
  const h = start(`  restartPolicy: Never
  containers:
    - name: forker
      command: [sh, -c, "sleep 1000 & echo $! > $DIR/grandchild; echo forked >> $EV"]
`);
  assert.equal((await h.run).phase, 'Succeeded');
  const pid = Number(readFileSync(join(h.dir, 'grandchild'), 'utf8'));
  await waitFor(() => !isAlive(pid), { what: `grandchild ${pid} to be gone` });
});

test('readiness: not ready until the probe passes successThreshold times; unready after failureThreshold', async () => {
  const h = start(`  restartPolicy: Always
  containers:
    - name: web
      command: ${IDLE}
      readinessProbe:
        exec: { command: [sh, -c, "test -f $DIR/ready"] }
        periodSeconds: 1
        successThreshold: 2
        failureThreshold: 2
`);
  await waitFor(() => container(h.status(), 'web').state === 'running', { what: 'running' });
  assert.equal(container(h.status(), 'web').ready, false);
  assert.equal(h.status().conditions.ready, false);
  writeFileSync(join(h.dir, 'ready'), '');
  await waitFor(() => h.status().conditions.ready, { what: 'pod Ready' });
  unlinkSync(join(h.dir, 'ready'));
  await waitFor(() => !container(h.status(), 'web').ready, { what: 'unready again' });
  assert.equal(container(h.status(), 'web').restartCount, 0, 'readiness never restarts');
  await h.sup.terminate();
  await h.run;
});

test('initialDelaySeconds holds the first probe back', async () => {
  const h = start(`  restartPolicy: Always
  containers:
    - name: web
      command: ${IDLE}
      readinessProbe:
        exec: { command: ["true"] }
        initialDelaySeconds: 15
        periodSeconds: 1
`);
  await waitFor(() => container(h.status(), 'web').state === 'running', { what: 'running' });
  const started = Date.now();
  await waitFor(() => container(h.status(), 'web').ready, { what: 'ready' });
  assert.ok(Date.now() - started >= 15 * SECOND - 40, `ready after ${Date.now() - started}ms`);
  await h.sup.terminate();
  await h.run;
});

test('liveness failure restarts the container; a startup probe that never passes restarts it too', async () => {
  const h = start(`  restartPolicy: Always
  terminationGracePeriodSeconds: 2
  containers:
    - name: live
      command: [sh, -c, "echo live >> $EV; trap 'exit 0' TERM; while :; do sleep 0.01; done"]
      livenessProbe:
        exec: { command: ["false"] }
        periodSeconds: 1
        failureThreshold: 2
    - name: slow
      command: [sh, -c, "echo slow >> $EV; trap 'exit 0' TERM; while :; do sleep 0.01; done"]
      startupProbe:
        exec: { command: ["false"] }
        periodSeconds: 1
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
  assert.ok(container(s, 'live').restartCount >= 1);
  assert.ok(container(s, 'slow').restartCount >= 1);
  assert.equal(container(s, 'slow').started, false);
});

test('probe actions: httpGet sends its headers and passes on 2xx/3xx; tcpSocket; exec timeoutSeconds', async () => {
  const seen: string[] = [];
  const server = createServer((req, res) => {
    seen.push(`${req.url} ${req.headers['x-probe']} ${req.headers['user-agent']}`);
    res.statusCode = req.url === '/ok' ? 302 : 500;
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  try {
    const h = start(`  restartPolicy: Always
  containers:
    - name: http
      command: ${IDLE}
      readinessProbe:
        httpGet: { path: /ok, port: ${port}, httpHeaders: [{ name: X-Probe, value: yes }] }
        periodSeconds: 1
    - name: tcp
      command: ${IDLE}
      readinessProbe:
        tcpSocket: { port: ${port} }
        periodSeconds: 1
    - name: slowexec
      command: ${IDLE}
      readinessProbe:
        exec: { command: [sleep, "5"] }
        timeoutSeconds: 1
        periodSeconds: 1
`);
    await waitFor(() => container(h.status(), 'http').ready && container(h.status(), 'tcp').ready, {
      what: 'http and tcp ready',
    });
    assert.match(seen[0]!, /^\/ok yes kube-probe\//);
    await new Promise((r) => setTimeout(r, 10 * SECOND));
    assert.equal(container(h.status(), 'slowexec').ready, false, 'an exec probe past its timeout fails');
    await h.sup.terminate();
    await h.run;
  } finally {
    server.close();
  }
});

test('edge case: a sidecar whose startup probe never passes still gets SIGTERM when the pod is stopped', async () => {
  const h = start(`  restartPolicy: Always
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
`);
  await waitFor(() => h.events().includes('side up'), { what: 'sidecar up' });
  await h.sup.terminate();
  await h.run;
  assert.deepEqual(h.events(), ['side up', 'side term']);
  assert.equal(h.status().conditions.initialized, false);
});

test('edge case: a sidecar that exits during shutdown is restarted before it was sent SIGTERM, never after', async () => {
  const h = start(`  restartPolicy: Always
  terminationGracePeriodSeconds: 100
  initContainers:
    - name: side
      restartPolicy: Always
      command: [sh, -c, "echo side up >> $EV; trap 'echo side term >> $EV; exit 0' TERM; while [ ! -f $DIR/main-stopping ] || [ -f $DIR/side-crashed ]; do sleep 0.01; done; touch $DIR/side-crashed; echo side crash >> $EV; exit 1"]
  containers:
    - name: main
      command: [sh, -c, "trap 'touch $DIR/main-stopping; sleep 0.3; echo main term >> $EV; exit 0' TERM; echo main up >> $EV; while :; do sleep 0.01; done"]
`);
  await waitFor(() => h.events().includes('main up'), { what: 'main up' });
  await h.sup.terminate();
  await h.run;
  assert.deepEqual(h.events(), ['side up', 'main up', 'side crash', 'side up', 'main term', 'side term']);
  assert.equal(
    container(h.status(), 'side').restartCount,
    1,
    'restarted once (the crash), not after SIGTERM',
  );
});

test('a command that cannot be found is a StartError with the reason, and is not a crash of pillion', async () => {
  const h = start(`  restartPolicy: Never
  containers:
    - name: ghost
      command: [no-such-command-here]
`);
  assert.equal((await h.run).phase, 'Failed');
  const c = container(h.status(), 'ghost');
  assert.deepEqual([c.terminated?.reason, c.terminated?.exitCode], ['StartError', 128]);
  assert.match(c.terminated?.message ?? '', /executable file not found in \$PATH/);
});

test('volumes: each container sees them at mountPath — emptyDir shared, configMap, secret modes, downwardAPI, subPath, readOnly', async () => {
  const h = start(
    `  restartPolicy: Never
  volumes:
    - { name: shared, emptyDir: {} }
    - { name: conf, configMap: { name: cfg } }
    - { name: creds, secret: { secretName: sec, defaultMode: 256 } }
    - name: info
      downwardAPI:
        items:
          - { path: labels, fieldRef: { fieldPath: metadata.labels } }
          - { path: name, fieldRef: { fieldPath: metadata.name } }
  initContainers:
    - name: writer
      command: [sh, -c, "echo from-init > /data/handoff; mkdir -p /data/sub; echo in-sub > /data/sub/file"]
      volumeMounts: [{ name: shared, mountPath: /data }]
  containers:
    - name: reader
      command:
        - sh
        - -c
        - >-
          cat /data/handoff >> $EV; cat /conf/greeting >> $EV; echo >> $EV; cat /sub/file >> $EV;
          stat -c %a /creds/..data/token >> $EV; cat /info/name >> $EV; echo >> $EV;
          (echo x > /conf/new 2>/dev/null && echo writable >> $EV) || echo read-only >> $EV
      volumeMounts:
        - { name: shared, mountPath: /data }
        - { name: shared, mountPath: /sub, subPath: sub }
        - { name: conf, mountPath: /conf, readOnly: true }
        - { name: creds, mountPath: /creds }
        - { name: info, mountPath: /info }
`,
    {
      extraDocs: `apiVersion: v1
kind: ConfigMap
metadata: { name: cfg }
data: { greeting: hello }
---
apiVersion: v1
kind: Secret
metadata: { name: sec }
stringData: { token: s3cret }
---
`,
    },
  );
  assert.equal((await h.run).phase, 'Succeeded', h.lines.join('\n'));
  assert.deepEqual(h.events(), ['from-init', 'hello', 'in-sub', '400', 't', 'read-only']);
  for (const p of ['/data', '/conf', '/creds', '/info', '/sub'])
    assert.equal(existsSync(p), false, `mount point ${p} removed`);
});

test('a ConfigMap change reaches a running container through the ..data swap', async () => {
  const docs = (v: string) =>
    `apiVersion: v1\nkind: ConfigMap\nmetadata: { name: cfg }\ndata: { greeting: ${v} }\n---\n`;
  const h = start(
    `  restartPolicy: Always
  volumes:
    - { name: conf, configMap: { name: cfg } }
  containers:
    - name: watcher
      command: [sh, -c, "trap 'exit 0' TERM; last=; while :; do v=$(cat /conf/greeting); [ \\"$v\\" != \\"$last\\" ] && echo $v >> $EV; last=$v; sleep 0.01; done"]
      volumeMounts: [{ name: conf, mountPath: /conf }]
`,
    { extraDocs: docs('v1') },
  );
  await waitFor(() => h.events().includes('v1'), { what: 'v1 seen' });
  const next = parseManifest(
    readFileSync(join(h.dir, 'pod.yaml'), 'utf8').replace('greeting: v1', 'greeting: v2'),
    join(h.dir, 'pod.yaml'),
  );
  assert.ok(next.ok);
  assert.deepEqual(h.sup.updateConfig(next.manifest), ['conf']);
  await waitFor(() => h.events().includes('v2'), { what: 'v2 seen in the container' });
  assert.deepEqual(h.events(), ['v1', 'v2'], 'never an empty or torn read');
  await h.sup.terminate();
  await h.run;
});

test('resources.limits: memory is enforced through cgroups (OOMKilled), or a warning says why not', async () => {
  const h = start(`  restartPolicy: Never
  containers:
    - name: hog
      command: [sh, -c, "echo start >> $EV; x=$(head -c 300000000 /dev/zero | tr '\\\\0' x); echo survived >> $EV"]
      resources:
        limits: { memory: 32Mi, cpu: 500m }
`);
  await h.run;
  const s = h.status();
  const c = container(s, 'hog');
  if (s.warnings.some((w) => w.includes('PILLION_ERR_POD_LIMITS_NOT_ENFORCED'))) {
    assert.ok(true, 'no writable cgroup here; the warning says so');
  } else {
    assert.equal(c.terminated?.reason, 'OOMKilled', JSON.stringify(c));
    assert.ok(!h.events().includes('survived'));
  }
});

test('emptyDir medium: Memory is a tmpfs; hostPath shows the host directory; a CPU limit becomes a CFS quota', async () => {
  const hostDir = mkdtempSync(join(tmpdir(), 'pillion-host-'));
  roots.push(hostDir);
  writeFileSync(join(hostDir, 'from-host'), 'host file');
  const h = start(`  restartPolicy: Never
  volumes:
    - { name: mem, emptyDir: { medium: Memory, sizeLimit: 8Mi } }
    - { name: host, hostPath: { path: ${hostDir}, type: Directory } }
  containers:
    - name: probe
      command:
        - sh
        - -c
        - >-
          stat -f -c %T /scratch >> $EV; cat /host/from-host >> $EV; echo >> $EV;
          cg=$(grep -E '^[0-9]+:([^:]*,)?cpu(,[^:]*)?:' /proc/self/cgroup | cut -d: -f3);
          if [ -n "$cg" ]; then cat /sys/fs/cgroup/cpu$cg/cpu.cfs_quota_us >> $EV; else cut -d' ' -f1 /sys/fs/cgroup$(grep '^0::' /proc/self/cgroup | cut -d: -f3)/cpu.max >> $EV; fi
      volumeMounts:
        - { name: mem, mountPath: /scratch }
        - { name: host, mountPath: /host, readOnly: true }
      resources:
        limits: { cpu: 250m }
`);
  assert.equal((await h.run).phase, 'Succeeded', h.lines.join('\n'));
  const [fsType, hostFile, quota] = h.events();
  const warnings = h.status().warnings;
  if (warnings.some((w) => w.includes('tmpfs')))
    assert.equal(fsType, 'ext2/ext3', 'no tmpfs without root: a plain directory, and a warning');
  else assert.equal(fsType, 'tmpfs');
  assert.equal(hostFile, 'host file');
  if (!warnings.some((w) => w.includes('PILLION_ERR_POD_LIMITS_NOT_ENFORCED'))) assert.equal(quota, '25000');
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
    const h = start(`  restartPolicy: Always
  containers:
    - name: web
      command: [sh, -c, "trap 'echo term >> $EV; exit 0' TERM; echo up >> $EV; while :; do sleep 0.01; done"]
      lifecycle:
        preStop: { httpGet: { path: /shutdown, port: ${port} } }
`);
    await waitFor(() => h.events().includes('up'), { what: 'up' });
    await h.sup.terminate();
    await h.run;
    assert.deepEqual(calls, ['/shutdown']);
    assert.deepEqual(h.events(), ['up', 'term']);
  } finally {
    server.close();
  }
});

test('regression: nested mountPaths (a volume inside another) both work, and the outer one may be read-only', async () => {
  const h = start(
    `  restartPolicy: Never
  volumes:
    - { name: conf, configMap: { name: cfg } }
    - { name: certs, emptyDir: {} }
  initContainers:
    - name: mkcert
      command: [sh, -c, "echo CERT > /c/tls.crt"]
      volumeMounts: [{ name: certs, mountPath: /c }]
  containers:
    - name: app
      command: [sh, -c, "cat /etc-x/greeting >> $EV; echo >> $EV; cat /etc-x/certs/tls.crt >> $EV"]
      volumeMounts:
        - { name: certs, mountPath: /etc-x/certs }
        - { name: conf, mountPath: /etc-x, readOnly: true }
`,
    { extraDocs: 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: cfg }\ndata: { greeting: hi }\n---\n' },
  );
  assert.equal((await h.run).phase, 'Succeeded', h.lines.join('\n'));
  assert.deepEqual(h.events(), ['hi', 'CERT']);
  assert.equal(existsSync('/etc-x'), false, 'the mount point is removed');
});

test('regression: a subPath an earlier container turned into a symlink out of the volume is refused at launch', async () => {
  const h = start(`  restartPolicy: Never
  volumes: [{ name: shared, emptyDir: {} }]
  initContainers:
    - name: attacker
      command: [sh, -c, "rm -rf /v/sub; ln -s / /v/sub"]
      volumeMounts: [{ name: shared, mountPath: /v }]
  containers:
    - name: victim
      command: [sh, -c, "ls /host-root >> $EV"]
      volumeMounts: [{ name: shared, mountPath: /host-root, subPath: sub }]
`);
  assert.equal((await h.run).phase, 'Failed');
  const c = container(h.status(), 'victim');
  assert.equal(c.terminated?.reason, 'StartError');
  assert.match(c.terminated?.message ?? '', /outside its volume/);
  assert.deepEqual(h.events(), []);
});

test('regression: a liveness kill runs preStop first, as the kubelet does', async () => {
  const h = start(`  restartPolicy: Always
  terminationGracePeriodSeconds: 5
  containers:
    - name: app
      command: [sh, -c, "echo up >> $EV; trap 'echo term >> $EV; exit 0' TERM; while :; do sleep 0.01; done"]
      livenessProbe: { exec: { command: ["false"] }, periodSeconds: 1, failureThreshold: 1 }
      lifecycle:
        preStop: { exec: { command: [sh, -c, "echo prestop >> $EV"] } }
`);
  await waitFor(() => h.events().includes('term'), { what: 'first liveness kill' });
  await h.sup.terminate();
  await h.run;
  const ev = h.events();
  assert.deepEqual(ev.slice(0, 3), ['up', 'prestop', 'term']);
});

test('regression: exec probes of a container with volume mounts run in its workingDir, inside its namespace', async () => {
  const h = start(`  restartPolicy: Always
  volumes: [{ name: v, emptyDir: {} }]
  containers:
    - name: app
      workingDir: /work-x
      command: [sh, -c, "echo ok > ./check; trap 'exit 0' TERM; while :; do sleep 0.01; done"]
      volumeMounts: [{ name: v, mountPath: /work-x }]
      readinessProbe: { exec: { command: [sh, -c, "test -f ./check"] }, periodSeconds: 1 }
`);
  await waitFor(() => container(h.status(), 'app').ready, {
    what: 'ready through a relative path in its workingDir',
  });
  await h.sup.terminate();
  await h.run;
});
