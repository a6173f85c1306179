// What deploy/ holds builds and is valid: `kubectl kustomize` of the base and the cert-manager
// overlay, every object checked against the Kubernetes API schemas (kubernetes-models) and against
// each other (the Service the webhook configuration calls exists and selects the webhook's pods);
// the injector config they carry validates; the image recipe and the compose file are checked for
// what can be checked without a container engine.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { parse, parseAllDocuments } from 'yaml';
import { parseConfigText } from './config/index.js';
import { injectorSchema } from './inject/config.js';
import { parsePillionConfig } from './roles.js';

const root = fileURLToPath(new URL('../', import.meta.url));
type Obj = Record<string, any>;

interface Model {
  validate(): void;
}
const MODELS: Record<string, () => Promise<new (d: Obj) => Model>> = {
  'v1/Namespace': async () => (await import('kubernetes-models/v1/Namespace')).Namespace,
  'v1/ServiceAccount': async () => (await import('kubernetes-models/v1/ServiceAccount')).ServiceAccount,
  'v1/ConfigMap': async () => (await import('kubernetes-models/v1/ConfigMap')).ConfigMap,
  'v1/Service': async () => (await import('kubernetes-models/v1/Service')).Service,
  'apps/v1/Deployment': async () => (await import('kubernetes-models/apps/v1/Deployment')).Deployment,
  'policy/v1/PodDisruptionBudget': async () =>
    (await import('kubernetes-models/policy/v1/PodDisruptionBudget')).PodDisruptionBudget,
  'admissionregistration.k8s.io/v1/MutatingWebhookConfiguration': async () =>
    (await import('kubernetes-models/admissionregistration.k8s.io/v1/MutatingWebhookConfiguration'))
      .MutatingWebhookConfiguration,
};

function kustomize(dir: string): Obj[] {
  const out = execFileSync('kubectl', ['kustomize', join(root, dir)], { encoding: 'utf8' });
  return parseAllDocuments(out).map((d) => d.toJS() as Obj);
}

async function validateAll(objects: Obj[]): Promise<string[]> {
  const unchecked: string[] = [];
  for (const o of objects) {
    const load = MODELS[`${o.apiVersion}/${o.kind}`];
    if (!load) {
      unchecked.push(`${o.apiVersion}/${o.kind}`);
      continue;
    }
    const Model = await load();
    assert.doesNotThrow(() => new Model(o).validate(), `${o.kind}/${o.metadata?.name}`);
  }
  return unchecked;
}

const find = (objects: Obj[], kind: string) => objects.filter((o) => o.kind === kind);

