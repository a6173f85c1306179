// The webhook over HTTPS with AdmissionReview documents shaped as the API server sends them (the
// Kubernetes docs' example, and a Pod as a ReplicaSet creates it, defaults filled in): the patch
// applied with a JSON Patch library and the result checked against the Pod API schema. Then what
// must not crash or hang it (malformed, oversized, slow), certificate reload and graceful shutdown.

import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { connect, type TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import jsonpatch from 'fast-json-patch';
import pino from 'pino';
import { systemClock } from '../lib/clock.js';
import { waitFor } from '../lib/wait-for.js';
import { createMetricsRegistry, renderText } from '../metrics/index.js';
import { makeCa, makeLeaf, type TestCa } from '../proxy/tls/test-certs.js';
import { defaultInjectorConfig } from './config.js';
import { schemaProblems } from './models.js';
import { InjectionWebhook } from './webhook.js';

const dir = mkdtempSync(join(tmpdir(), 'pillion-webhook-'));
let ca: TestCa;
let webhook: InjectionWebhook;
let port = 0;
const metrics = createMetricsRegistry();

before(async () => {
  ca = await makeCa();
  const leaf = await makeLeaf(ca, { names: ['pillion-webhook.pillion-system.svc', '127.0.0.1'] });
  writeFileSync(join(dir, 'tls.crt'), leaf.cert);
  writeFileSync(join(dir, 'tls.key'), leaf.key);
  const config = defaultInjectorConfig();
  config.webhook.maxRequestBytes = 64 * 1024;
  config.webhook.readTimeout = 300;
  config.webhook.shutdownGrace = 5_000;
  webhook = new InjectionWebhook({
    config,
    cert: join(dir, 'tls.crt'),
    key: join(dir, 'tls.key'),
    listen: { host: '127.0.0.1', port: 0 },
    logger: pino({ level: 'silent' }),
    metrics,
    clock: systemClock,
  });
  await webhook.start();
  port = webhook.address().port;
});
after(async () => {
  await webhook.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A Pod as the API server sends it for a Deployment's ReplicaSet: defaults and the token volume filled in. */
function replicaSetPod(
  extra: {
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    hostNetwork?: boolean;
  } = {},
) {
  return {
    kind: 'Pod',
    apiVersion: 'v1',
    metadata: {
      generateName: 'orders-7c5ddbdf54-',
      namespace: 'shop',
      creationTimestamp: null,
      labels: { app: 'orders', 'pod-template-hash': '7c5ddbdf54', ...extra.labels },
      ...(extra.annotations ? { annotations: extra.annotations } : {}),
      ownerReferences: [
        {
          apiVersion: 'apps/v1',
          kind: 'ReplicaSet',
          name: 'orders-7c5ddbdf54',
          uid: '8d9e0f6a-2b1c-4d5e-9f80-1a2b3c4d5e6f',
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
      managedFields: [
        {
          manager: 'kube-controller-manager',
          operation: 'Update',
          apiVersion: 'v1',
          time: '2026-12-05T20:00:00Z',
          fieldsType: 'FieldsV1',
          fieldsV1: { 'f:metadata': { 'f:generateName': {} } },
        },
      ],
    },
    spec: {
      volumes: [
        {
          name: 'kube-api-access-x2k9p',
          projected: {
            sources: [
              { serviceAccountToken: { expirationSeconds: 3607, path: 'token' } },
              { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
              {
                downwardAPI: {
                  items: [
                    { path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } },
                  ],
                },
              },
            ],
            defaultMode: 420,
          },
        },
      ],
      containers: [
        {
          name: 'orders',
          image: 'shop/orders:1.0',
          ports: [{ containerPort: 8080, protocol: 'TCP' }],
          resources: {},
          volumeMounts: [
            {
              name: 'kube-api-access-x2k9p',
              readOnly: true,
              mountPath: '/var/run/secrets/kubernetes.io/serviceaccount',
            },
          ],
          terminationMessagePath: '/dev/termination-log',
          terminationMessagePolicy: 'File',
          imagePullPolicy: 'IfNotPresent',
        },
      ],
      restartPolicy: 'Always',
      terminationGracePeriodSeconds: 30,
      dnsPolicy: 'ClusterFirst',
      serviceAccountName: 'default',
      serviceAccount: 'default',
      ...(extra.hostNetwork ? { hostNetwork: true } : {}),
      securityContext: {},
      schedulerName: 'default-scheduler',
      tolerations: [
        {
          key: 'node.kubernetes.io/not-ready',
          operator: 'Exists',
          effect: 'NoExecute',
          tolerationSeconds: 300,
        },
        {
          key: 'node.kubernetes.io/unreachable',
          operator: 'Exists',
          effect: 'NoExecute',
          tolerationSeconds: 300,
        },
      ],
      priority: 0,
      enableServiceLinks: true,
      preemptionPolicy: 'PreemptLowerPriority',
    },
    status: {},
  };
}

function podReview(uid: string, pod: unknown, opts: { dryRun?: boolean; operation?: string } = {}) {
  return {
    kind: 'AdmissionReview',
    apiVersion: 'admission.k8s.io/v1',
    request: {
      uid,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      requestKind: { group: '', version: 'v1', kind: 'Pod' },
      requestResource: { group: '', version: 'v1', resource: 'pods' },
      namespace: 'shop',
      operation: opts.operation ?? 'CREATE',
      userInfo: {
        username: 'system:serviceaccount:kube-system:replicaset-controller',
        uid: '2f4b6c1e-0000-4000-8000-000000000001',
        groups: ['system:serviceaccounts', 'system:serviceaccounts:kube-system', 'system:authenticated'],
      },
      object: pod,
      oldObject: null,
      dryRun: opts.dryRun ?? false,
      options: { kind: 'CreateOptions', apiVersion: 'meta.k8s.io/v1' },
    },
  };
}

/** The Kubernetes docs' example request: a scale subresource update, not a Pod. */
const DOCS_SCALE_REVIEW = {
  apiVersion: 'admission.k8s.io/v1',
  kind: 'AdmissionReview',
  request: {
    uid: '705ab4f5-6393-11e8-b7cc-42010a800002',
    kind: { group: 'autoscaling', version: 'v1', kind: 'Scale' },
    resource: { group: 'apps', version: 'v1', resource: 'deployments' },
    subResource: 'scale',
    requestKind: { group: 'autoscaling', version: 'v1', kind: 'Scale' },
    requestResource: { group: 'apps', version: 'v1', resource: 'deployments' },
    requestSubResource: 'scale',
    name: 'my-deployment',
    namespace: 'my-namespace',
    operation: 'UPDATE',
    userInfo: {
      username: 'admin',
      uid: '014fbff9a07c',
      groups: ['system:authenticated', 'my-admin-group'],
      extra: { 'some-key': ['some-value1', 'some-value2'] },
    },
    object: { apiVersion: 'autoscaling/v1', kind: 'Scale' },
    oldObject: { apiVersion: 'autoscaling/v1', kind: 'Scale' },
    options: { apiVersion: 'meta.k8s.io/v1', kind: 'UpdateOptions' },
    dryRun: false,
  },
};

interface Reply {
  status: number;
  body: string;
  json?: {
    apiVersion: string;
    kind: string;
    response: { uid: string; allowed: boolean; patchType?: string; patch?: string; warnings?: string[] };
  };
}

function post(body: string | Buffer, path = '/inject', method = 'POST'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        method,
        ca: ca.cert,
        servername: 'pillion-webhook.pillion-system.svc',
        agent: false,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c: string) => (text += c));
        res.on('end', () => {
          let json: Reply['json'];
          try {
            json = JSON.parse(text) as Reply['json'];
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode!, body: text, ...(json ? { json } : {}) });
        });
      },
    );
    req.on('error', reject);
    req.setHeader('content-type', 'application/json');
    req.end(body);
  });
}

