#!/usr/bin/env node
// The injection webhook under load: `pillion webhook` pinned to one core (taskset -c 0), this
// client on the other, HTTPS with keep-alive as the API server connects. The request is an
// AdmissionReview v1 for a Deployment's pod with 50 containers (env, ports, mounts, probes,
// resources: about 90 KB of JSON).
//  1. Bursts: --bursts times, 200 AdmissionReviews sent at once; each request timed from its
//     send to its whole answer here (so it includes the wait behind the other 199), and the
//     webhook's own time per review from its histogram (body received → answer written).
//  2. One at a time: --sequential reviews, each sent after the last answer (what one pod creation
//     sees from an idle webhook).
// The webhook's RSS after the run and its peak (VmHWM). Every answer is checked: uid, allowed,
// and a JSONPatch that adds the sidecar.
//
//   npm run bench:inject -- [--bursts 20] [--concurrency 200] [--sequential 1000] [--containers 50]
//
// Markdown goes to stdout; progress to stderr. The webhook is stopped and temp files removed.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT, freePort, machineBasics, onExit, startProcess, statusMb, stopProcess, table } from './lib.mjs';

const { values: opts } = parseArgs({
  options: {
    bursts: { type: 'string', default: '20' },
    concurrency: { type: 'string', default: '200' },
    sequential: { type: 'string', default: '1000' },
    containers: { type: 'string', default: '50' },
  },
});
const BURSTS = Number(opts.bursts);
const CONCURRENCY = Number(opts.concurrency);
const SEQUENTIAL = Number(opts.sequential);
const CONTAINERS = Number(opts.containers);
const log = (m) => process.stderr.write(`${m}\n`);
const cli = path.join(ROOT, 'dist', 'cli', 'main.js');

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'pillion-bench-inject-'));
onExit(() => fs.rmSync(work, { recursive: true, force: true }));

// The webhook's certificate, from pillion's own CA.
const ca = path.join(work, 'ca');
execFileSync(process.execPath, [cli, 'ca', 'init', '--dir', ca]);
execFileSync(process.execPath, [
  cli,
  'ca',
  'issue',
  '--dir',
  ca,
  '--identity',
  'spiffe://cluster.local/ns/pillion-system/sa/pillion-webhook',
  '--dns',
  'pillion-webhook.pillion-system.svc',
  '--ttl',
  '1h',
  '--out',
  path.join(work, 'webhook'),
]);
const caCert = fs.readFileSync(path.join(ca, 'ca.crt'));

function container(i) {
  return {
    name: `c${i}`,
    image: `registry.example/shop/service-${i}:1.${i}.0`,
    command: ['/bin/service', '--port', String(8000 + i)],
    ports: [{ name: 'http', containerPort: 8000 + i, protocol: 'TCP' }],
    env: Array.from({ length: 8 }, (_, j) => ({ name: `SETTING_${j}`, value: `value-${i}-${j}` })),
    resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: { memory: '128Mi' } },
    volumeMounts: [
      { name: 'kube-api-access', readOnly: true, mountPath: '/var/run/secrets/kubernetes.io/serviceaccount' },
      { name: 'data', mountPath: `/data/${i}` },
    ],
    readinessProbe: {
      httpGet: { path: '/ready', port: 8000 + i, scheme: 'HTTP' },
      periodSeconds: 5,
      timeoutSeconds: 1,
      successThreshold: 1,
      failureThreshold: 3,
    },
    livenessProbe: {
      httpGet: { path: '/live', port: 8000 + i, scheme: 'HTTP' },
      periodSeconds: 10,
      timeoutSeconds: 1,
      successThreshold: 1,
      failureThreshold: 3,
    },
    terminationMessagePath: '/dev/termination-log',
    terminationMessagePolicy: 'File',
    imagePullPolicy: 'IfNotPresent',
  };
}