test('deploy/kubernetes/base builds with kubectl kustomize; every object is valid and they fit together', async () => {
  const objects = kustomize('deploy/kubernetes/base');
  assert.deepEqual(objects.map((o) => o.kind).sort(), [
    'ConfigMap',
    'Deployment',
    'MutatingWebhookConfiguration',
    'Namespace',
    'PodDisruptionBudget',
    'Service',
    'ServiceAccount',
  ]);
  assert.deepEqual(await validateAll(objects), []);
  for (const o of objects)
    if (o.kind !== 'Namespace' && o.kind !== 'MutatingWebhookConfiguration')
      assert.equal(o.metadata.namespace, 'pillion-system');

  const [deployment] = find(objects, 'Deployment') as [Obj];
  assert.equal(deployment.spec.replicas, 2);
  const pod = deployment.spec.template;
  assert.equal(pod.metadata.labels['pillion.dev/inject'], 'false', 'the webhook would be sent its own pods');
  const container = pod.spec.containers[0];
  assert.equal(pod.spec.securityContext.runAsNonRoot, true);
  assert.equal(container.securityContext.readOnlyRootFilesystem, true);
  // The files the command names are the volumes it mounts.
  const args: string[] = container.command;
  const mounts = (container.volumeMounts as Obj[]).map((m) => m.mountPath as string);
  for (const flag of ['--cert', '--key', '--config']) {
    const file = args[args.indexOf(flag) + 1]!;
    assert.ok(
      mounts.some((m) => file.startsWith(`${m}/`)),
      `${flag} ${file} is not in a mounted volume`,
    );
  }

  const [config] = find(objects, 'ConfigMap') as [Obj];
  const injector = parseConfigText(config.data['injector.yaml'], 'injector.yaml', {
    schema: injectorSchema,
    env: {},
  });
  assert.ok(injector.ok, JSON.stringify(!injector.ok && injector.issues));
  assert.equal(injector.config.webhook.listen.port, 9443);

  const [pdb] = find(objects, 'PodDisruptionBudget') as [Obj];
  assert.deepEqual(pdb.spec.selector.matchLabels, deployment.spec.selector.matchLabels);
  assert.equal(pdb.spec.minAvailable, 1);

  const [service] = find(objects, 'Service') as [Obj];
  assert.deepEqual(service.spec.selector, deployment.spec.selector.matchLabels);
  assert.ok((container.ports as Obj[]).some((p) => p.name === service.spec.ports[0].targetPort));

  const [mwc] = find(objects, 'MutatingWebhookConfiguration') as [Obj];
  const [hook] = mwc.webhooks as [Obj];
  assert.deepEqual(hook.clientConfig.service, {
    name: service.metadata.name,
    namespace: 'pillion-system',
    path: '/inject',
    port: 443,
  });
  assert.deepEqual(hook.admissionReviewVersions, ['v1']);
  assert.equal(hook.sideEffects, 'None');
  assert.equal(hook.reinvocationPolicy, 'IfNeeded');
  assert.ok(['Fail', 'Ignore'].includes(hook.failurePolicy));
  assert.ok(hook.timeoutSeconds >= 1 && hook.timeoutSeconds <= 30);
  assert.ok(
    injector.config.webhook.readTimeout < hook.timeoutSeconds * 1000,
    'the webhook may hang past timeoutSeconds',
  );
  assert.deepEqual(hook.namespaceSelector, { matchLabels: { 'pillion-injection': 'enabled' } });
  assert.deepEqual(hook.rules, [
    {
      operations: ['CREATE'],
      apiGroups: [''],
      apiVersions: ['v1'],
      resources: ['pods'],
      scope: 'Namespaced',
    },
  ]);
});

test('the cert-manager overlay adds the certificate and the CA injection, and stays valid', async () => {
  const objects = kustomize('deploy/kubernetes/overlays/cert-manager');
  // cert-manager's own kinds are not Kubernetes API types: their required fields are checked here.
  assert.deepEqual((await validateAll(objects)).sort(), [
    'cert-manager.io/v1/Certificate',
    'cert-manager.io/v1/Certificate',
    'cert-manager.io/v1/Issuer',
    'cert-manager.io/v1/Issuer',
  ]);
  const certificates = find(objects, 'Certificate');
  const serving = certificates.find((c) => c.spec.secretName === 'pillion-webhook-tls')!;
  assert.ok(serving, 'no certificate for the Secret the Deployment mounts');
  assert.ok(serving.spec.dnsNames.includes('pillion-webhook.pillion-system.svc'));
  const issuers = new Set(find(objects, 'Issuer').map((i) => i.metadata.name));
  for (const c of certificates)
    assert.ok(issuers.has(c.spec.issuerRef.name), `issuer ${c.spec.issuerRef.name}`);
  const [mwc] = find(objects, 'MutatingWebhookConfiguration') as [Obj];
  assert.equal(
    mwc.metadata.annotations['cert-manager.io/inject-ca-from'],
    `pillion-system/${serving.metadata.name}`,
  );
});