function patchOf(reply: Reply): jsonpatch.Operation[] {
  return JSON.parse(
    Buffer.from(reply.json!.response.patch!, 'base64').toString('utf8'),
  ) as jsonpatch.Operation[];
}

async function metricsText(): Promise<string> {
  return renderText(await metrics.getMetricsAsJSON());
}

test('a Pod CREATE gets a base64 JSONPatch that, applied, gives a valid Pod with pillion as a native sidecar', async () => {
  const pod = replicaSetPod();
  const reply = await post(JSON.stringify(podReview('c0ffee00-0000-4000-8000-000000000001', pod)));
  assert.equal(reply.status, 200);
  const { apiVersion, kind, response } = reply.json!;
  assert.deepEqual([apiVersion, kind], ['admission.k8s.io/v1', 'AdmissionReview']);
  assert.equal(response.uid, 'c0ffee00-0000-4000-8000-000000000001');
  assert.equal(response.allowed, true);
  assert.equal(response.patchType, 'JSONPatch');
  const patched = jsonpatch.applyPatch(structuredClone(pod), patchOf(reply), true, false).newDocument;
  assert.deepEqual(await schemaProblems(patched as unknown as Record<string, unknown>), []);
  const spec = patched.spec as unknown as {
    initContainers: { name: string; restartPolicy?: string }[];
    containers: { name: string }[];
    volumes: { name: string }[];
  };
  assert.deepEqual(
    spec.initContainers.map((c) => [c.name, c.restartPolicy]),
    [['pillion', 'Always']],
  );
  assert.deepEqual(
    spec.containers.map((c) => c.name),
    ['orders'],
  );
  assert.deepEqual(
    spec.volumes.map((v) => v.name),
    ['kube-api-access-x2k9p', 'pillion-config', 'pillion-data'],
  );
  // Reinvocation (reinvocationPolicy: IfNeeded) sends the injected pod again: nothing more to do.
  const again = await post(JSON.stringify(podReview('c0ffee00-0000-4000-8000-000000000002', patched)));
  assert.deepEqual(again.json!.response, { uid: 'c0ffee00-0000-4000-8000-000000000002', allowed: true });
  assert.match(await metricsText(), /pillion_webhook_skips_total\{reason="already-injected"\} 1/);
});