function review(uid) {
  return JSON.stringify({
    kind: 'AdmissionReview',
    apiVersion: 'admission.k8s.io/v1',
    request: {
      uid,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      requestKind: { group: '', version: 'v1', kind: 'Pod' },
      requestResource: { group: '', version: 'v1', resource: 'pods' },
      namespace: 'shop',
      operation: 'CREATE',
      userInfo: {
        username: 'system:serviceaccount:kube-system:replicaset-controller',
        groups: ['system:serviceaccounts'],
      },
      object: {
        kind: 'Pod',
        apiVersion: 'v1',
        metadata: {
          generateName: 'big-7c5ddbdf54-',
          namespace: 'shop',
          labels: { app: 'big', 'pod-template-hash': '7c5ddbdf54' },
          annotations: { 'pillion.dev/log-path': '/var/log/app' },
          ownerReferences: [
            { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'big-7c5ddbdf54', uid: 'x', controller: true },
          ],
        },
        spec: {
          volumes: [
            {
              name: 'kube-api-access',
              projected: { sources: [{ serviceAccountToken: { path: 'token' } }], defaultMode: 420 },
            },
            { name: 'data', emptyDir: {} },
          ],
          containers: Array.from({ length: CONTAINERS }, (_, i) => container(i)),
          restartPolicy: 'Always',
          terminationGracePeriodSeconds: 30,
          dnsPolicy: 'ClusterFirst',
          serviceAccountName: 'default',
          schedulerName: 'default-scheduler',
          enableServiceLinks: true,
        },
        status: {},
      },
      oldObject: null,
      dryRun: false,
      options: { kind: 'CreateOptions', apiVersion: 'meta.k8s.io/v1' },
    },
  });
}

const port = await freePort();
const webhook = startProcess(
  'pillion webhook',
  process.execPath,
  [
    cli,
    'webhook',
    '--cert',
    path.join(work, 'webhook.crt'),
    '--key',
    path.join(work, 'webhook.key'),
    '--listen',
    `127.0.0.1:${port}`,
    '--log-level',
    'warn',
  ],
  { core: 0 },
);
onExit(() => stopProcess(webhook));
const agent = new https.Agent({
  keepAlive: true,
  maxSockets: CONCURRENCY,
  ca: caCert,
  servername: 'pillion-webhook.pillion-system.svc',
});

