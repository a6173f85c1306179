// Istio's security YAML read as it is: the seed's resources, multi-document files, v1 and
// v1beta1, selectors against the workload's labels, unsupported and misspelt fields at their
// line:col, and the result enforced by the proxy.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { formatIssue } from '../config/index.js';
import { echoBackend, get, rawRequest, startInbound } from '../proxy/test-support.js';
import { loadPillionConfig } from '../roles.js';

const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url));

export const SEED_PEER_AUTHENTICATION = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: production
spec:
  mtls:
    mode: STRICT
`;

export const SEED_AUTHORIZATION_POLICY = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: payments
  namespace: production
spec:
  selector:
    matchLabels:
      app: payments
  action: ALLOW
  rules:
  - from:
    - source:
        principals:
        - cluster.local/ns/production/sa/order-service
        - cluster.local/ns/production/sa/refund-service
    to:
    - operation:
        methods: ["POST"]
        paths: ["/api/v1/charge", "/api/v1/refund"]
`;

const REQUEST_AUTHENTICATION = `apiVersion: security.istio.io/v1beta1
kind: RequestAuthentication
metadata:
  name: users
  namespace: production
spec:
  jwtRules:
  - issuer: https://issuer.test
    jwks: '{"keys":[{"kty":"EC","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM","kid":"k1"}]}'
    audiences: [orders]
    outputClaimToHeaders:
    - header: X-User-Id
      claim: sub
`;

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pillion-istio-'));
});
after(() => rm(dir, { recursive: true, force: true }));

async function write(name: string, text: string): Promise<string> {
  const p = join(dir, name);
  await writeFile(p, text);
  return p;
}

const PILLION = (files: string[], extra = '') => `app: { port: 8080 }
inbound:
  listeners: [{ address: "127.0.0.1:0" }]
${extra}policies:
  istio: [${files.map((f) => JSON.stringify(f)).join(', ')}]
  workloadLabels: { app: payments, version: v1 }
  namespace: production
`;