test('dryRun is patched as a real request (no side effects), and counted apart', async () => {
  const reply = await post(JSON.stringify(podReview('d1', replicaSetPod(), { dryRun: true })));
  assert.equal(reply.json!.response.patchType, 'JSONPatch');
  assert.match(await metricsText(), /pillion_webhook_injections_total\{dry_run="true"\} 1/);
});

test('hostNetwork pods, opted-out pods and other operations are allowed unchanged, counted by reason', async () => {
  const cases: [unknown, string][] = [
    [podReview('h1', replicaSetPod({ hostNetwork: true })), 'host-network'],
    [podReview('o1', replicaSetPod({ labels: { 'pillion.dev/inject': 'false' } })), 'opted-out'],
    [podReview('o2', replicaSetPod({ annotations: { 'pillion.dev/inject': 'false' } })), 'opted-out'],
    [podReview('u1', replicaSetPod(), { operation: 'UPDATE' }), 'not-create'],
  ];
  for (const [review, reason] of cases) {
    const reply = await post(JSON.stringify(review));
    const uid = (review as { request: { uid: string } }).request.uid;
    assert.deepEqual(reply.json!.response, { uid, allowed: true }, reason);
  }
  const text = await metricsText();
  assert.match(text, /pillion_webhook_skips_total\{reason="host-network"\} 1/);
  assert.match(text, /pillion_webhook_skips_total\{reason="opted-out"\} 2/);
});

test("what it cannot use is allowed with a warning: the docs' Scale review, bad annotations, malformed and oversized requests", async () => {
  const scale = await post(JSON.stringify(DOCS_SCALE_REVIEW));
  assert.equal(scale.json!.response.uid, '705ab4f5-6393-11e8-b7cc-42010a800002');
  assert.equal(scale.json!.response.allowed, true);
  assert.deepEqual(scale.json!.response.warnings, ['pillion: not injected: pillion injects Pods, not Scale']);

  const bad = await post(
    JSON.stringify(podReview('a1', replicaSetPod({ annotations: { 'pillion.dev/cpu': 'lots' } }))),
  );
  assert.equal(bad.json!.response.patch, undefined);
  assert.deepEqual(bad.json!.response.warnings, [
    'pillion: not injected: pillion.dev/cpu: "lots" is not a Kubernetes quantity (write 100m, 0.5, 128Mi or 1Gi)',
  ]);

  const malformed = await post(
    '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"m1","object":{',
  );
  assert.equal(malformed.json!.response.uid, 'm1');
  assert.deepEqual(malformed.json!.response.warnings, [
    'pillion: not injected: the AdmissionReview is not valid JSON',
  ]);
  const noUid = await post('{"hello":');
  assert.equal(noUid.status, 400);

  const big = replicaSetPod({ annotations: { filler: 'x'.repeat(100 * 1024) } });
  const oversized = await post(JSON.stringify(podReview('big1', big)));
  assert.equal(oversized.json!.response.uid, 'big1');
  assert.match(
    oversized.json!.response.warnings![0]!,
    /^pillion: not injected: the request is \d+ bytes, over webhook.maxRequestBytes \(65536\)$/,
  );
  const text = await metricsText();
  for (const reason of ['not-a-pod', 'invalid-annotations', 'malformed', 'too-large'])
    assert.match(text, new RegExp(`pillion_webhook_skips_total\\{reason="${reason}"\\} [1-9]`));
  assert.match(text, /pillion_webhook_errors_total\{reason="no-uid"\} 1/);
  assert.match(text, /pillion_webhook_request_duration_seconds_count [1-9]/);
});

