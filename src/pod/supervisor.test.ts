import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { FakeClock } from '../lib/clock.js';
import { waitFor } from '../lib/wait-for.js';
import { parseManifest } from './manifest.js';
import { isAlive } from './state.js';
import { containerOf, IDLE, removeTestDirs, startPod, testDir, trapTerm } from './test-support.js';

// The start sequence, restart policies and completion, with real processes. Order is asserted
// through the events file; whatever depends on time runs on a FakeClock (with real Kubernetes
// seconds), so no assertion here measures the wall clock.
after(removeTestDirs);

test('init containers run in order; a sidecar gates the next one until its startup probe passes; then the main containers', async () => {
  const h = startPod(`  restartPolicy: Never
  initContainers:
    - name: init1
      command: [sh, -c, "echo init1 >> $EV"]
    - name: side
      restartPolicy: Always
      command: [sh, -c, "echo side-start >> $EV; sleep 0.2; echo side-ready >> $EV; touch $DIR/side-ready; trap 'exit 0' TERM; while :; do sleep 0.01; done"]
      startupProbe:
        exec: { command: [sh, -c, "test -f $DIR/side-ready"] }
        periodSeconds: 1
        timeoutSeconds: 100
        failureThreshold: 1000
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
    containerOf(s, 'side').terminated?.reason,
    'Completed',
    'the sidecar was stopped after the mains completed',
  );
});

test("regression: a main container's postStart holds up the next main container, as the kubelet starts them (kubernetes#81450)", async () => {
  const clock = new FakeClock();
  const h = startPod(
    `  restartPolicy: Always
  containers:
    - name: proxy
      command: [sh, -c, "echo proxy up >> $EV; trap 'exit 0' TERM; while :; do sleep 0.01; done"]
      lifecycle:
        postStart:
          exec: { command: [sh, -c, "echo proxy poststart >> $EV; until [ -f $DIR/release ]; do sleep 0.01; done; echo proxy ready >> $EV"] }
    - name: app
      command: [sh, -c, "echo app up >> $EV; trap 'exit 0' TERM; while :; do sleep 0.01; done"]
`,
    { clock, second: 1000 },
  );
  await waitFor(() => h.events().includes('proxy poststart'), { what: "proxy's postStart running" });
  const app = containerOf(h.status(), 'app');
  assert.deepEqual([app.state, app.reason], ['waiting', 'ContainerCreating'], 'app waits for the postStart');
  writeFileSync(join(h.dir, 'release'), '');
  await waitFor(() => h.events().includes('app up'), { what: 'app started' });
  const ev = h.events();
  assert.ok(ev.indexOf('proxy ready') < ev.indexOf('app up'), ev.join(', '));
  await h.sup.terminate();
  await h.run;
});

test('a failing init container fails the pod under restartPolicy Never; main containers never start', async () => {
  const h = startPod(`  restartPolicy: Never
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
  assert.equal(containerOf(s, 'init').terminated?.exitCode, 3);
  assert.equal(containerOf(s, 'main').state, 'waiting');
});

test('regression: a failed init container is logged as such, not as "main containers are done"', async () => {
  const h = startPod(`  restartPolicy: Never
  initContainers:
    - name: migrate
      command: [sh, -c, "exit 3"]
  containers:
    - name: main
      command: ["true"]
`);
  await h.run;
  const msgs = h.logs.map((l) => l.msg);
  assert.ok(!msgs.some((m) => m.includes('main containers are done')), msgs.join('\n'));
  assert.ok(
    msgs.includes('init container migrate exited with 3 (Error); the pod has failed, stopping its sidecars'),
    msgs.join('\n'),
  );
});

test('under OnFailure a failing init container is retried until it succeeds', async () => {
  const h = startPod(`  restartPolicy: OnFailure
  initContainers:
    - name: init
      command: [sh, -c, "echo try >> $EV; [ -f $DIR/second ] || { touch $DIR/second; exit 1; }"]
  containers:
    - name: main
      command: [sh, -c, "echo main >> $EV"]
`);
  assert.equal((await h.run).phase, 'Succeeded');
  assert.deepEqual(h.events(), ['try', 'try', 'main']);
  assert.equal(containerOf(h.status(), 'init').restartCount, 1);
});

test('restartPolicy Never: a failed main container is not restarted and the pod Failed', async () => {
  const h = startPod(`  restartPolicy: Never
  containers:
    - name: main
      command: [sh, -c, "echo run >> $EV; exit 2"]
`);
  assert.deepEqual(await h.run, { phase: 'Failed', reason: 'Error' });
  assert.deepEqual(h.events(), ['run']);
  const c = containerOf(h.status(), 'main');
  assert.deepEqual([c.restartCount, c.terminated?.exitCode, c.terminated?.reason], [0, 2, 'Error']);
});

test('restartPolicy OnFailure: restarted after a failure, not after success', async () => {
  const h = startPod(`  restartPolicy: OnFailure
  containers:
    - name: main
      command: [sh, -c, "echo run >> $EV; [ -f $DIR/m ] || { touch $DIR/m; exit 1; }"]
`);
  assert.equal((await h.run).phase, 'Succeeded');
  assert.deepEqual(h.events(), ['run', 'run']);
  const c = containerOf(h.status(), 'main');
  assert.equal(c.restartCount, 1);
  assert.equal(c.lastState?.exitCode, 1, 'kubectl\'s "Last State" is the failed run');
});

test('regression: restartPolicy Always restarts after exit 0; the first restart is immediate, then the back-off doubles up to its cap (on the injected clock)', async () => {
  const clock = new FakeClock();
  const h = startPod(
    `  restartPolicy: Always
  containers:
    - name: main
      command: [sh, -c, "echo run >> $EV"]
`,
    { clock, second: 1000, backoff: { baseMs: 10_000, capMs: 40_000, resetAfterMs: 600_000 } },
  );
  const runs = () => h.events().length;
  const backingOff = (restarts: number) =>
    waitFor(
      () => {
        const c = containerOf(h.status(), 'main');
        return c.state === 'waiting' && c.reason === 'CrashLoopBackOff' && c.restartCount === restarts
          ? c
          : undefined;
      },
      { what: `back-off after ${restarts} restarts` },
    );
  // No time passes for the first restart.
  await waitFor(() => runs() === 2, { what: 'the immediate first restart' });
  let c = await backingOff(1);
  assert.match(c.message ?? '', /^back-off 10s restarting failed container=main/);
  assert.equal(c.lastState?.reason, 'Completed', 'the run that ended is the last state');
  for (const [restarts, delay] of [
    [1, 10_000],
    [2, 20_000],
    [3, 40_000],
    [4, 40_000],
  ] as const) {
    c = await backingOff(restarts);
    assert.match(c.message ?? '', new RegExp(`^back-off ${delay / 1000}s `));
    await clock.advance(delay - 1);
    assert.equal(runs(), restarts + 1, `still waiting ${delay - 1} ms into a ${delay} ms back-off`);
    await clock.advance(1);
    await waitFor(() => runs() === restarts + 2, { what: `the restart after ${delay} ms` });
  }
  await h.sup.terminate();
  await h.run;
  const events = h.status().events ?? [];
  const backOff = events.find((e) => e.reason === 'BackOff');
  assert.equal(backOff?.type, 'Warning');
  assert.ok((backOff?.count ?? 0) >= 4, 'each back-off is counted in one event');
});

test('a Job completes although its sidecar would run forever: the sidecar is stopped at once, no grace period needs to pass', async () => {
  const clock = new FakeClock();
  const h = startPod(
    `  restartPolicy: Never
  initContainers:
    - name: proxy
      restartPolicy: Always
      command: ${trapTerm('proxy')}
      lifecycle:
        postStart: { exec: { command: [sh, -c, "until grep -q 'proxy up' $EV; do sleep 0.01; done"] } }
  containers:
    - name: job
      command: [sh, -c, "echo job done >> $EV"]
`,
    { clock, second: 1000 },
  );
  assert.deepEqual(await h.run, { phase: 'Succeeded', reason: 'Completed' });
  assert.equal(clock.now(), h.t0, 'the clock never moved');
  assert.deepEqual(h.events(), ['proxy up', 'job done', 'proxy term']);
  const completed = (h.status().events ?? []).find((e) => e.reason === 'Completed');
  assert.equal(completed?.message, 'Pod completed: every main container exited 0');
});

test('nothing a container started outlives it: its whole process group is ended when it exits', async () => {
  const h = startPod(`  restartPolicy: Never
  containers:
    - name: forker
      command: [sh, -c, "sleep 1000 & echo $! > $DIR/grandchild; echo forked >> $EV"]
`);
  assert.equal((await h.run).phase, 'Succeeded');
  const pid = Number(readFileSync(join(h.dir, 'grandchild'), 'utf8'));
  await waitFor(() => !isAlive(pid), { what: `grandchild ${pid} to be gone` });
});

test('a command that cannot be found is a StartError with the reason, and is not a crash of pillion', async () => {
  const h = startPod(`  restartPolicy: Never
  containers:
    - name: ghost
      command: [no-such-command-here]
`);
  assert.equal((await h.run).phase, 'Failed');
  const c = containerOf(h.status(), 'ghost');
  assert.deepEqual([c.terminated?.reason, c.terminated?.exitCode], ['StartError', 128]);
  assert.match(c.terminated?.message ?? '', /executable file not found in \$PATH/);
  const failed = (h.status().events ?? []).find((e) => e.reason === 'Failed' && e.container === 'ghost');
  assert.match(failed?.message ?? '', /^Error: exec: "no-such-command-here": executable file not found/);
});

test('volumes: each container sees them at mountPath — emptyDir shared, configMap, secret modes, downwardAPI, subPath, readOnly', async () => {
  const h = startPod(
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
      command: [sh, -c, "echo from-init > $MNT/data/handoff; mkdir -p $MNT/data/sub; echo in-sub > $MNT/data/sub/file"]
      volumeMounts: [{ name: shared, mountPath: $MNT/data }]
  containers:
    - name: reader
      command:
        - sh
        - -c
        - >-
          cat $MNT/data/handoff >> $EV; cat $MNT/conf/greeting >> $EV; echo >> $EV; cat $MNT/sub/file >> $EV;
          stat -c %a $MNT/creds/..data/token >> $EV; cat $MNT/info/name >> $EV; echo >> $EV;
          (echo x > $MNT/conf/new 2>/dev/null && echo writable >> $EV) || echo read-only >> $EV
      volumeMounts:
        - { name: shared, mountPath: $MNT/data }
        - { name: shared, mountPath: $MNT/sub, subPath: sub }
        - { name: conf, mountPath: $MNT/conf, readOnly: true }
        - { name: creds, mountPath: $MNT/creds }
        - { name: info, mountPath: $MNT/info }
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
  assert.equal(existsSync(join(h.dir, 'mnt')), false, 'the mount points it made are removed');
});

test('a ConfigMap change reaches a running container through the ..data swap', async () => {
  const docs = (v: string) =>
    `apiVersion: v1\nkind: ConfigMap\nmetadata: { name: cfg }\ndata: { greeting: ${v} }\n---\n`;
  const h = startPod(
    `  restartPolicy: Always
  volumes:
    - { name: conf, configMap: { name: cfg } }
  containers:
    - name: watcher
      command: [sh, -c, "trap 'exit 0' TERM; last=; while :; do v=$(cat $MNT/conf/greeting); [ \\"$v\\" != \\"$last\\" ] && echo $v >> $EV; last=$v; sleep 0.01; done"]
      volumeMounts: [{ name: conf, mountPath: $MNT/conf }]
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
  const h = startPod(`  restartPolicy: Never
  containers:
    - name: hog
      command: [sh, -c, "echo start >> $EV; x=$(head -c 300000000 /dev/zero | tr '\\\\0' x); echo survived >> $EV"]
      resources:
        limits: { memory: 32Mi, cpu: 500m }
`);
  await h.run;
  const s = h.status();
  const c = containerOf(s, 'hog');
  if (s.warnings.some((w) => w.includes('PILLION_ERR_POD_LIMITS_NOT_ENFORCED'))) {
    assert.ok(true, 'no writable cgroup here; the warning says so');
  } else {
    assert.equal(c.terminated?.reason, 'OOMKilled', JSON.stringify(c));
    assert.ok(!h.events().includes('survived'));
  }
});

test('emptyDir medium: Memory is a tmpfs; hostPath shows the host directory; a CPU limit becomes a CFS quota', async () => {
  const hostDir = testDir('pillion-host-');
  writeFileSync(join(hostDir, 'from-host'), 'host file');
  const h = startPod(`  restartPolicy: Never
  volumes:
    - { name: mem, emptyDir: { medium: Memory, sizeLimit: 8Mi } }
    - { name: host, hostPath: { path: ${hostDir}, type: Directory } }
  containers:
    - name: probe
      command:
        - sh
        - -c
        - >-
          stat -f -c %T $MNT/scratch >> $EV; cat $MNT/host/from-host >> $EV; echo >> $EV;
          cg=$(grep -E '^[0-9]+:([^:]*,)?cpu(,[^:]*)?:' /proc/self/cgroup | cut -d: -f3);
          if [ -n "$cg" ]; then cat /sys/fs/cgroup/cpu$cg/cpu.cfs_quota_us >> $EV; else cut -d' ' -f1 /sys/fs/cgroup$(grep '^0::' /proc/self/cgroup | cut -d: -f3)/cpu.max >> $EV; fi
      volumeMounts:
        - { name: mem, mountPath: $MNT/scratch }
        - { name: host, mountPath: $MNT/host, readOnly: true }
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

test('regression: nested mountPaths (a volume inside another) both work, and the outer one may be read-only', async () => {
  const h = startPod(
    `  restartPolicy: Never
  volumes:
    - { name: conf, configMap: { name: cfg } }
    - { name: certs, emptyDir: {} }
  initContainers:
    - name: mkcert
      command: [sh, -c, "echo CERT > $MNT/c/tls.crt"]
      volumeMounts: [{ name: certs, mountPath: $MNT/c }]
  containers:
    - name: app
      command: [sh, -c, "cat $MNT/etc-x/greeting >> $EV; echo >> $EV; cat $MNT/etc-x/certs/tls.crt >> $EV"]
      volumeMounts:
        - { name: certs, mountPath: $MNT/etc-x/certs }
        - { name: conf, mountPath: $MNT/etc-x, readOnly: true }
`,
    { extraDocs: 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: cfg }\ndata: { greeting: hi }\n---\n' },
  );
  assert.equal((await h.run).phase, 'Succeeded', h.lines.join('\n'));
  assert.deepEqual(h.events(), ['hi', 'CERT']);
  assert.equal(existsSync(join(h.dir, 'mnt')), false, 'the mount points are removed');
});

test('regression: a subPath an earlier container turned into a symlink out of the volume is refused at launch', async () => {
  const h = startPod(`  restartPolicy: Never
  volumes: [{ name: shared, emptyDir: {} }]
  initContainers:
    - name: attacker
      command: [sh, -c, "rm -rf $MNT/v/sub; ln -s / $MNT/v/sub"]
      volumeMounts: [{ name: shared, mountPath: $MNT/v }]
  containers:
    - name: victim
      command: [sh, -c, "ls $MNT/host-root >> $EV"]
      volumeMounts: [{ name: shared, mountPath: $MNT/host-root, subPath: sub }]
`);
  assert.equal((await h.run).phase, 'Failed');
  const c = containerOf(h.status(), 'victim');
  assert.equal(c.terminated?.reason, 'StartError');
  assert.match(c.terminated?.message ?? '', /outside its volume/);
  assert.deepEqual(h.events(), []);
});

test('a pod that cannot be prepared reports each container as kubectl would (CreateContainerError), with the reason', async () => {
  const h = startPod(`  restartPolicy: Never
  volumes: [{ name: h, hostPath: { path: /no/such/dir/for/pillion, type: Directory } }]
  containers:
    - name: app
      command: ${IDLE}
      volumeMounts: [{ name: h, mountPath: $MNT/h }]
`);
  await assert.rejects(
    h.run,
    /hostPath volume "h": \/no\/such\/dir\/for\/pillion is not an existing directory/,
  );
  const s = h.status();
  assert.equal(s.phase, 'Failed');
  const c = containerOf(s, 'app');
  assert.deepEqual([c.state, c.reason], ['waiting', 'CreateContainerError']);
  assert.match(c.message ?? '', /is not an existing directory/);
});

test('the spec the pod was started with is kept beside its status, without ConfigMap or Secret data', async () => {
  const h = startPod(
    `  restartPolicy: Never
  containers:
    - name: app
      image: busybox:1.36
      command: ["true"]
`,
    {
      extraDocs: 'apiVersion: v1\nkind: Secret\nmetadata: { name: s }\nstringData: { token: hunter2 }\n---\n',
    },
  );
  await h.run;
  const state = join(h.dir, 'state', 'run');
  const [id] = readdirSync(state);
  const text = readFileSync(join(state, id!, 'spec.json'), 'utf8');
  const spec = JSON.parse(text) as { kind: string; spec: { containers: { image: string }[] } };
  assert.equal(spec.kind, 'Pod');
  assert.equal(spec.spec.containers[0]!.image, 'busybox:1.36');
  assert.ok(!text.includes('hunter2'));
});

test('regression: resourceFieldRef reaches the container, in its env and in a downwardAPI volume file', async () => {
  const h = startPod(`  restartPolicy: Never
  volumes:
    - name: info
      downwardAPI:
        items:
          - { path: mem, resourceFieldRef: { containerName: app, resource: limits.memory, divisor: 1Mi } }
          - { path: cpus, resourceFieldRef: { containerName: app, resource: requests.cpu } }
  containers:
    - name: app
      command: [sh, -c, "echo $CPU_M $MEM_MI >> $EV; cat $MNT/info/mem >> $EV; echo >> $EV; cat $MNT/info/cpus >> $EV"]
      resources: { limits: { cpu: 1500m, memory: 512Mi } }
      volumeMounts: [{ name: info, mountPath: $MNT/info }]
      env:
        - { name: CPU_M, valueFrom: { resourceFieldRef: { resource: limits.cpu, divisor: 1m } } }
        - { name: MEM_MI, valueFrom: { resourceFieldRef: { resource: limits.memory, divisor: 1Mi } } }
`);
  assert.equal((await h.run).phase, 'Succeeded', h.lines.join('\n'));
  // requests.cpu is not set: it is its limit, 1.5 cores, which is 2 when rounded up to whole cores.
  assert.deepEqual(h.events(), ['1500 512', '512', '2']);
});

test('a crash-looping sidecar leaves the pod Running while its own state is CrashLoopBackOff', async () => {
  const clock = new FakeClock();
  const h = startPod(
    `  restartPolicy: Always
  initContainers:
    - name: proxy
      restartPolicy: Always
      command: [sh, -c, "echo proxy >> $EV; exit 1"]
  containers:
    - name: app
      command: ${IDLE}
`,
    { clock, second: 1000, backoff: { baseMs: 10_000, capMs: 300_000, resetAfterMs: 600_000 } },
  );
  await waitFor(
    () => {
      const s = h.status();
      return (
        containerOf(s, 'proxy').reason === 'CrashLoopBackOff' && containerOf(s, 'app').state === 'running'
      );
    },
    { what: 'the sidecar in back-off, the app running' },
  );
  const s = h.status();
  assert.equal(s.phase, 'Running');
  assert.equal(containerOf(s, 'proxy').state, 'waiting');
  assert.equal(s.conditions.initialized, true);
  await h.sup.terminate();
  await h.run;
});
