import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describePod } from './describe.js';
import { humanDuration, podSummary, podProblems } from './pod-view.js';
import type { ContainerStatus, PodRecord, PodSpecRecord, PodStatus } from './state.js';

// kubectl's STATUS, READY and RESTARTS for the states a pod of processes can be in, as printPod
// (pkg/printers/internalversion/printers.go) derives them from the same container states.
const NOW = Date.parse('2026-11-21T12:00:00Z');
const ago = (s: number) => new Date(NOW - s * 1000).toISOString();

function c(
  name: string,
  type: ContainerStatus['type'],
  rest: Partial<ContainerStatus> = {},
): ContainerStatus {
  return {
    name,
    type,
    state: 'running',
    ready: true,
    started: true,
    restartCount: 0,
    startedAt: ago(60),
    ...rest,
  };
}
const exited = (reason: string, exitCode: number, finished = 30) => ({
  state: 'terminated' as const,
  ready: false,
  started: false,
  terminated: { reason, exitCode, finishedAt: ago(finished) },
});
const crashLoop = (restarts: number, lastExit: number) => ({
  state: 'waiting' as const,
  reason: 'CrashLoopBackOff',
  ready: false,
  started: false,
  restartCount: restarts,
  lastState: { reason: 'Error', exitCode: 1, finishedAt: ago(lastExit) },
});

function pod(containers: ContainerStatus[], rest: Partial<PodStatus> = {}, alive = true): PodRecord {
  const initialized = rest.conditions?.initialized ?? true;
  const status: PodStatus = {
    name: 'web',
    namespace: 'default',
    uid: 'u',
    kind: 'Pod',
    file: '/x/pod.yaml',
    phase: 'Running',
    terminating: false,
    supervisorPid: 1,
    gracePeriodMs: 30_000,
    startTime: ago(300),
    conditions: { initialized, containersReady: true, ready: true },
    containers,
    warnings: [],
    ...rest,
  };
  return { status, alive, dirs: undefined as never };
}

const summary = (p: PodRecord) => {
  const s = podSummary(p, NOW);
  return `${s.ready} ${s.status} ${s.restarts} ${s.age}`;
};

test('STATUS as kubectl derives it: Running, Completed, Error, OOMKilled, CrashLoopBackOff with "(12s ago)"', () => {
  assert.equal(summary(pod([c('side', 'sidecar'), c('app', 'main')])), '2/2 Running 0 5m');
  assert.equal(
    summary(pod([c('app', 'main', exited('Completed', 0))], { phase: 'Succeeded' })),
    '0/1 Completed 0 5m',
  );
  assert.equal(summary(pod([c('app', 'main', exited('Error', 2))], { phase: 'Failed' })), '0/1 Error 0 5m');
  assert.equal(
    summary(pod([c('app', 'main', exited('OOMKilled', 137))], { phase: 'Failed' })),
    '0/1 OOMKilled 0 5m',
    'a main container the kernel killed for memory',
  );
  const looping = pod([
    c('app', 'main', {
      ...crashLoop(3, 12),
      message: 'back-off 40s restarting failed container=app pod=web',
    }),
  ]);
  assert.equal(summary(looping), '0/1 CrashLoopBackOff 3 (12s ago) 5m');
  assert.deepEqual(podProblems(looping.status, NOW), [
    'app: CrashLoopBackOff: back-off 40s restarting failed container=app pod=web',
  ]);
  // A sidecar killed as a Job completed is no init failure.
  assert.equal(
    summary(
      pod([c('proxy', 'sidecar', exited('Error', 143)), c('job', 'main', exited('Completed', 0))], {
        phase: 'Succeeded',
      }),
    ),
    '0/2 Completed 0 5m',
  );
});

