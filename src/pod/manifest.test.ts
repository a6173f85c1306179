import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatIssue } from '../config/index.js';
import { loadManifest, parseManifest } from './manifest.js';

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
    'pod.yaml:1:1 PILLION_ERR_POD_NO_WORKLOAD (root): no Pod, Job, Deployment, ReplicaSet, StatefulSet or DaemonSet in the file',
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

test('fields that mean nothing here are warnings that name them with line:col; images get one note', () => {
  const r = parseManifest(
    POD(`  nodeSelector: { disk: ssd }
  containers:
    - name: app
      image: nginx
      command: ["true"]
      ports: [{ containerPort: 80, hostPort: 80 }]
    - name: b
      image: nginx
      imagePullPolicy: IfNotPresent
      command: ["true"]
`) + '---\napiVersion: v1\nkind: Service\nmetadata: { name: web }\n',
    'pod.yaml',
  );
  assert.ok(r.ok, r.ok ? '' : r.errors.map(formatIssue).join('\n'));
  assert.deepEqual(r.warnings.map(formatIssue), [
    'pod.yaml:7:3 PILLION_ERR_POD_UNSUPPORTED_FIELD spec.nodeSelector: ignored: there is one node: this host',
    'pod.yaml:12:36 PILLION_ERR_POD_UNSUPPORTED_FIELD spec.containers[0].ports[0].hostPort: ignored: processes share the host network: a containerPort is already the host port',
    'pod.yaml:19:7 PILLION_ERR_POD_UNSUPPORTED_KIND kind: Service documents are skipped (pillion pod runs Pod, Job, Deployment, ReplicaSet, StatefulSet and DaemonSet, with ConfigMap and Secret)',
  ]);
  assert.deepEqual(r.notes, [
    'images are not pulled: each container runs its command on this host (2 of 2 containers name an image, shown by pillion pod describe)',
  ]);
});

test('regression: a misspelt field is an error with a did-you-mean, as kubectl apply makes it; --strict=false keeps it a warning', () => {
  const text = POD(`  containers:
    - name: app
      command: ["true"]
      livenesProbe: { tcpSocket: { port: 80 } }
      readinessProbe: { tcpSocket: { prot: 80, port: 80 } }
`);
  assert.deepEqual(errors(text), [
    'pod.yaml:10:7 PILLION_ERR_CONFIG_UNKNOWN_KEY spec.containers[0].livenesProbe: unknown field (did you mean "livenessProbe"?)',
    'pod.yaml:11:38 PILLION_ERR_CONFIG_UNKNOWN_KEY spec.containers[0].readinessProbe.tcpSocket.prot: unknown field (did you mean "port"?)',
  ]);
  const lax = parseManifest(text, 'pod.yaml', { strict: false });
  assert.ok(lax.ok);
  assert.deepEqual(
    lax.warnings.map((w) => `${w.line}:${w.col} ${w.code} ${w.message} (${w.hint})`),
    [
      '10:7 PILLION_ERR_CONFIG_UNKNOWN_KEY unknown field, ignored (did you mean "livenessProbe"?)',
      '11:38 PILLION_ERR_CONFIG_UNKNOWN_KEY unknown field, ignored (did you mean "port"?)',
    ],
  );
});

test('regression: a Deployment, ReplicaSet, StatefulSet or DaemonSet template with a restartPolicy other than Always is refused, as the API server refuses it', () => {
  for (const kind of ['Deployment', 'ReplicaSet', 'StatefulSet', 'DaemonSet']) {
    assert.deepEqual(
      errors(
        `apiVersion: apps/v1\nkind: ${kind}\nmetadata: { name: w }\nspec:\n  template:\n    spec:\n      restartPolicy: OnFailure\n      containers: [{ name: a, command: ["true"] }]\n`,
      ),
      [
        `pod.yaml:7:22 PILLION_ERR_CONFIG_BAD_VALUE spec.template.spec.restartPolicy: a ${kind}'s pod template must have restartPolicy Always (the API server refuses "OnFailure" here; a Job runs a pod to completion)`,
      ],
    );
  }
  const sts = parseManifest(
    'apiVersion: apps/v1\nkind: StatefulSet\nmetadata: { name: db }\nspec:\n  serviceName: db\n  replicas: 3\n  template:\n    spec:\n      containers: [{ name: a, command: ["true"] }]\n',
    'pod.yaml',
  );
  assert.ok(sts.ok);
  assert.equal(sts.manifest.kind, 'StatefulSet');
  assert.equal(sts.manifest.spec.restartPolicy, 'Always');
});

