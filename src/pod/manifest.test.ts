import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatIssue } from '../config/index.js';
import { parseManifest } from './manifest.js';

const POD = (spec: string, extra = '') => `${extra}apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: { app: web }
spec:
${spec}`;

function errors(text: string) {
  const r = parseManifest(text, 'pod.yaml');
  assert.equal(r.ok, false, 'expected errors');
  return r.ok ? [] : r.errors.map(formatIssue);
}

test('a Pod with ConfigMap and Secret documents is read, with Kubernetes defaults', () => {
  const r = parseManifest(
    `apiVersion: v1
kind: ConfigMap
metadata: { name: cfg }
data: { a: "1" }
binaryData: { b: aGk= }
---
apiVersion: v1
kind: Secret
metadata: { name: sec }
data: { token: c2VjcmV0 }
stringData: { plain: text }
---
${POD('  containers:\n    - name: app\n      command: [sleep, "1"]\n      readinessProbe:\n        httpGet: { port: 8080 }\n')}`,
    'pod.yaml',
  );
  assert.ok(r.ok, r.ok ? '' : r.errors.map(formatIssue).join('\n'));
  const m = r.manifest;
  assert.equal(m.kind, 'Pod');
  assert.equal(m.namespace, 'default');
  assert.equal(m.spec.restartPolicy, 'Always');
  assert.equal(m.spec.terminationGracePeriodSeconds, 30);
  const p = m.spec.containers[0]!.readinessProbe!;
  assert.deepEqual(
    [
      p.initialDelaySeconds,
      p.periodSeconds,
      p.timeoutSeconds,
      p.successThreshold,
      p.failureThreshold,
      p.httpGet?.path,
      p.httpGet?.scheme,
    ],
    [0, 10, 1, 1, 3, '/', 'HTTP'],
  );
  assert.equal(m.configMaps.get('cfg')!.get('b')!.toString(), 'hi');
  assert.equal(m.secrets.get('sec')!.get('token')!.toString(), 'secret');
  assert.equal(m.secrets.get('sec')!.get('plain')!.toString(), 'text');
  assert.match(m.uid, /^[0-9a-f-]{36}$/);
});

test("a Job's or Deployment's pod template is run, with the template's labels", () => {
  const job = parseManifest(
    `apiVersion: batch/v1
kind: Job
metadata: { name: migrate }
spec:
  backoffLimit: 2
  template:
    metadata: { labels: { run: once } }
    spec:
      restartPolicy: Never
      containers: [{ name: m, command: ["true"] }]
`,
    'job.yaml',
  );
  assert.ok(job.ok);
  assert.equal(job.manifest.kind, 'Job');
  assert.equal(job.manifest.spec.restartPolicy, 'Never');
  assert.deepEqual(job.manifest.labels, { run: 'once' });
  assert.deepEqual(
    job.warnings.map((w) => `${w.line}:${w.col} ${w.code}`),
    ['5:3 PILLION_ERR_POD_UNSUPPORTED_FIELD'],
  );
  const dep = parseManifest(
    `apiVersion: apps/v1
kind: Deployment
metadata: { name: api }
spec:
  replicas: 3
  template:
    spec:
      containers: [{ name: api, command: [sleep, "1"] }]
`,
    'dep.yaml',
  );
  assert.ok(dep.ok);
  assert.equal(dep.manifest.spec.restartPolicy, 'Always');
  assert.ok(dep.warnings.some((w) => w.message.includes('run once')));
});

test('a container without a command: pillion runs processes, not images', () => {
  assert.deepEqual(errors(POD('  containers:\n    - name: app\n      image: nginx:1.27\n')), [
    'pod.yaml:8:7 PILLION_ERR_POD_NO_COMMAND spec.containers[0]: container "app" has no command: pillion runs processes, not images (add command: [...] with what the image\'s entrypoint would run)',
  ]);
});

test('cross-field errors point where the mistake is written', () => {
  const lines = errors(
    POD(`  volumes:
    - { name: data, emptyDir: {} }
  initContainers:
    - name: init
      command: ["true"]
      livenessProbe: { exec: { command: ["true"] } }
  containers:
    - name: app
      command: ["true"]
      volumeMounts: [{ name: dta, mountPath: /data }]
      env:
        - name: X
          valueFrom: { configMapKeyRef: { name: missing, key: k } }
    - name: app
      command: ["true"]
`),
  );
  assert.deepEqual(lines, [
    'pod.yaml:10:7 PILLION_ERR_POD_INIT_PROBE spec.initContainers[0]: init container "init" may not have probes or lifecycle hooks (add restartPolicy: Always to make it a sidecar)',
    'pod.yaml:16:30 PILLION_ERR_POD_UNKNOWN_VOLUME spec.containers[0].volumeMounts[0].name: no volume named "dta" (volumes: data)',
    'pod.yaml:19:22 PILLION_ERR_POD_MISSING_REF spec.containers[0].env[0].valueFrom: no ConfigMap named "missing" in the file (add it, or set optional: true)',
    'pod.yaml:20:13 PILLION_ERR_POD_DUPLICATE_NAME spec.containers[1].name: container name "app" is used twice',
  ]);
});