test('STATUS while initializing: Init:N/M, Init:CrashLoopBackOff, Init:Error', () => {
  const init = {
    conditions: { initialized: false, containersReady: false, ready: false },
    phase: 'Pending' as const,
  };
  const waiting = { state: 'waiting' as const, reason: 'PodInitializing', ready: false, started: false };
  assert.equal(
    summary(
      pod(
        [c('a', 'init', exited('Completed', 0)), c('b', 'init', { ready: false }), c('app', 'main', waiting)],
        init,
      ),
    ),
    '0/1 Init:1/2 0 5m',
  );
  assert.equal(
    summary(pod([c('migrate', 'init', crashLoop(4, 20)), c('app', 'main', waiting)], init)),
    '0/1 Init:CrashLoopBackOff 4 (20s ago) 5m',
  );
  assert.equal(
    summary(
      pod([c('migrate', 'init', exited('Error', 3)), c('app', 'main', waiting)], {
        ...init,
        phase: 'Failed',
      }),
    ),
    '0/1 Init:Error 0 5m',
  );
  assert.equal(
    summary(pod([c('proxy', 'sidecar', { started: false, ready: false }), c('app', 'main', waiting)], init)),
    '0/2 Init:0/1 0 5m',
    'a sidecar that has not started yet holds the pod in Init',
  );
});

test('a crash-looping sidecar: the pod stays Running (its phase), kubectl prints it as kubectl does, its own state says CrashLoopBackOff', () => {
  const p = pod([c('proxy', 'sidecar', crashLoop(2, 5)), c('app', 'main')], {
    conditions: { initialized: true, containersReady: false, ready: false },
  });
  assert.equal(p.status.phase, 'Running');
  // printPod reads a sidecar that is waiting, after the pod was initialized, as Init:<reason>.
  assert.equal(summary(p), '1/2 Init:CrashLoopBackOff 2 (5s ago) 5m');
  const text = describePod(p, undefined, { now: NOW, node: 'host' });
  assert.match(text, /\nStatus: +Running\n/);
  assert.match(text, /\n {2}proxy:\n(.*\n)*? {4}State: +Waiting\n {6}Reason: +CrashLoopBackOff\n/);
});

test('Terminating, Unknown (no runner), and Running again while a main container still runs after another completed', () => {
  assert.equal(summary(pod([c('app', 'main')], { terminating: true })), '1/1 Terminating 0 5m');
  assert.equal(summary(pod([c('app', 'main')], {}, false)), '1/1 Unknown 0 5m');
  assert.equal(summary(pod([c('a', 'main', exited('Completed', 0)), c('b', 'main')])), '1/2 Running 0 5m');
  assert.equal(
    summary(
      pod([c('a', 'main', exited('Completed', 0)), c('b', 'main')], {
        conditions: { initialized: true, containersReady: false, ready: false },
      }),
    ),
    '1/2 NotReady 0 5m',
  );
});

test("kubectl's HumanDuration", () => {
  const cases: [number, string][] = [
    [-5, '<invalid>'],
    [0, '0s'],
    [119, '119s'],
    [120, '2m'],
    [200, '3m20s'],
    [600, '10m'],
    [179 * 60, '179m'],
    [3 * 3600, '3h'],
    [5.5 * 3600, '5h30m'],
    [47 * 3600, '47h'],
    [51 * 3600, '2d3h'],
    [400 * 86400, '400d'],
    [(3 * 365 + 20) * 86400, '3y20d'],
    [9 * 365 * 86400, '9y'],
  ];
  for (const [s, text] of cases) assert.equal(humanDuration(s * 1000), text, String(s));
});

