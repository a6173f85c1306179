import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { formatIssue } from '../config/index.js';
import {
  loadPillionConfig,
  parsePillionConfig,
  pillionConfigDocs,
  pillionJsonSchema,
} from './config-schema.js';

const root = new URL('../../', import.meta.url);

test('docs/config.md is generated from the current schema', () => {
  assert.equal(
    readFileSync(new URL('docs/config.md', root), 'utf8'),
    pillionConfigDocs(),
    'docs/config.md is stale: run `npm run docs`',
  );
});

test('the JSON Schema describes every section and every field', () => {
  const s = pillionJsonSchema();
  assert.equal(s.type, 'object');
  assert.equal(s.additionalProperties, false);
  assert.deepEqual(Object.keys(s.properties ?? {}), [
    'runtime',
    'admin',
    'app',
    'inbound',
    'outbound',
    'logs',
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

test('the admin server refuses a non-loopback address unless allowRemote is set', () => {
  const bad = parsePillionConfig('admin:\n  listen: ":15000"\n', 'p.yaml', {});
  assert.ok(!bad.ok);
  assert.equal(
    formatIssue(bad.issues[0]!),
    'p.yaml:2:11 PILLION_ERR_CONFIG_ADMIN_NOT_LOOPBACK admin.listen: the admin server would listen on every interface (:15000), which is not loopback (use 127.0.0.1:PORT, or set admin.allowRemote: true)',
  );
  assert.ok(!parsePillionConfig('admin:\n  listen: 10.1.2.3:15000\n', 'p.yaml', {}).ok);
  assert.ok(parsePillionConfig('admin:\n  listen: ":15000"\n  allowRemote: true\n', 'p.yaml', {}).ok);
  assert.ok(parsePillionConfig('admin:\n  listen: "[::1]:15000"\n', 'p.yaml', {}).ok);
});

test('the issue example: a typo in a section is reported with line:col and a suggestion', () => {
  const r = parsePillionConfig('runtime:\n  drainTimout: 5s\n', 'pillion.yaml', {});
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
  const r = parsePillionConfig(cm.data['pillion.yaml'], 'pod.yaml#orders-sidecar', {});
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

test('regression: a health path the HTTP client cannot send is refused at validation, not at the first probe', () => {
  const r = parsePillionConfig('app:\n  port: 8080\n  health:\n    path: "/€"\n', 'p.yaml', {});
  assert.ok(!r.ok);
  assert.equal(r.issues[0]!.code, 'PILLION_ERR_CONFIG_BAD_VALUE');
  assert.equal(`${r.issues[0]!.line}:${r.issues[0]!.col}`, '4:11');
});

test('regression: probe intervals are bounded (Node turns delays over 24.8 days into 1 ms)', () => {
  const r = parsePillionConfig('app:\n  port: 8080\n  health:\n    interval: 600h\n', 'p.yaml', {});
  assert.ok(!r.ok);
  assert.equal(r.issues[0]!.code, 'PILLION_ERR_CONFIG_OUT_OF_RANGE');
});