function send(body, pathName = '/inject', method = 'POST') {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        path: pathName,
        method,
        agent,
        headers: { 'content-type': 'application/json' },
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode,
            body: Buffer.concat(chunks).toString('utf8'),
            ms: Number(process.hrtime.bigint() - start) / 1e6,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

for (let i = 0; ; i++) {
  try {
    if ((await send('', '/healthz', 'GET')).status === 200) break;
  } catch {
    if (i > 200) throw new Error(`the webhook did not start: ${webhook.stderrText}${webhook.stdoutText}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

let checked = 0;
function check(reply, uid) {
  const r = JSON.parse(reply.body).response;
  if (reply.status !== 200 || r.uid !== uid || r.allowed !== true || r.patchType !== 'JSONPatch')
    throw new Error(`bad answer: ${reply.body.slice(0, 300)}`);
  const patch = JSON.parse(Buffer.from(r.patch, 'base64').toString('utf8'));
  if (!patch.some((op) => op.path === '/spec/initContainers' || op.path.startsWith('/spec/initContainers')))
    throw new Error('no sidecar in the patch');
  checked++;
}

const body = review('warm');
log(`AdmissionReview of a ${CONTAINERS}-container pod: ${Buffer.byteLength(body)} bytes`);
for (let i = 0; i < 200; i++) check(await send(review(`warm-${i}`)), `warm-${i}`);

const quantile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
const serverHistogram = async () => {
  const text = (await send('', '/metrics', 'GET')).body;
  const buckets = [
    ...text.matchAll(/pillion_webhook_request_duration_seconds_bucket\{le="([^"]+)"\} (\d+)/g),
  ].map((m) => [m[1] === '+Inf' ? Infinity : Number(m[1]), Number(m[2])]);
  const sum = Number(/pillion_webhook_request_duration_seconds_sum (\S+)/.exec(text)[1]);
  const count = Number(/pillion_webhook_request_duration_seconds_count (\S+)/.exec(text)[1]);
  return { buckets, sum, count };
};
/** The bucket bound under which a share q of the reviews between two snapshots fall (an upper bound). */
const bucketQuantile = (a, b, q) => {
  const n = b.count - a.count;
  for (let i = 0; i < b.buckets.length; i++)
    if (b.buckets[i][1] - a.buckets[i][1] >= q * n) return b.buckets[i][0];
  return Infinity;
};

log(`${BURSTS} bursts of ${CONCURRENCY} concurrent reviews`);
const before = await serverHistogram();
const burstMs = [];
const startedBursts = process.hrtime.bigint();
for (let b = 0; b < BURSTS; b++) {
  const replies = await Promise.all(
    Array.from({ length: CONCURRENCY }, (_, i) => send(review(`b${b}-${i}`))),
  );
  replies.forEach((r, i) => check(r, `b${b}-${i}`));
  burstMs.push(...replies.map((r) => r.ms));
}
const burstSeconds = Number(process.hrtime.bigint() - startedBursts) / 1e9;
const after = await serverHistogram();
const rssAfterBursts = statusMb(webhook.pid, 'VmRSS');

log(`${SEQUENTIAL} reviews one at a time`);
const seqMs = [];
for (let i = 0; i < SEQUENTIAL; i++) {
  const reply = await send(review(`s${i}`));
  check(reply, `s${i}`);
  seqMs.push(reply.ms);
}
const afterSeq = await serverHistogram();
const rss = statusMb(webhook.pid, 'VmRSS');
const hwm = statusMb(webhook.pid, 'VmHWM');
await stopProcess(webhook);
agent.destroy();

burstMs.sort((a, b) => a - b);
seqMs.sort((a, b) => a - b);
const f = (n) => (Number.isFinite(n) ? n.toFixed(2) : '> 1000');
const m = machineBasics();
const out = [
  `### Webhook: ${CONTAINERS}-container pod (${Math.round(Buffer.byteLength(body) / 1024)} KB AdmissionReview), webhook on one core`,
  '',
  `${m.date.slice(0, 10)}, Node ${m.node}, ${m.nproc} × ${m.cpu}, load ${m.loadavg}; ${checked} answers checked (uid, allowed, a JSONPatch adding the sidecar).`,
  '',
  table(
    ['case', 'reviews', 'p50 ms', 'p99 ms', 'max ms', 'reviews/s'],
    [
      [
        `${CONCURRENCY} at once, client-observed (includes the queue)`,
        String(burstMs.length),
        f(quantile(burstMs, 0.5)),
        f(quantile(burstMs, 0.99)),
        f(burstMs.at(-1)),
        (burstMs.length / burstSeconds).toFixed(0),
      ],
      [
        `${CONCURRENCY} at once, webhook's own time per review (histogram bucket)`,
        String(after.count - before.count),
        `≤ ${f(bucketQuantile(before, after, 0.5) * 1000)}`,
        `≤ ${f(bucketQuantile(before, after, 0.99) * 1000)}`,
        '',
        `mean ${f(((after.sum - before.sum) / (after.count - before.count)) * 1000)} ms`,
      ],
      [
        'one at a time, client-observed',
        String(seqMs.length),
        f(quantile(seqMs, 0.5)),
        f(quantile(seqMs, 0.99)),
        f(seqMs.at(-1)),
        '',
      ],
      [
        "one at a time, webhook's own time (histogram bucket)",
        String(afterSeq.count - after.count),
        `≤ ${f(bucketQuantile(after, afterSeq, 0.5) * 1000)}`,
        `≤ ${f(bucketQuantile(after, afterSeq, 0.99) * 1000)}`,
        '',
        `mean ${f(((afterSeq.sum - after.sum) / (afterSeq.count - after.count)) * 1000)} ms`,
      ],
    ],
  ),
  '',
  `Webhook RSS: ${rssAfterBursts?.toFixed(0)} MB after the bursts, ${rss?.toFixed(0)} MB at the end, peak (VmHWM) ${hwm?.toFixed(0)} MB.`,
];
process.stdout.write(`${out.join('\n')}\n`);