test('describe: state, last state, exit code and reason, restarts, probes with their last failure, mounts, events', () => {
  const spec: PodSpecRecord = {
    kind: 'Pod',
    name: 'web',
    namespace: 'default',
    labels: { app: 'web' },
    annotations: {},
    spec: {
      initContainers: [],
      containers: [
        {
          name: 'app',
          image: 'legacy/app:1',
          ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }],
          command: ['node', 'app.mjs'],
          args: [],
          env: [
            { name: 'PORT', value: '8080' },
            { name: 'API_TOKEN', value: 'hunter2' },
            { name: 'DB', valueFrom: { secretKeyRef: { name: 'db', key: 'url', optional: false } } },
          ],
          envFrom: [],
          volumeMounts: [{ name: 'data', mountPath: '/data', readOnly: true }],
          readinessProbe: {
            httpGet: { path: '/healthz', port: 'http', scheme: 'HTTP', httpHeaders: [] },
            initialDelaySeconds: 0,
            periodSeconds: 10,
            timeoutSeconds: 1,
            successThreshold: 1,
            failureThreshold: 3,
          },
        },
      ],
      volumes: [{ name: 'data', emptyDir: { medium: '' } }],
      restartPolicy: 'Always',
      terminationGracePeriodSeconds: 30,
    },
  };
  const p = pod(
    [
      c('app', 'main', {
        ready: false,
        restartCount: 2,
        lastState: {
          reason: 'Error',
          exitCode: 137,
          signal: 'SIGKILL',
          startedAt: ago(200),
          finishedAt: ago(40),
        },
        probes: {
          readiness: {
            ok: false,
            consecutiveFailures: 4,
            lastFailure: {
              message: 'Readiness probe failed: HTTP probe failed with statuscode: 503',
              at: ago(3),
            },
          },
        },
      }),
    ],
    {
      conditions: { initialized: true, containersReady: false, ready: false },
      events: [
        {
          type: 'Normal',
          reason: 'Started',
          container: 'app',
          message: 'Started container app',
          count: 3,
          firstTimestamp: ago(240),
          lastTimestamp: ago(39),
        },
        {
          type: 'Warning',
          reason: 'Unhealthy',
          container: 'app',
          message: 'Readiness probe failed: HTTP probe failed with statuscode: 503',
          count: 4,
          firstTimestamp: ago(33),
          lastTimestamp: ago(3),
        },
      ],
    },
  );
  const text = describePod(p, spec, { now: NOW, node: 'host' });
  for (const line of [
    /^Name: +web$/m,
    /^Node: +host\/127\.0\.0\.1$/m,
    /^Labels: +app=web$/m,
    /^ {4}Image: +legacy\/app:1 \(not pulled: the command runs on this host\)$/m,
    /^ {4}State: +Running$/m,
    /^ {4}Last State: +Terminated$/m,
    /^ {6}Reason: +Error$/m,
    /^ {6}Exit Code: +137$/m,
    /^ {6}Signal: +SIGKILL$/m,
    /^ {4}Restart Count: +2 \(40s ago\)$/m,
    /^ {4}Readiness: +http-get http:\/\/:http\/healthz delay=0s timeout=1s period=10s #success=1 #failure=3$/m,
    /^ {6}Last failure: +Readiness probe failed: HTTP probe failed with statuscode: 503 \(3s ago, failing 4 in a row\)$/m,
    /^ {6}PORT: +8080$/m,
    /^ {6}API_TOKEN: +<redacted>$/m,
    /^ {6}DB: +<set to the key 'url' in secret 'db'>$/m,
    /^ {6}\/data from data \(ro\)$/m,
    /^ {2}Ready +False$/m,
    /^ {4}Type: +EmptyDir \(a temporary directory that shares a pod's lifetime\)$/m,
    /^Events:$/m,
    /^ {2}Normal +Started +39s \(x3 over 4m\) +pillion \(app\) +Started container app$/m,
    /^ {2}Warning +Unhealthy +3s \(x4 over 33s\) +pillion \(app\) +Readiness probe failed: HTTP probe failed with statuscode: 503$/m,
  ]) {
    assert.match(text, line, text);
  }
  assert.ok(!text.includes('hunter2'));
  assert.deepEqual(podProblems(p.status, NOW), [
    'app: Readiness probe failed: HTTP probe failed with statuscode: 503 (3s ago, 4 in a row)',
  ]);
});
