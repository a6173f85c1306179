// `pillion inject` on manifests: every kind, List and multi-document files, other kinds and
// comments kept, idempotency, the overlay rule, opt-out, hostNetwork, native and legacy modes,
// interception; every output checked against the Kubernetes API schemas (kubernetes-models).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { IContainer, IPodSpec } from 'kubernetes-models/v1';
import { parseAllDocuments } from 'yaml';
import { defaultInjectorConfig, type InjectorConfig } from './config.js';
import { injectManifests } from './manifests.js';
import { schemaProblems } from './models.js';

const APP = `      containers:
        # the app, untouched
        - name: app
          image: shop/app:1.0 # pinned
          ports:
            - containerPort: 8080
          volumeMounts:
            - { name: logs, mountPath: /var/log/app }
      volumes:
        - name: logs
          emptyDir: {}
`;
const indent = (text: string, by: number) =>
  text
    .split('\n')
    .map((l) => (l ? ' '.repeat(by) + l : l))
    .join('\n');

const WORKLOADS: Record<string, string> = {
  Pod: `apiVersion: v1
kind: Pod
metadata:
  name: app
spec:
${APP.replace(/^ {4}/gm, '')}`,
  Deployment: `apiVersion: apps/v1
kind: Deployment
metadata: { name: app, namespace: shop }
spec:
  selector: { matchLabels: { app: app } }
  template:
    metadata: { labels: { app: app } }
    spec:
${APP}`,
  StatefulSet: `apiVersion: apps/v1
kind: StatefulSet
metadata: { name: app }
spec:
  serviceName: app
  selector: { matchLabels: { app: app } }
  template:
    metadata: { labels: { app: app } }
    spec:
${APP}`,
  DaemonSet: `apiVersion: apps/v1
kind: DaemonSet
metadata: { name: app }
spec:
  selector: { matchLabels: { app: app } }
  template:
    metadata: { labels: { app: app } }
    spec:
${APP}`,
  ReplicaSet: `apiVersion: apps/v1
kind: ReplicaSet
metadata: { name: app }
spec:
  selector: { matchLabels: { app: app } }
  template:
    metadata: { labels: { app: app } }
    spec:
${APP}`,
  Job: `apiVersion: batch/v1
kind: Job
metadata: { name: app }
spec:
  template:
    spec:
      restartPolicy: Never
${APP}`,
  CronJob: `apiVersion: batch/v1
kind: CronJob
metadata: { name: app }
spec:
  schedule: "*/5 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
${indent(APP, 4)}`,
};

const SERVICE = `# the service stays as written
apiVersion: v1
kind: Service
metadata: { name: app }   # odd spacing kept
spec:
  ports: [ { port: 80, targetPort: 8080 } ]
`;

async function inject(text: string, config: InjectorConfig = defaultInjectorConfig(), sidecar?: string) {
  const r = await injectManifests(text, 'in.yaml', {
    config,
    ...(sidecar ? { sidecarConfig: { text: sidecar } } : {}),
  });
  if (!r.ok) assert.fail(r.errors.map((e) => `${e.line}:${e.col} ${e.code} ${e.message}`).join('\n'));
  return r;
}

function objects(text: string): Record<string, unknown>[] {
  return parseAllDocuments(text).map((d) => d.toJS() as Record<string, unknown>);
}

function podSpec(o: Record<string, unknown>): IPodSpec {
  const s = o.spec as Record<string, any>;
  if (o.kind === 'Pod') return s as IPodSpec;
  if (o.kind === 'CronJob') return s.jobTemplate.spec.template.spec as IPodSpec;
  return s.template.spec as IPodSpec;
}

async function assertValid(o: Record<string, unknown>) {
  const problems = await schemaProblems(o);
  assert.deepEqual(problems, [], `${String(o.kind)} breaks the API schema`);
}

function sidecarOf(spec: IPodSpec): IContainer {
  const c =
    spec.initContainers?.find((x) => x.name === 'pillion') ??
    spec.containers.find((x) => x.name === 'pillion');
  assert.ok(c, 'no pillion container');
  return c;
}

