import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatIssue } from '../config/index.js';
import { parsePillionConfig } from '../roles.js';

async function issues(yaml: string): Promise<string[]> {
  const r = await parsePillionConfig(yaml, 'p.yaml', {});
  return r.ok ? [] : r.issues.map(formatIssue);
}

test('the container notifier is refused as not built yet at its line:col', async () => {
  const yaml = [
    'sync:',
    '  sources:',
    '    kv: { type: consul, address: "http://127.0.0.1:8500", key: app, recurse: true }',
    '    secrets:',
    '      type: vault',
    '      address: "http://127.0.0.1:8200"',
    '      auth: { method: token, tokenFile: /run/vault-token }',
    '      kv: { path: orders }',
    '  destinations:',
    '    a: { path: /tmp/a, source: kv }',
    '  notify:',
    '    app: { type: signal, pidFile: /run/app.pid, container: app }',
    '',
  ].join('\n');
  const out = await issues(yaml);
  assert.equal(out.length, 1, out.join('\n'));
  assert.match(
    out[0]!,
    /^p\.yaml:12:49 PILLION_ERR_CONFIG_NOT_BUILT_YET sync\.notify\.app\.container: "container" is planned but not built yet/,
  );
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
