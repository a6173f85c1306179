import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { stringify } from 'yaml';
import { formatIssue } from '../config/index.js';
import {
  loadPillionConfig,
  PLANNED_ROLES,
  parsePillionConfig,
  pillionConfigDocs,
  pillionJsonSchema,
} from '../roles.js';

const root = new URL('../../', import.meta.url);

test('docs/config.md is generated from the current schema', async () => {
  assert.equal(
    readFileSync(new URL('docs/config.md', root), 'utf8'),
    await pillionConfigDocs(),
    'docs/config.md is stale: run `npm run docs`',
  );
});

test('the JSON Schema describes every section and every field', async () => {
  const s = await pillionJsonSchema();
  assert.equal(s.type, 'object');
  assert.equal(s.additionalProperties, false);
  assert.deepEqual(Object.keys(s.properties ?? {}), [
    'runtime',
    'admin',
    'app',
    'identity',
    'sync',
    'inbound',
    'outbound',
    'logs',
    'metrics',
    'policies',
  ]);
  const walk = (node: Record<string, any>, path: string) => {
    for (const [k, v] of Object.entries<Record<string, any>>(node.properties ?? {})) {
      assert.ok(v.description, `${path}.${k} has no description`);
      walk(v, `${path}.${k}`);
    }
  };
  walk(s, '');
  assert.equal(s.properties?.admin?.properties?.listen?.default, '127.0.0.1:15000');
});

test('the admin server refuses a non-loopback address unless allowRemote is set', async () => {
  const bad = await parsePillionConfig('admin:\n  listen: ":15000"\n', 'p.yaml', {});
  assert.ok(!bad.ok);
  assert.equal(
    formatIssue(bad.issues[0]!),
    'p.yaml:2:11 PILLION_ERR_CONFIG_ADMIN_NOT_LOOPBACK admin.listen: the admin server would listen on every interface (:15000), which is not loopback (use 127.0.0.1:PORT, or set admin.allowRemote: true)',
  );
  assert.ok(!(await parsePillionConfig('admin:\n  listen: 10.1.2.3:15000\n', 'p.yaml', {})).ok);
  assert.ok((await parsePillionConfig('admin:\n  listen: ":15000"\n  allowRemote: true\n', 'p.yaml', {})).ok);
  assert.ok((await parsePillionConfig('admin:\n  listen: "[::1]:15000"\n', 'p.yaml', {})).ok);
});

test('the issue example: a typo in a section is reported with line:col and a suggestion', async () => {
  const r = await parsePillionConfig('runtime:\n  drainTimout: 5s\n', 'pillion.yaml', {});
  assert.ok(!r.ok);
  assert.equal(
    formatIssue(r.issues[0]!),
    'pillion.yaml:2:3 PILLION_ERR_CONFIG_UNKNOWN_KEY runtime.drainTimout: unknown key (did you mean "drainTimeout"?)',
  );
});

test('the sidecar config inside the demo pod is valid', async () => {
  const { parseAllDocuments } = await import('yaml');
  const text = readFileSync(new URL('examples/legacy-orders/pod.yaml', root), 'utf8');
  const cm = parseAllDocuments(text)
    .map((d) => d.toJS())
    .find((d) => d.kind === 'ConfigMap' && d.metadata.name === 'orders-sidecar');
  const r = await parsePillionConfig(cm.data['pillion.yaml'], 'pod.yaml#orders-sidecar', {});
  assert.ok(r.ok, r.ok ? '' : r.issues.map(formatIssue).join('\n'));
});

test('every example config in the repository is valid', async () => {
  const dir = new URL('examples/legacy-orders/', root);
  const files = readdirSync(dir).filter((f) => f.startsWith('pillion') && f.endsWith('.yaml'));
  assert.ok(files.length > 0);
  for (const f of files) {
    const r = await loadPillionConfig(new URL(f, dir).pathname, { APP_PORT: '8080' });
    assert.ok(r.ok, r.ok ? '' : r.issues.map(formatIssue).join('\n'));
  }
});

test('regression: a health path the HTTP client cannot send is refused at validation, not at the first probe', async () => {
  const r = await parsePillionConfig('app:\n  port: 8080\n  health:\n    path: "/€"\n', 'p.yaml', {});
  assert.ok(!r.ok);
  assert.equal(r.issues[0]!.code, 'PILLION_ERR_CONFIG_BAD_VALUE');
  assert.equal(`${r.issues[0]!.line}:${r.issues[0]!.col}`, '4:11');
});

test('regression: probe intervals are bounded (Node turns delays over 24.8 days into 1 ms)', async () => {
  const r = await parsePillionConfig('app:\n  port: 8080\n  health:\n    interval: 600h\n', 'p.yaml', {});
  assert.ok(!r.ok);
  assert.equal(r.issues[0]!.code, 'PILLION_ERR_CONFIG_OUT_OF_RANGE');
});

