// Which sources keep their events lean (their JSON text alone, see leanEvent in types.ts): only
// those whose every sink sends text and whose transforms only append fields.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatIssue } from '../config/issue.js';
import { parsePillionConfig } from '../roles.js';
import type { LogsConfig } from './config.js';
import { keepsRaw, leanFields } from './pipeline.js';

async function logsConfig(yaml: string): Promise<LogsConfig> {
  const r = await parsePillionConfig(yaml, 'pillion.yaml', {});
  if (!r.ok) throw new Error(r.issues.map(formatIssue).join('\n'));
  return r.config.logs!;
}

const SINKS = `
  sinks:
    file: { type: file, path: /tmp/out.ndjson }
    http: { type: http, url: "http://127.0.0.1:1/" }
    loki: { type: loki, url: "http://127.0.0.1:1", labels: { level: "{level}" } }
    syslog: { type: syslog, address: "127.0.0.1:514" }
`;

test('lean events: JSON tail sources whose sinks only send text and whose transforms only append', async () => {
  const cfg = await logsConfig(`
logs:
  sources:
    app: { type: tail, include: [/var/log/app.log], parser: json }
    text: { type: tail, include: [/var/log/text.log] }
    cri: { type: tail, include: [/var/log/pods/*.log], format: cri, parser: json }
    filtered: { type: tail, include: [/var/log/f.log], parser: json }
    edited: { type: tail, include: [/var/log/e.log], parser: json }
  transforms:
    - { type: enrich, fields: { env: prod }, hostname: host }
    - { type: filter, sources: [filtered], field: level, equals: [debug] }
    - { type: remove, sources: [edited], fields: [password] }
${SINKS}`);
  assert.deepEqual(leanFields(cfg, 'app', ['file', 'http']), ['env', 'host'], 'what enrich sets stays whole');
  assert.equal(leanFields(cfg, 'app', ['file', 'loki']), undefined, 'Loki reads label fields');
  assert.equal(leanFields(cfg, 'app', ['syslog']), undefined, 'syslog reads severity and app fields');
  assert.equal(leanFields(cfg, 'text', ['file']), undefined, 'not JSON');
  assert.equal(leanFields(cfg, 'cri', ['file']), undefined, 'CRI records get fields of their own');
  assert.equal(keepsRaw(cfg, 'filtered'), true, 'a filter keeps the text');
  assert.equal(leanFields(cfg, 'filtered', ['file']), undefined, 'but reads a field');
  assert.equal(keepsRaw(cfg, 'edited'), false);
  assert.equal(leanFields(cfg, 'edited', ['file']), undefined);
});