test('schema errors and YAML errors carry line:col', () => {
  assert.deepEqual(
    errors(POD('  restartPolicy: Sometimes\n  containers:\n    - { name: a, command: ["true"] }\n')),
    [
      'pod.yaml:7:18 PILLION_ERR_CONFIG_BAD_ENUM spec.restartPolicy: the string "Sometimes" is not one of "Always", "OnFailure", "Never"',
    ],
  );
  assert.deepEqual(errors(POD('  containers:\n    - { name: Web_1, command: ["true"] }\n')), [
    'pod.yaml:8:15 PILLION_ERR_CONFIG_BAD_VALUE spec.containers[0].name: the string "Web_1": must be a lowercase RFC 1123 label (a-z, 0-9, "-") (pattern /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/)',
  ]);
  assert.equal(
    errors('apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n   bad: indent\n')[0],
    'pod.yaml:4:9 PILLION_ERR_CONFIG_YAML_SYNTAX (root): Nested mappings are not allowed in compact mappings',
  );
  assert.deepEqual(errors('apiVersion: v1\nkind: ConfigMap\nmetadata: { name: c }\n'), [
    'pod.yaml:1:1 PILLION_ERR_POD_NO_WORKLOAD (root): no Pod, Job or Deployment in the file',
  ]);
  assert.match(
    errors(
      `${POD('  containers: [{ name: a, command: ["true"] }]\n')}---\n${POD('  containers: [{ name: b, command: ["true"] }]\n')}`,
    )[0]!,
    /PILLION_ERR_POD_MULTIPLE_WORKLOADS/,
  );
  assert.deepEqual(
    errors(
      'apiVersion: batch/v1\nkind: Job\nmetadata: { name: j }\nspec:\n  template:\n    spec:\n      containers: [{ name: a, command: ["true"] }]\n',
    ),
    [
      "pod.yaml:7:7 PILLION_ERR_CONFIG_BAD_VALUE spec.template.spec.restartPolicy: a Job's pod template must have restartPolicy OnFailure or Never",
    ],
  );
});

test('fields that mean nothing here, and unknown ones, are warnings that name them with line:col', () => {
  const r = parseManifest(
    POD(`  nodeSelector: { disk: ssd }
  containers:
    - name: app
      image: nginx
      command: ["true"]
      ports: [{ containerPort: 80, hostPort: 80 }]
      livenesProbe: { tcpSocket: { port: 80 } }
`) + '---\napiVersion: v1\nkind: Service\nmetadata: { name: web }\n',
    'pod.yaml',
  );
  assert.ok(r.ok);
  assert.deepEqual(r.warnings.map(formatIssue), [
    'pod.yaml:7:3 PILLION_ERR_POD_UNSUPPORTED_FIELD spec.nodeSelector: ignored: there is one node: this host',
    'pod.yaml:12:36 PILLION_ERR_POD_UNSUPPORTED_FIELD spec.containers[0].ports[0].hostPort: ignored: processes share the host network: a containerPort is already the host port',
    'pod.yaml:13:7 PILLION_ERR_CONFIG_UNKNOWN_KEY spec.containers[0].livenesProbe: unknown field, ignored (did you mean "livenessProbe"?)',
    'pod.yaml:16:7 PILLION_ERR_POD_UNSUPPORTED_KIND kind: Service documents are skipped (pillion pod runs Pod, Job and Deployment, with ConfigMap and Secret)',
  ]);
});

test('regression: a subPath that leaves its volume, a ConfigMap key that is a path, and a NUL byte are refused at load', () => {
  const lines = errors(
    `apiVersion: v1
kind: ConfigMap
metadata: { name: cfg }
data: { "../x": boom }
---
${POD(`  volumes: [{ name: v, emptyDir: {} }]
  containers:
    - name: app
      command: ["true", "a\\u0000b"]
      volumeMounts: [{ name: v, mountPath: /m, subPath: ../../etc }]
`)}`,
  );
  assert.deepEqual(
    lines.map((l) => l.split(' ').slice(0, 3).join(' ')),
    [
      'pod.yaml:4:17 PILLION_ERR_CONFIG_BAD_VALUE data.../x:',
      'pod.yaml:15:25 PILLION_ERR_CONFIG_BAD_VALUE spec.containers[0].command[1]:',
      'pod.yaml:16:57 PILLION_ERR_CONFIG_BAD_VALUE spec.containers[0].volumeMounts[0].subPath:',
    ],
  );
});

test('regression: a Secret value that is not base64 is reported without the value', () => {
  const lines = errors(
    `apiVersion: v1\nkind: Secret\nmetadata: { name: s }\ndata: { token: "hunter2-not-base64!" }\n---\n${POD('  containers: [{ name: a, command: ["true"] }]\n')}`,
  );
  assert.equal(lines.length, 1);
  assert.ok(!lines[0]!.includes('hunter2'), lines[0]);
});
