import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { formatIssue } from '../config/index.js';
import { parsePillionConfig } from '../roles.js';

async function issues(yaml: string): Promise<string[]> {
  const r = await parsePillionConfig(yaml, 'p.yaml', {});
  return r.ok ? [] : r.issues.map(formatIssue);
}

const SOURCES = [
  'sync:',
  '  sources:',
  '    kv: { type: consul, address: "http://127.0.0.1:8500", key: app, recurse: true }',
];

test('a container notifier outside a pod is an error at its line:col; inside one (PILLION_POD_DIR) it is valid', async () => {
  const yaml = [
    ...SOURCES,
    '  destinations:',
    '    a: { path: /tmp/a, source: kv }',
    '  notify:',
    '    app: { type: signal, container: app, signal: SIGHUP }',
    '    two: { type: signal, pidFile: /run/app.pid, container: app }',
    '',
  ].join('\n');
  assert.deepEqual(await issues(yaml), [
    'p.yaml:8:35 PILLION_ERR_CONFIG_BAD_VALUE sync.notify.two.pidFile: give only one of pidFile, process and container',
  ]);
  const one = yaml.replace(/ {4}two:.*\n/, '');
  assert.deepEqual(await issues(one), [
    'p.yaml:7:37 PILLION_ERR_CONFIG_BAD_VALUE sync.notify.app.container: container "app" names a container of the same pod: it needs pillion to run in a pod started by `pillion pod` (PILLION_POD_DIR is not set) (outside a pod, give pidFile or process instead)',
  ]);
  const inPod = await parsePillionConfig(one, 'p.yaml', {
    PILLION_POD_DIR: '/var/lib/pillion/run/default_t_1',
  });
  assert.ok(inPod.ok, inPod.ok ? '' : inPod.issues.map(formatIssue).join('\n'));
});

test('a JSON Schema check: compiled when the config loads; a bad schema, a missing schemaFile, a directory: each at its line:col', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pillion-schema-'));
  try {
    const good = join(dir, 'config.schema.yaml');
    writeFileSync(good, 'type: object\nrequired: [port]\nproperties:\n  port: { type: integer }\n');
    const bad = join(dir, 'bad.schema.json');
    writeFileSync(bad, '{"type": "objekt"}');
    const yaml = [
      ...SOURCES,
      '  destinations:',
      '    a: { path: /tmp/a.json, source: kv, check: { schema: { type: object, required: [port] } } }',
      `    b: { path: /tmp/b.yaml, source: kv, format: yaml, check: { schemaFile: ${good} } }`,
      '    c: { path: /tmp/c.json, source: kv, check: { schema: { tpye: object } } }',
      `    d: { path: /tmp/d.json, source: kv, check: { schemaFile: ${join(dir, 'missing.json')} } }`,
      `    e: { path: /tmp/e.json, source: kv, check: { schemaFile: ${bad} } }`,
      '    f: { directory: /tmp/f, files: { x: { source: kv } }, check: { schema: { type: object } } }',
      '    g: { path: /tmp/g.json, source: kv, check: { timeout: 1s } }',
      '',
    ].join('\n');
    const out = await issues(yaml);
    // The schema's own errors come after the section's (a section that does not parse is not compiled).
    assert.deepEqual(out, [
      'p.yaml:10:76 PILLION_ERR_CONFIG_BAD_VALUE sync.destinations.f.check.schema: a JSON Schema checks one file: give it to a destination with path (a directory can be checked by a command, which gets the staged directory)',
      'p.yaml:11:48 PILLION_ERR_CONFIG_MISSING_KEY sync.destinations.g.check.command: give command, schema or schemaFile',
    ]);
    const rest = yaml
      .split('\n')
      .filter((l) => !/^ {4}[fg]:/.test(l))
      .join('\n');
    assert.deepEqual(await issues(rest), [
      'p.yaml:7:58 PILLION_ERR_CONFIG_BAD_VALUE sync.destinations.c.check.schema: not a valid JSON Schema: strict mode: unknown keyword: "tpye"',
      `p.yaml:8:62 PILLION_ERR_CONFIG_BAD_VALUE sync.destinations.d.check.schemaFile: ${join(dir, 'missing.json')} does not exist`,
      `p.yaml:9:62 PILLION_ERR_CONFIG_BAD_VALUE sync.destinations.e.check.schemaFile: not a valid JSON Schema: schema is invalid: data/type must be equal to one of the allowed values, data/type must be array, data/type must match a schema in anyOf`,
    ]);
    const fine = rest
      .split('\n')
      .filter((l) => !/^ {4}[cde]:/.test(l))
      .join('\n');
    assert.deepEqual(await issues(fine), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('names that do not resolve, a shared path, rollback without an app, once with exec: each at its line:col', async () => {
  const yaml = [
    'sync:',
    '  once: true',
    '  sources:',
    '    config: { type: literal, value: x }',
    '  destinations:',
    '    a: { path: /tmp/a, source: confg, notify: [reload] }',
    '    b: { path: /tmp/a, template: "{{ config }}", mode: "0640" }',
    '  exec: { command: [app] }',
    '  rollback: {}',
    '',
  ].join('\n');
  assert.deepEqual(await issues(yaml.replace('"0640"', '"0999"')), [
    'p.yaml:7:56 PILLION_ERR_CONFIG_BAD_VALUE sync.destinations.b.mode: "0999" is not a file mode (write the octal digits, like "0644" or "0400")',
  ]);
  assert.deepEqual(await issues(yaml), [
    'p.yaml:6:32 PILLION_ERR_SYNC_UNKNOWN_SOURCE sync.destinations.a.source: no source named "confg" (did you mean "config"? defined: config)',
    'p.yaml:6:48 PILLION_ERR_SYNC_UNKNOWN_NOTIFIER sync.destinations.a.notify[0]: no notifier named "reload" (defined: none)',
    'p.yaml:7:16 PILLION_ERR_CONFIG_BAD_VALUE sync.destinations.b.path: destinations "a" and "b" write the same path /tmp/a',
    'p.yaml:8:9 PILLION_ERR_CONFIG_BAD_VALUE sync.exec: once and exec do not go together (an init container renders and exits; leave exec to the sidecar)',
    "p.yaml:9:13 PILLION_ERR_CONFIG_MISSING_KEY sync.rollback: sync.rollback watches the app's health check, but there is no app section (add `app: { port: ..., health: ... }`, or remove rollback)",
  ]);
});

test('a complete sync section is valid, and its secrets are redacted like every other', async () => {
  const yaml = [
    'app: { port: 8080 }',
    'sync:',
    '  sources:',
    '    config: { type: file, path: /etc/app/config.json, parse: json }',
    '    remote: { type: http, url: "https://config.internal/app", headers: { x-api-key: abc } }',
    '  destinations:',
    '    config: { path: /run/app/config.json, source: config, format: json, notify: [app] }',
    '    bundle:',
    '      directory: /run/app/bundle',
    '      files:',
    '        a.conf: { template: "{{ remote }}" }',
    '  notify:',
    '    app: { type: signal, process: app.js }',
    '  rollback: { window: 10s }',
    '',
  ].join('\n');
  assert.deepEqual(await issues(yaml), []);
});