// A config with one of everything a planned key can sit in: a listener, a route, an upstream on each side.
function withPlannedKey(pattern: string): Record<string, unknown> {
  const config: Record<string, any> = {
    app: { port: 8080 },
    inbound: {
      listeners: [{ address: '127.0.0.1:8443' }],
      routes: [{ name: 'r' }],
      upstreams: { u: { endpoints: ['127.0.0.1:9000'] } },
    },
    outbound: { upstreams: { u: { endpoints: ['127.0.0.1:9000'] } }, routes: [{ upstream: 'u' }] },
    sync: {
      sources: { u: { type: 'literal', value: 'x' } },
      destinations: { u: { path: '/tmp/x', source: 'u', check: { command: ['true'] } } },
      notify: { u: { type: 'signal', pidFile: '/run/app.pid' } },
    },
    metrics: { listen: null },
  };
  const path = pattern.replaceAll('[]', '.0').replaceAll('*', 'u').split('.');
  let node = config;
  for (const seg of path.slice(0, -1)) node = node[seg];
  node[path.at(-1)!] = {};
  return config;
}

test('every planned section and key is refused as not built yet at its line:col, never as unknown', async () => {
  const patterns = PLANNED_ROLES.flatMap((r) => [...r.sections, ...r.keys]);
  // Empty once everything planned is built; then this has nothing to check.
  for (const pattern of patterns) {
    const text = stringify(withPlannedKey(pattern));
    const r = await parsePillionConfig(text, 'p.yaml', {});
    assert.ok(!r.ok, `${pattern} was accepted: it is built now, so take it off the planned list`);
    assert.equal(r.issues.length, 1, r.issues.map(formatIssue).join('\n'));
    const [issue] = r.issues;
    const section = !pattern.includes('.');
    assert.equal(
      issue!.code,
      section ? 'PILLION_ERR_CONFIG_UNSUPPORTED_SECTION' : 'PILLION_ERR_CONFIG_NOT_BUILT_YET',
    );
    assert.equal(issue!.path, pattern.replaceAll('[]', '[0]').replaceAll('*', 'u'));
    const key = pattern.split('.').at(-1)!;
    const line =
      text.split('\n').findIndex((l) => l.trimStart().replace(/^- /, '').startsWith(`${key}:`)) + 1;
    assert.equal(issue!.line, line, `${pattern} at its own line`);
    assert.doesNotMatch(formatIssue(issue!), /unknown key|upgrade/i);
  }
});

test("the names a newcomer tries first, as other proxies spell them, get Pillion's name for them", async () => {
  const yaml = [
    'app: { port: 8080 }',
    'inbound:',
    '  listeners: [{ address: 127.0.0.1:8443 }]',
    '  routes:',
    '    - split: {}',
    '      retryPolicy: {}',
    '  upstreams:',
    '    u: { endpoints: [127.0.0.1:9000], circuitBreaker: {}, connectionPool: {}, loadBalancing: {} }',
    'outbound:',
    '  retries: {}',
    '',
  ].join('\n');
  const r = await parsePillionConfig(yaml, 'p.yaml', {});
  assert.ok(!r.ok);
  assert.deepEqual(
    r.issues.map((i) => `${i.line}:${i.col} ${i.code} ${i.path} | ${i.hint?.split(':')[0]}`),
    [
      '5:7 PILLION_ERR_CONFIG_UNKNOWN_KEY inbound.routes[0].split | Pillion calls it "destinations"',
      '6:7 PILLION_ERR_CONFIG_UNKNOWN_KEY inbound.routes[0].retryPolicy | Pillion calls it "retries"',
      '8:39 PILLION_ERR_CONFIG_UNKNOWN_KEY inbound.upstreams.u.circuitBreaker | Pillion breaks circuits with "pool" (limits past which requests get 503 UO) and "outlierDetection" (ejection of failing endpoints)',
      '8:59 PILLION_ERR_CONFIG_UNKNOWN_KEY inbound.upstreams.u.connectionPool | Pillion calls it "pool"',
      '8:79 PILLION_ERR_CONFIG_UNKNOWN_KEY inbound.upstreams.u.loadBalancing | Pillion calls it "loadBalancer"',
      '10:3 PILLION_ERR_CONFIG_UNKNOWN_KEY outbound.retries | set "retries" on each upstream (outbound.upstreams.<name>), where it applies to every request to it, or on a route',
    ],
  );
});

test('regression: a TCP-only inbound needs no app section and no routes (docs/proxy.md, TCP mode)', async () => {
  const tcp = [
    'inbound:',
    '  listeners:',
    '    - { name: pg, address: ":5433", mode: tcp, upstream: postgres }',
    '  upstreams:',
    '    postgres: { endpoints: [127.0.0.1:5432] }',
    '',
  ].join('\n');
  const r = await parsePillionConfig(tcp, 'p.yaml', {});
  assert.ok(r.ok, r.ok ? '' : r.issues.map(formatIssue).join('\n'));
  const http = await parsePillionConfig(
    tcp.replace('mode: tcp, upstream: postgres', 'mode: http'),
    'p.yaml',
    {},
  );
  assert.ok(!http.ok);
  assert.equal(http.issues[0]!.code, 'PILLION_ERR_PROXY_UNKNOWN_UPSTREAM');
});