test('Kubernetes features that would change what runs are errors that say so, not unknown fields', () => {
  const lines = errors(
    POD(`  volumes:
    - { name: data, persistentVolumeClaim: { claimName: data } }
  containers:
    - name: app
      command: ["true"]
      readinessProbe: { grpc: { port: 9000 } }
      volumeMounts: [{ name: data, mountPath: /data, subPathExpr: "$(POD)" }]
`),
  );
  assert.deepEqual(lines, [
    'pod.yaml:8:44 PILLION_ERR_POD_UNSUPPORTED spec.volumes[0].persistentVolumeClaim: persistentVolumeClaim volumes are not supported here (emptyDir, hostPath, configMap, secret and downwardAPI are)',
    'pod.yaml:12:31 PILLION_ERR_POD_UNSUPPORTED spec.containers[0].readinessProbe.grpc: grpc probes are not supported here (use an exec probe running grpc_health_probe, or tcpSocket)',
    'pod.yaml:13:67 PILLION_ERR_POD_UNSUPPORTED spec.containers[0].volumeMounts[0].subPathExpr: subPathExpr is not supported here (use subPath)',
  ]);
});

test("regression: named probe ports must be declared in the container's ports, whose names are unique", () => {
  const at = (ports: string, probes = '') =>
    errors(
      POD(`  containers:
    - name: app
      command: ["true"]
      ports: ${ports}
${probes}`),
    );
  assert.deepEqual(at('[{ name: http, containerPort: 8080 }, { name: http, containerPort: 8081 }]'), [
    'pod.yaml:10:60 PILLION_ERR_POD_DUPLICATE_NAME spec.containers[0].ports[1].name: port name "http" is used twice',
  ]);
  assert.deepEqual(at('[{ name: Admin_1, containerPort: 9000 }]'), [
    'pod.yaml:10:23 PILLION_ERR_CONFIG_BAD_VALUE spec.containers[0].ports[0].name: the string "Admin_1": must be lowercase letters, digits and "-" (pattern /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/)',
  ]);
  assert.deepEqual(
    at(
      '[{ name: http, containerPort: 8080 }]',
      `      readinessProbe: { httpGet: { path: /, port: htp } }
      livenessProbe: { tcpSocket: { port: metrics } }
      lifecycle: { preStop: { httpGet: { path: /quit, port: "8080" } } }
`,
    ),
    [
      'pod.yaml:11:51 PILLION_ERR_POD_UNKNOWN_PORT spec.containers[0].readinessProbe.httpGet.port: no port named "htp" in container "app" (did you mean "http"?)',
      'pod.yaml:12:43 PILLION_ERR_POD_UNKNOWN_PORT spec.containers[0].livenessProbe.tcpSocket.port: no port named "metrics" in container "app" (its ports: http)',
    ],
  );
});