for (const [kind, manifest] of Object.entries(WORKLOADS)) {
  test(`${kind}: pillion as a native sidecar, valid against the API schema`, async () => {
    const r = await inject(manifest);
    assert.deepEqual(
      r.report.map((x) => x.outcome),
      ['injected (native sidecar)'],
    );
    const [o] = objects(r.output);
    await assertValid(o!);
    const spec = podSpec(o!);
    const sidecar = spec.initContainers![0]!;
    assert.equal(sidecar.name, 'pillion');
    assert.equal(sidecar.restartPolicy, 'Always');
    assert.equal(sidecar.startupProbe?.httpGet?.path, '/healthz');
    assert.equal(sidecar.readinessProbe?.httpGet?.path, '/readyz');
    assert.equal(sidecar.securityContext?.runAsNonRoot, true);
    assert.equal(sidecar.securityContext?.readOnlyRootFilesystem, true);
    assert.deepEqual(sidecar.resources, {
      requests: { cpu: '100m', memory: '128Mi' },
      limits: { memory: '256Mi' },
    });
    assert.deepEqual(sidecar.command, [
      'pillion',
      'run',
      '-c',
      '/etc/pillion/pillion.yaml',
      '--probe-listen',
      ':15021',
    ]);
    assert.deepEqual(
      spec.volumes!.map((v) => v.name),
      ['logs', 'pillion-config', 'pillion-data'],
    );
    assert.deepEqual(
      spec.containers.map((c) => c.name),
      ['app'],
    );
    // The app's comments are kept.
    assert.match(r.output, /# the app, untouched\n/);
    assert.match(r.output, /image: shop\/app:1.0 # pinned/);
  });
}

test('a List and a multi-document file: every workload injected, other kinds passed through byte for byte', async () => {
  const list = `apiVersion: v1
kind: List
items:
  - ${indent(WORKLOADS.Deployment!, 4).trimStart()}
  - apiVersion: v1
    kind: ConfigMap
    metadata: { name: other }
    data: { a: b }
`;
  const text = `${SERVICE}---\n${list}---\n${WORKLOADS.Job}`;
  const r = await inject(text);
  assert.equal(r.report.length, 2);
  assert.ok(r.output.startsWith(SERVICE), 'the Service is not as written');
  const [svc, l, job] = objects(r.output);
  assert.equal(svc!.kind, 'Service');
  const items = (l as { items: Record<string, unknown>[] }).items;
  await assertValid(items[0]!);
  assert.equal(sidecarOf(podSpec(items[0]!)).name, 'pillion');
  assert.deepEqual(items[1], {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'other' },
    data: { a: 'b' },
  });
  await assertValid(job!);
});

test('injecting an injected manifest gives the same manifest (inject twice = once)', async () => {
  for (const manifest of Object.values(WORKLOADS)) {
    const once = await inject(manifest, defaultInjectorConfig(), 'admin: { listen: 127.0.0.1:15000 }\n');
    const twice = await inject(once.output, defaultInjectorConfig(), 'admin: { listen: 127.0.0.1:15000 }\n');
    assert.equal(twice.output, once.output);
  }
});

test('re-injection replaces the earlier injection: new settings, still one sidecar', async () => {
  const once = await inject(WORKLOADS.Deployment!);
  const config = defaultInjectorConfig();
  config.sidecar.image = 'registry.example/pillion:0.2.0';
  const again = await inject(once.output, config);
  const spec = podSpec(objects(again.output)[0]!);
  assert.deepEqual(
    spec.initContainers!.map((c) => [c.name, c.image]),
    [['pillion', 'registry.example/pillion:0.2.0']],
  );
  assert.equal(spec.volumes!.filter((v) => v.name === 'pillion-config').length, 1);
});

test("a container named pillion customises the injected one (Istio's overlay rule), and stays applied on re-injection", async () => {
  const manifest = WORKLOADS.Deployment!.replace(
    '      containers:\n',
    `      containers:
        - name: pillion
          resources: { limits: { memory: 512Mi } }
          env: [{ name: LOG_LEVEL, value: debug }]
`,
  );
  const once = await inject(manifest);
  const o = objects(once.output)[0]!;
  await assertValid(o);
  const spec = podSpec(o);
  assert.deepEqual(
    spec.containers.map((c) => c.name),
    ['app'],
  );
  const sidecar = sidecarOf(spec);
  assert.equal(sidecar.restartPolicy, 'Always');
  assert.deepEqual(sidecar.resources, {
    requests: { cpu: '100m', memory: '128Mi' },
    limits: { memory: '512Mi' },
  });
  assert.deepEqual(sidecar.env!.at(-1), { name: 'LOG_LEVEL', value: 'debug' });
  assert.equal(sidecar.image, 'pillion/pillion:0.1.0');
  const twice = await inject(once.output);
  assert.equal(twice.output, once.output);
});

test('opt-out by annotation or label, and hostNetwork pods, are left as they are', async () => {
  const cases = [
    WORKLOADS.Deployment!.replace(
      'metadata: { labels: { app: app } }',
      "metadata: { labels: { app: app }, annotations: { pillion.dev/inject: 'false' } }",
    ),
    WORKLOADS.Deployment!.replace(
      'labels: { app: app } }\n    spec:',
      "labels: { app: app, pillion.dev/inject: 'false' } }\n    spec:",
    ),
    WORKLOADS.Deployment!.replace(
      '    spec:\n      containers:',
      '    spec:\n      hostNetwork: true\n      containers:',
    ),
  ];
  const reasons = [];
  for (const manifest of cases) {
    const r = await inject(manifest);
    assert.equal(r.output, manifest);
    reasons.push(r.report[0]!.outcome);
  }
  assert.match(reasons[0]!, /^skipped: the pod says pillion.dev\/inject: "false"/);
  assert.match(reasons[1]!, /^skipped: the pod says/);
  assert.match(reasons[2]!, /^skipped: the pod uses the host network/);
  // The label wins over the annotation.
  const both = WORKLOADS.Deployment!.replace(
    'metadata: { labels: { app: app } }',
    "metadata: { labels: { app: app, pillion.dev/inject: 'true' }, annotations: { pillion.dev/inject: 'false' } }",
  );
  assert.equal((await inject(both)).report[0]!.outcome, 'injected (native sidecar)');
  // With policy disabled, only pods that opt in.
  const disabled = defaultInjectorConfig();
  disabled.injection.policy = 'disabled';
  assert.match(
    (await inject(WORKLOADS.Deployment!, disabled)).report[0]!.outcome,
    /^skipped: injection.policy is disabled/,
  );
});

test('legacy mode: pillion first among the containers with a blocking postStart; Jobs get /quitquitquit wiring', async () => {
  const config = defaultInjectorConfig();
  config.sidecar.mode = 'legacy';
  for (const kind of ['Deployment', 'Job', 'CronJob']) {
    const r = await inject(WORKLOADS[kind]!, config);
    const o = objects(r.output)[0]!;
    await assertValid(o);
    const spec = podSpec(o);
    assert.equal(spec.initContainers, undefined);
    assert.deepEqual(
      spec.containers.map((c) => c.name),
      ['pillion', 'app'],
    );
    const sidecar = spec.containers[0]!;
    assert.equal(sidecar.restartPolicy, undefined);
    assert.deepEqual(sidecar.lifecycle?.postStart?.exec?.command?.slice(0, 2), ['node', '-e']);
    assert.equal(sidecar.lifecycle?.postStart?.exec?.command?.[3], 'http://127.0.0.1:15021/healthz');
    const quit = spec.containers[1]!.env?.find((e) => e.name === 'PILLION_QUIT_URL');
    if (kind === 'Deployment') assert.equal(quit, undefined);
    else assert.equal(quit?.value, 'http://127.0.0.1:15000/quitquitquit');
    const meta = (kind === 'Deployment' ? (o.spec as any).template.metadata : undefined) as any;
    if (meta) assert.equal(meta.annotations['kubectl.kubernetes.io/default-container'], 'app');
    assert.equal((await inject(r.output, config)).output, r.output);
  }
  // The annotation chooses per pod.
  const native = WORKLOADS.Deployment!.replace(
    'metadata: { labels: { app: app } }',
    'metadata: { labels: { app: app }, annotations: { pillion.dev/sidecar-mode: legacy } }',
  );
  assert.equal((await inject(native)).report[0]!.outcome, 'injected (legacy sidecar)');
});

test('annotations: log paths share a volume, resources and interception are per pod', async () => {
  const manifest = WORKLOADS.Deployment!.replace(
    'metadata: { labels: { app: app } }',
    `metadata:
      labels: { app: app }
      annotations:
        pillion.dev/log-path: /var/log/app,/srv/logs
        pillion.dev/memory-limit: 1Gi
        pillion.dev/interception: iptables
        pillion.dev/exclude-outbound-ports: "5432"
        pillion.dev/tls-secret: app-tls`,
  );
  const o = objects((await inject(manifest)).output)[0]!;
  await assertValid(o);
  const spec = podSpec(o);
  assert.deepEqual(
    spec.initContainers!.map((c) => c.name),
    ['pillion-init', 'pillion'],
  );
  const init = spec.initContainers![0]!;
  assert.deepEqual(init.securityContext?.capabilities?.add, ['NET_ADMIN', 'NET_RAW']);
  assert.deepEqual(init.command, [
    'pillion',
    'iptables',
    '--apply',
    '--inbound-port',
    '15006',
    '--outbound-port',
    '15001',
    '--uid',
    '1337',
    '--inbound-ports',
    '8080',
    '--exclude-outbound-ports',
    '5432',
  ]);
  const sidecar = spec.initContainers![1]!;
  assert.equal(sidecar.resources?.limits?.memory, '1Gi');
  // /var/log/app is the app's own volume; /srv/logs is a new one mounted in the app too.
  assert.deepEqual(
    sidecar.volumeMounts!.slice(2).map((m) => [m.name, m.mountPath, m.readOnly]),
    [
      ['logs', '/var/log/app', true],
      ['pillion-logs-1', '/srv/logs', true],
      ['pillion-tls', '/etc/pillion-tls', true],
    ],
  );
  assert.deepEqual(
    spec.containers[0]!.volumeMounts!.map((m) => m.mountPath),
    ['/var/log/app', '/srv/logs'],
  );
});

test('bad annotations and invalid workloads are errors at their line:col, nothing is written', async () => {
  const manifest = WORKLOADS.Deployment!.replace(
    'metadata: { labels: { app: app } }',
    `metadata:
      labels: { app: app }
      annotations:
        pillion.dev/inbound-port: "8080"
        pillion.dev/cpu: lots`,
  );
  const r = await injectManifests(manifest, 'in.yaml', { config: defaultInjectorConfig() });
  assert.ok(!r.ok);
  assert.deepEqual(
    r.errors.map((e) => [e.line, e.col, e.code, e.message, e.hint]),
    [
      [
        10,
        9,
        'PILLION_ERR_INJECT_ANNOTATION',
        'unknown annotation pillion.dev/inbound-port',
        'did you mean "pillion.dev/inbound-ports"?',
      ],
      [
        11,
        9,
        'PILLION_ERR_INJECT_ANNOTATION',
        '"lots" is not a Kubernetes quantity',
        'write 100m, 0.5, 128Mi or 1Gi',
      ],
    ],
  );
  const bad = WORKLOADS.Deployment!.replace('containerPort: 8080', 'containerPort: http');
  const b = await injectManifests(bad, 'in.yaml', { config: defaultInjectorConfig() });
  assert.ok(!b.ok);
  assert.deepEqual(
    b.errors.map((e) => [e.line, e.col, e.code, e.message]),
    [[14, 30, 'PILLION_ERR_INJECT_MANIFEST', 'Deployment: must be integer']],
  );
  const old = WORKLOADS.Deployment!.replace('apps/v1', 'extensions/v1beta1');
  const c = await injectManifests(old, 'in.yaml', { config: defaultInjectorConfig() });
  assert.ok(!c.ok);
  assert.equal(
    c.errors[0]!.message,
    'pillion injects Deployment of apiVersion apps/v1, not extensions/v1beta1',
  );
});

test('--config adds the ConfigMap the sidecar mounts, in the workload namespace, and updates it in place', async () => {
  const sidecar = '# the sidecar\nadmin:\n  listen: 127.0.0.1:15000\n';
  const r = await inject(WORKLOADS.Deployment!, defaultInjectorConfig(), sidecar);
  const [cm, dep] = objects(r.output);
  await assertValid(cm!);
  assert.deepEqual(cm, {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: 'pillion-sidecar',
      namespace: 'shop',
      labels: { 'app.kubernetes.io/managed-by': 'pillion' },
    },
    data: { 'pillion.yaml': sidecar },
  });
  assert.equal(dep!.kind, 'Deployment');
  const changed = await inject(
    r.output,
    defaultInjectorConfig(),
    `${sidecar}runtime: { drainTimeout: 2s }\n`,
  );
  const [cm2] = objects(changed.output);
  assert.equal(
    (cm2!.data as Record<string, string>)['pillion.yaml'],
    `${sidecar}runtime: { drainTimeout: 2s }\n`,
  );
  assert.equal(objects(changed.output).length, 2);
});

test("pillion.dev/sidecar-position: after-init starts pillion after the pod's own init containers", async () => {
  const manifest = WORKLOADS.Deployment!.replace(
    'metadata: { labels: { app: app } }',
    `metadata: { labels: { app: app }, annotations: { pillion.dev/sidecar-position: after-init } }`,
  ).replace(
    '      containers:\n',
    '      initContainers:\n        - { name: migrate, image: shop/migrate:1.0 }\n      containers:\n',
  );
  const o = objects((await inject(manifest)).output)[0]!;
  await assertValid(o);
  assert.deepEqual(
    podSpec(o).initContainers!.map((c) => c.name),
    ['migrate', 'pillion'],
  );
  const first = objects((await inject(manifest.replace('after-init', 'first'))).output)[0]!;
  assert.deepEqual(
    podSpec(first).initContainers!.map((c) => c.name),
    ['pillion', 'migrate'],
  );
});