describe('Istio security resources', () => {
  test("the seed's AuthorizationPolicy and a v1beta1 RequestAuthentication, in one multi-document file, load as they are", async () => {
    await write('seed.yaml', `${SEED_AUTHORIZATION_POLICY}---\n${REQUEST_AUTHENTICATION}`);
    const cfg = await write('pillion.yaml', PILLION(['seed.yaml']));
    const r = await loadPillionConfig(cfg, {});
    assert.ok(r.ok, r.ok ? '' : r.issues.map(formatIssue).join('\n'));
    const inbound = r.config.inbound!;
    assert.deepEqual(
      inbound.authorization!.policies.map((p) => [p.name, p.action, p.rules.length]),
      [['production/payments', 'ALLOW', 1]],
    );
    assert.deepEqual(inbound.authorization!.policies[0]!.rules[0]!.to![0]!.operation.paths, [
      '/api/v1/charge',
      '/api/v1/refund',
    ]);
    assert.equal(inbound.jwt!.issuers[0]!.issuer, 'https://issuer.test');
    assert.deepEqual(inbound.jwt!.issuers[0]!.outputClaimToHeaders, [{ header: 'X-User-Id', claim: 'sub' }]);
    // /config shows them as part of inbound.
    assert.ok(JSON.stringify(r.raw).includes('production/payments'));
  });

  test("the seed's PeerAuthentication becomes inbound.mtls, which needs an identity section", async () => {
    await write('pa.yaml', SEED_PEER_AUTHENTICATION);
    const without = await loadPillionConfig(await write('pillion-pa.yaml', PILLION(['pa.yaml'])), {});
    assert.ok(!without.ok);
    assert.match(
      without.issues.map(formatIssue).join('\n'),
      /mutual TLS STRICT, but there is no identity section/,
    );
    const cfg = await write(
      'pillion-pa-id.yaml',
      `identity: { ca: { dir: /etc/pillion/ca } }\n${PILLION(['pa.yaml'])}`,
    );
    const r = await loadPillionConfig(cfg, {});
    assert.ok(r.ok, r.ok ? '' : r.issues.map(formatIssue).join('\n'));
    assert.deepEqual((r.config.inbound as Record<string, unknown>).mtls, {
      mode: 'STRICT',
      portLevel: {},
      forwardClientCert: false,
    });
  });

  test('an unsupported field and a misspelt one are errors at their line:col naming the field; another kind is refused', async () => {
    const bad = `${SEED_AUTHORIZATION_POLICY}---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: { name: ra }
spec:
  targetRef:
    kind: Gateway
    name: gw
  jwtRules:
  - issuer: https://issuer.test
    jwksUri: https://issuer.test/jwks
    outputPayloadToHeader: x-payload
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: typo }
spec:
  rules:
  - to:
    - operation:
        path: ["/admin"]
  - when:
    - key: experimental.envoy.filters.x
      values: ["1"]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: gw }
`;
    await write('bad.yaml', bad);
    const cfg = await write('pillion-bad.yaml', PILLION(['bad.yaml']));
    const r = await loadPillionConfig(cfg, {});
    assert.ok(!r.ok);
    const got = r.issues.map((i) => `${i.line}:${i.col} ${i.code} ${i.path}`);
    assert.deepEqual(got, [
      '26:3 PILLION_ERR_POLICY_UNSUPPORTED_FIELD spec.targetRef',
      '32:5 PILLION_ERR_POLICY_UNSUPPORTED_FIELD spec.jwtRules[0].outputPayloadToHeader',
      '41:9 PILLION_ERR_CONFIG_UNKNOWN_KEY spec.rules[0].to[0].operation.path',
      '43:12 PILLION_ERR_POLICY_UNSUPPORTED_FIELD spec.rules[1].when[0].key',
      '47:7 PILLION_ERR_POLICY_UNKNOWN_KIND kind',
    ]);
    assert.match(formatIssue(r.issues[0]!), /targetRef/);
    assert.match(formatIssue(r.issues[2]!), /did you mean "paths"/);
    // pillion validate reports the same, one line each, and exits 1.
    const v = spawnSync(process.execPath, [CLI, 'validate', '-c', cfg], { encoding: 'utf8' });
    assert.equal(v.status, 1);
    assert.match(v.stderr, /bad\.yaml:26:3 PILLION_ERR_POLICY_UNSUPPORTED_FIELD/);
    assert.match(v.stderr, /5 errors in .*bad\.yaml/);
  });

  test('selectors: a resource for other labels or another namespace is not applied, and listed as such', async () => {
    const other = SEED_AUTHORIZATION_POLICY.replace('app: payments', 'app: ledger').replace(
      'name: payments',
      'name: ledger',
    );
    const elsewhere = SEED_AUTHORIZATION_POLICY.replace(
      'namespace: production',
      'namespace: staging',
    ).replace('name: payments', 'name: staging-payments');
    const root = SEED_AUTHORIZATION_POLICY.replace('namespace: production', 'namespace: istio-system')
      .replace('name: payments', 'name: mesh-wide')
      .replace(/ {2}selector:\n {4}matchLabels:\n {6}app: payments\n/, '');
    await write('sel.yaml', [SEED_AUTHORIZATION_POLICY, other, elsewhere, root].join('---\n'));
    const cfg = await write('pillion-sel.yaml', PILLION(['sel.yaml']));
    const r = await loadPillionConfig(cfg, {});
    assert.ok(r.ok, r.ok ? '' : r.issues.map(formatIssue).join('\n'));
    assert.deepEqual(
      r.config.inbound!.authorization!.policies.map((p) => p.name),
      ['production/payments', 'istio-system/mesh-wide'],
    );
    const { istioResources } = await import('../runtime/config-schema.js');
    const listed = istioResources.get(r.config)!;
    assert.deepEqual(
      listed.map((x) => `${x.name}:${x.applied}`),
      ['payments:true', 'ledger:false', 'staging-payments:false', 'mesh-wide:true'],
    );
    assert.match(listed[1]!.reason!, /app=ledger/);
  });

  test('--istio adds files from the command line; without an inbound section they are refused', async () => {
    await write('ap.yaml', SEED_AUTHORIZATION_POLICY);
    const cfg = await write(
      'pillion-cli.yaml',
      'app: { port: 8080 }\ninbound:\n  listeners: [{ address: "127.0.0.1:0" }]\npolicies: { workloadLabels: { app: payments } }\n',
    );
    const r = await loadPillionConfig(cfg, {}, { istio: [join(dir, 'ap.yaml')] });
    assert.ok(r.ok, r.ok ? '' : r.issues.map(formatIssue).join('\n'));
    assert.equal(r.config.inbound!.authorization!.policies.length, 1);
    const noInbound = await write('pillion-none.yaml', 'policies: { istio: [ap.yaml] }\n');
    const n = await loadPillionConfig(noInbound, {});
    assert.ok(!n.ok);
    assert.match(n.issues[0]!.message, /add an inbound section/);
  });

  test('a policy read from Istio YAML is enforced by the proxy', async () => {
    const app = await echoBackend();
    await write(
      'deny.yaml',
      `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: no-admin, namespace: production }
spec:
  action: DENY
  rules:
  - to:
    - operation: { paths: ["/admin", "/admin/*"] }
`,
    );
    const cfg = await write('pillion-deny.yaml', PILLION(['deny.yaml']));
    const r = await loadPillionConfig(cfg, {});
    assert.ok(r.ok, r.ok ? '' : r.issues.map(formatIssue).join('\n'));
    const p = await startInbound(r.raw.inbound as Record<string, unknown>, { app: app.port });
    try {
      assert.equal((await rawRequest(p.port(), get('/admin/x'))).status, 403);
      assert.equal((await rawRequest(p.port(), get('/%61dmin'))).status, 403);
      assert.equal((await rawRequest(p.port(), get('/orders'))).status, 200);
    } finally {
      await p.stop();
      await app.close();
    }
  });
});