test("regression: resourceFieldRef is read (env and downwardAPI items), with the API server's rules for resource, divisor and containerName", () => {
  const ok = parseManifest(
    POD(`  volumes:
    - name: info
      downwardAPI:
        items: [{ path: mem, resourceFieldRef: { containerName: app, resource: limits.memory, divisor: 1Mi } }]
  containers:
    - name: app
      command: ["true"]
      resources: { limits: { memory: 64Mi } }
      env:
        - name: CPU
          valueFrom: { resourceFieldRef: { resource: limits.cpu, divisor: 1m } }
`),
    'pod.yaml',
  );
  assert.ok(ok.ok, ok.ok ? '' : ok.errors.map(formatIssue).join('\n'));
  const volume = (item: string) =>
    errors(
      POD(`  volumes:
    - name: info
      downwardAPI:
        items: [${item}]
  containers:
    - name: app
      command: ["true"]
`),
    );
  assert.deepEqual(volume('{ path: a, resourceFieldRef: { resource: limits.memory } }'), [
    'pod.yaml:10:46 PILLION_ERR_CONFIG_MISSING_KEY spec.volumes[0].downwardAPI.items[0].resourceFieldRef: a resourceFieldRef in a volume needs containerName (name the container whose resources the file shows)',
  ]);
  assert.deepEqual(volume('{ path: b, resourceFieldRef: { containerName: ap, resource: limits.cpu } }'), [
    'pod.yaml:10:63 PILLION_ERR_CONFIG_BAD_VALUE spec.volumes[0].downwardAPI.items[0].resourceFieldRef.containerName: no container named "ap" in the pod (did you mean "app"?)',
  ]);
  const env = (ref: string) =>
    errors(
      POD(`  containers:
    - name: app
      command: ["true"]
      env: [{ name: A, valueFrom: { resourceFieldRef: ${ref} } }]
`),
    );
  assert.deepEqual(env('{ resource: limits.ephemeral-storage }'), [
    'pod.yaml:10:67 PILLION_ERR_CONFIG_BAD_VALUE spec.containers[0].env[0].valueFrom.resourceFieldRef.resource: resource "limits.ephemeral-storage" is not supported here (use one of limits.cpu, limits.memory, requests.cpu, requests.memory)',
  ]);
  assert.deepEqual(env('{ resource: requests.cpu, divisor: 1Mi }'), [
    'pod.yaml:10:90 PILLION_ERR_CONFIG_BAD_VALUE spec.containers[0].env[0].valueFrom.resourceFieldRef.divisor: divisor "1Mi" is not allowed for requests.cpu (the cpu divisors are 1m and 1)',
  ]);
  assert.deepEqual(env('{ containerName: sidecar, resource: limits.cpu }'), [
    'pod.yaml:10:72 PILLION_ERR_CONFIG_BAD_VALUE spec.containers[0].env[0].valueFrom.resourceFieldRef.containerName: no container named "sidecar" in the pod (containers: app)',
  ]);
  assert.deepEqual(
    errors(
      POD(`  containers:\n    - name: app\n      command: ["true"]\n      env: [{ name: 1C, value: x }]\n`),
    ),
    [
      'pod.yaml:10:21 PILLION_ERR_CONFIG_BAD_VALUE spec.containers[0].env[0].name: the string "1C": must be letters, digits, "_", "-" or "." and may not start with a digit (pattern /^[-._a-zA-Z][-._a-zA-Z0-9]*$/)',
    ],
  );
});

test('a readiness probe may not set terminationGracePeriodSeconds, as the API server says', () => {
  assert.deepEqual(
    errors(
      POD(`  containers:
    - name: app
      command: ["true"]
      readinessProbe: { exec: { command: ["true"] }, terminationGracePeriodSeconds: 5 }
`),
    ),
    [
      'pod.yaml:10:85 PILLION_ERR_CONFIG_BAD_VALUE spec.containers[0].readinessProbe.terminationGracePeriodSeconds: readinessProbe may not set terminationGracePeriodSeconds (a readiness failure never stops the container; set it on a liveness or startup probe)',
    ],
  );
});

test('regression: an unclosed quote is reported at the line and column where it opens', () => {
  assert.deepEqual(
    errors(
      POD(`  containers:
    - name: app
      command: [sh, -c, 'echo hi]
    - name: b
      command: ["true"]
`),
    ),
    [
      `pod.yaml:9:25 PILLION_ERR_CONFIG_YAML_SYNTAX (root): this single quote is never closed (add the closing ')`,
    ],
  );
});

test('the demo manifest (examples/legacy-orders/pod.yaml) loads with no warnings', async () => {
  const file = new URL('../../examples/legacy-orders/pod.yaml', import.meta.url).pathname;
  const r = await loadManifest(file);
  assert.ok(r.ok, r.ok ? '' : r.errors.map(formatIssue).join('\n'));
  assert.deepEqual(r.warnings.map(formatIssue), []);
  assert.equal(r.notes.length, 1, 'one note says the images are not pulled');
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