test('the image recipe: multi-stage, a small Node base, non-root, dist and production dependencies only', () => {
  const text = readFileSync(join(root, 'deploy/image/Dockerfile'), 'utf8');
  const instructions = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .filter((l) => l.trim() && !l.trim().startsWith('#'))
    .map((l) => {
      const [word, ...rest] = l.trim().split(/\s+/);
      return { word: word!.toUpperCase(), args: rest.join(' ') };
    });
  const KNOWN = ['ARG', 'FROM', 'WORKDIR', 'COPY', 'RUN', 'ENV', 'USER', 'EXPOSE', 'ENTRYPOINT', 'CMD'];
  for (const i of instructions) assert.ok(KNOWN.includes(i.word), `unknown instruction ${i.word}`);
  const froms = instructions.filter((i) => i.word === 'FROM');
  assert.ok(froms.length >= 2, 'not multi-stage');
  for (const f of froms) assert.match(f.args, /^node:\$\{NODE_VERSION\}-alpine( AS \w+)?$/);
  const stages = froms.flatMap((f) => / AS (\w+)$/.exec(f.args)?.[1] ?? []);
  const final = instructions.slice(instructions.lastIndexOf(froms.at(-1)!));
  for (const c of instructions.filter((i) => i.word === 'COPY')) {
    const from = /--from=(\w+)/.exec(c.args)?.[1];
    if (from) assert.ok(stages.includes(from), `COPY --from=${from}: no such stage`);
    else
      for (const src of c.args.split(' ').slice(0, -1))
        assert.ok(existsSync(join(root, src)), `COPY ${src}: not in the repository`);
  }
  assert.match(final.find((i) => i.word === 'USER')!.args, /^[1-9]\d*:[1-9]\d*$/);
  assert.deepEqual(
    final.filter((i) => i.word === 'COPY').map((i) => i.args),
    ['--from=deps /src/node_modules ./node_modules', '--from=build /src/dist ./dist', 'package.json ./'],
  );
  assert.ok(/npm ci --omit=dev/.test(text), 'the production dependencies are not installed apart');
  for (const i of final.filter((x) => x.word === 'ENTRYPOINT' || x.word === 'CMD'))
    assert.doesNotThrow(() => JSON.parse(i.args));
  const ignored = readFileSync(join(root, '.dockerignore'), 'utf8').split('\n');
  for (const p of ['node_modules', 'dist', '.git'])
    assert.ok(ignored.includes(p), `.dockerignore lacks ${p}`);
});

test('the compose file: app and pillion share a network namespace and a log volume; its pillion.yaml is valid', async () => {
  const dir = join(root, 'deploy/compose');
  const compose = parse(readFileSync(join(dir, 'compose.yaml'), 'utf8')) as Obj;
  const { pillion, orders } = compose.services;
  assert.equal(orders.network_mode, 'service:pillion');
  assert.equal(orders.depends_on.pillion.condition, 'service_healthy');
  assert.ok(pillion.healthcheck.test.join(' ').includes(':15021/healthz'));
  const volumes = (s: Obj) => (s.volumes as string[]).map((v) => v.split(':'));
  for (const [src] of [...volumes(pillion), ...volumes(orders)]) {
    if (src!.startsWith('.')) assert.ok(existsSync(join(dir, src!)), `${src} does not exist`);
    else assert.ok(src! in compose.volumes, `volume ${src} is not declared`);
  }
  const shared = volumes(orders).find(([v]) => v === 'app-logs')!;
  assert.ok(
    volumes(pillion).some(([v, path]) => v === 'app-logs' && path === shared[1]),
    'the log volume is not shared',
  );
  const loaded = await parsePillionConfig(
    readFileSync(join(dir, 'pillion.yaml'), 'utf8'),
    'pillion.yaml',
    {},
  );
  assert.ok(loaded.ok, JSON.stringify(!loaded.ok && loaded.issues));
  assert.equal(loaded.config.logs?.sources.orders?.type, 'tail');
  assert.ok(existsSync(join(dir, pillion.build.context, pillion.build.dockerfile)));
});