test('a request whose body stalls is cut off after readTimeout, not left hanging', async () => {
  const closed = await new Promise<string>((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: '/inject',
        method: 'POST',
        ca: ca.cert,
        servername: 'pillion-webhook.pillion-system.svc',
        agent: false,
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(`status ${res.statusCode}`));
      },
    );
    req.on('error', (err) => resolve(`error ${(err as NodeJS.ErrnoException).code}`));
    req.setHeader('content-length', '1000');
    req.write('{"apiVersion":');
    setTimeout(() => reject(new Error('still open')), 20_000).unref();
  });
  assert.match(closed, /^(status 408|error ECONNRESET)$/);
});

test('/healthz, and the certificate read again when its files change', async () => {
  assert.equal((await post('', '/healthz', 'GET')).status, 200);
  const serialOf = () =>
    new Promise<string>((resolve, reject) => {
      const s: TLSSocket = connect(
        { host: '127.0.0.1', port, ca: ca.cert, servername: 'pillion-webhook.pillion-system.svc' },
        () => {
          resolve(s.getPeerCertificate().serialNumber);
          s.end();
        },
      );
      s.on('error', reject);
    });
  const before = await serialOf();
  const next = await makeLeaf(ca, { names: ['pillion-webhook.pillion-system.svc'] });
  // As a Secret volume updates: new files renamed into place.
  writeFileSync(join(dir, 'tls.key.new'), next.key);
  writeFileSync(join(dir, 'tls.crt.new'), next.cert);
  renameSync(join(dir, 'tls.key.new'), join(dir, 'tls.key'));
  renameSync(join(dir, 'tls.crt.new'), join(dir, 'tls.crt'));
  await waitFor(async () => (await serialOf()) !== before, {
    what: 'the new certificate in use',
    timeoutMs: 20_000,
  });
  // A broken pair leaves the working one in use.
  writeFileSync(join(dir, 'tls.key'), 'not a key');
  assert.equal(webhook.reloadCertificates(), false);
  assert.notEqual(await serialOf(), before);
});

test('graceful shutdown: the request in flight is answered, then the server closes', async () => {
  const config = defaultInjectorConfig();
  config.webhook.readTimeout = 10_000;
  // The files hold the broken key of the test before: refused at start, then a working pair.
  const make = () =>
    new InjectionWebhook({
      config,
      cert: join(dir, 'tls.crt'),
      key: join(dir, 'tls.key'),
      listen: { host: '127.0.0.1', port: 0 },
      logger: pino({ level: 'silent' }),
      metrics: createMetricsRegistry(),
      clock: systemClock,
    });
  assert.throws(make, { code: 'PILLION_ERR_WEBHOOK_TLS' });
  const leaf = await makeLeaf(ca, { names: ['pillion-webhook.pillion-system.svc'] });
  writeFileSync(join(dir, 'tls.crt'), leaf.cert);
  writeFileSync(join(dir, 'tls.key'), leaf.key);
  const second = make();
  await second.start();
  const body = JSON.stringify(podReview('g1', replicaSetPod()));
  let wrote!: () => void;
  const started = new Promise<void>((resolve) => (wrote = resolve));
  const answered = new Promise<Reply>((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: second.address().port,
        path: '/inject',
        method: 'POST',
        ca: ca.cert,
        servername: 'pillion-webhook.pillion-system.svc',
        agent: false,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c: string) => (text += c));
        res.on('end', () =>
          resolve({ status: res.statusCode!, body: text, json: JSON.parse(text) as Reply['json'] }),
        );
      },
    );
    req.on('error', reject);
    req.write(body.slice(0, 100), () => wrote());
    void started.then(async () => {
      const stopping = second.stop();
      await new Promise((r) => setImmediate(r));
      req.end(body.slice(100));
      await stopping;
    });
  });
  await started;
  const reply = await answered;
  assert.equal(reply.status, 200);
  assert.equal(reply.json!.response.uid, 'g1');
  assert.equal(reply.json!.response.patchType, 'JSONPatch');
});
