import assert from 'node:assert/strict';
import { availableParallelism, totalmem } from 'node:os';
import { test } from 'node:test';
import { baseEnv, containerEnv, expand, fieldValue } from './env.js';
import { parseManifest } from './manifest.js';

const manifest = () => {
  const r = parseManifest(
    `apiVersion: v1
kind: ConfigMap
metadata: { name: cfg }
data: { HOST: db.local, PORT: "5432" }
---
apiVersion: v1
kind: Secret
metadata: { name: sec }
stringData: { PASSWORD: hunter2 }
---
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: shop
  labels: { app: web, tier: front }
spec:
  containers:
    - name: app
      command: [echo, "$(GREETING)", "$$(LITERAL)", "$(UNDEFINED)"]
      envFrom:
        - configMapRef: { name: cfg }
          prefix: DB_
        - secretRef: { name: sec }
      env:
        - { name: NAME, value: world }
        - { name: GREETING, value: "hello $(NAME) on $(DB_HOST):$(DB_PORT)" }
        - { name: DB_PORT, value: "6543" }
        - name: POD
          valueFrom: { fieldRef: { fieldPath: metadata.name } }
        - name: NS
          valueFrom: { fieldRef: { fieldPath: metadata.namespace } }
        - name: IP
          valueFrom: { fieldRef: { fieldPath: status.podIP } }
        - name: TIER
          valueFrom: { fieldRef: { fieldPath: "metadata.labels['tier']" } }
        - name: OPT
          valueFrom: { configMapKeyRef: { name: cfg, key: nope, optional: true } }
`,
    'pod.yaml',
  );
  assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.errors));
  return r.manifest;
};

test('env is built as the kubelet builds it: envFrom, then env in order, $(VAR) of earlier entries', () => {
  const m = manifest();
  const env = containerEnv(m.spec.containers[0]!, m, { PATH: '/bin' });
  assert.equal(env.DB_HOST, 'db.local');
  assert.equal(env.PASSWORD, 'hunter2');
  assert.equal(
    env.GREETING,
    'hello world on db.local:5432',
    'uses DB_PORT as it was when GREETING was defined',
  );
  assert.equal(env.DB_PORT, '6543', 'a later env entry overrides envFrom');
  assert.equal(env.POD, 'web');
  assert.equal(env.NS, 'shop');
  assert.equal(env.IP, '127.0.0.1');
  assert.equal(env.TIER, 'front');
  assert.ok(!('OPT' in env), 'an optional reference that is absent sets nothing');
  assert.equal(env.PATH, '/bin');
});

test('$(VAR) expansion in command and args; $$ escapes; unknown references stay as written', () => {
  const env = { GREETING: 'hi' };
  assert.deepEqual(
    ['$(GREETING)', '$$(LITERAL)', '$(UNDEFINED)', 'a$(GREETING)b$(GREETING)'].map((s) => expand(s, env)),
    ['hi', '$(LITERAL)', '$(UNDEFINED)', 'ahibhi'],
  );
});

test('the downward API formats label maps as key="value" lines', () => {
  assert.equal(fieldValue('metadata.labels', manifest()), 'app="web"\ntier="front"');
});

test('regression: resourceFieldRef resolves as the kubelet does: limit or request / divisor, rounded up; an unset limit is the node allocatable', () => {
  const r = parseManifest(
    `apiVersion: v1
kind: Pod
metadata: { name: web }
spec:
  containers:
    - name: app
      command: ["true"]
      resources:
        limits: { cpu: 500m, memory: 64Mi }
      env:
        - { name: CPU, valueFrom: { resourceFieldRef: { resource: limits.cpu } } }
        - { name: CPU_M, valueFrom: { resourceFieldRef: { resource: limits.cpu, divisor: 1m } } }
        - { name: MEM_MI, valueFrom: { resourceFieldRef: { resource: limits.memory, divisor: 1Mi } } }
        - { name: REQ_CPU_M, valueFrom: { resourceFieldRef: { resource: requests.cpu, divisor: 1m } } }
        - { name: SIDE_MEM, valueFrom: { resourceFieldRef: { containerName: side, resource: limits.memory } } }
        - { name: SIDE_CPU, valueFrom: { resourceFieldRef: { containerName: side, resource: limits.cpu } } }
        - { name: SIDE_REQ, valueFrom: { resourceFieldRef: { containerName: side, resource: requests.memory } } }
    - name: side
      command: ["true"]
`,
    'pod.yaml',
  );
  assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.errors));
  const node = { cpu: 8, memory: 16 * 1024 ** 3 };
  const env = containerEnv(r.manifest.spec.containers[0]!, r.manifest, {}, node);
  assert.deepEqual(
    [env.CPU, env.CPU_M, env.MEM_MI, env.REQ_CPU_M, env.SIDE_MEM, env.SIDE_CPU, env.SIDE_REQ],
    ['1', '500', '64', '500', String(16 * 1024 ** 3), '8', '0'],
  );
  // Without a node given: this host's CPU count and memory.
  const host = containerEnv(r.manifest.spec.containers[0]!, r.manifest, {});
  assert.equal(host.SIDE_CPU, String(availableParallelism()));
  assert.equal(host.SIDE_MEM, String(totalmem()));
});

test('every container is told its pod: name, namespace and the run directory with the status of its containers', () => {
  const pod = manifest();
  assert.deepEqual(
    baseEnv({ PATH: '/bin', SECRET_OF_THE_HOST: 'x' }, pod, '/var/lib/pillion/run/shop_web_1'),
    {
      HOSTNAME: 'web',
      PILLION_POD_NAME: 'web',
      PILLION_POD_NAMESPACE: 'shop',
      PILLION_POD_DIR: '/var/lib/pillion/run/shop_web_1',
      PATH: '/bin',
    },
  );
});
