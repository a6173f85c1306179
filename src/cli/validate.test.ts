// `pillion validate` checks what `run` would meet at start, without binding a port: TLS files that
// exist, parse and match, directories that can be written; each problem at its key's line:col.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { makeCa, makeLeaf } from '../proxy/tls/test-certs.js';

const root = new URL('../../', import.meta.url).pathname;
const cli = join(root, 'dist/cli/main.js');
const dir = mkdtempSync(join(tmpdir(), 'pillion-validate-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const f = (name: string) => join(dir, name);

before(async () => {
  const ca = await makeCa();
  const leaf = await makeLeaf(ca, { names: ['localhost'] });
  const other = await makeLeaf(ca, { names: ['localhost'] });
  writeFileSync(f('ca.pem'), ca.cert);
  writeFileSync(f('tls.crt'), leaf.cert);
  writeFileSync(f('tls.key'), leaf.key);
  writeFileSync(f('other.key'), other.key);
  writeFileSync(f('not-pem.txt'), 'hello\n');
});

function validate(text: string, ...extra: string[]) {
  const file = f(`c-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, text);
  const r = spawnSync(process.execPath, [cli, 'validate', '-c', file, '--format', 'json', ...extra], {
    encoding: 'utf8',
    env: { ...process.env, PILLION_STATE_DIR: f('state') },
  });
  const out = JSON.parse(r.stdout) as {
    valid: boolean;
    errors: { line: number; col: number; code: string; path: string; message: string }[];
  };
  return { status: r.status, ...out, at: out.errors.map((e) => `${e.line}:${e.col} ${e.code} ${e.path}`) };
}

const tlsConfig = (cert: string, key: string, extra = '') =>
  [
    'app:\n  port: 8080',
    'inbound:',
    '  listeners:',
    '    - address: 127.0.0.1:8443',
    '      tls:',
    '        certificates:',
    `          - cert: ${cert}`,
    `            key: ${key}`,
    extra,
  ].join('\n');

test('a TLS listener whose files load is valid; nothing is bound, so a port in use does not matter', async () => {
  const holder = createServer();
  await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
  const port = (holder.address() as { port: number }).port;
  try {
    const r = validate(tlsConfig(f('tls.crt'), f('tls.key')).replace('127.0.0.1:8443', `127.0.0.1:${port}`));
    assert.deepEqual(r.errors, []);
    assert.equal(r.status, 0);
  } finally {
    holder.close();
  }
});

test('regression: a missing certificate, a key of another certificate, a missing client CA: each at its key', () => {
  const missing = validate(tlsConfig(f('nope.crt'), f('tls.key')));
  assert.equal(missing.status, 1);
  assert.deepEqual(missing.at, ['8:19 PILLION_ERR_TLS_FILE inbound.listeners[0].tls.certificates[0].cert']);
  assert.match(missing.errors[0]!.message, /nope\.crt: cannot read \(ENOENT\)/);

  const mismatch = validate(tlsConfig(f('tls.crt'), f('other.key')));
  assert.deepEqual(mismatch.at, ['9:18 PILLION_ERR_TLS_FILE inbound.listeners[0].tls.certificates[0].key']);
  assert.match(mismatch.errors[0]!.message, /does not match/);

  const notPem = validate(tlsConfig(f('not-pem.txt'), f('tls.key')));
  assert.deepEqual(notPem.at, ['8:19 PILLION_ERR_TLS_FILE inbound.listeners[0].tls.certificates[0].cert']);

  const clientCa = validate(
    tlsConfig(f('tls.crt'), f('tls.key'), `        clientCertificate: { ca: ${f('nope-ca.pem')} }\n`),
  );
  assert.deepEqual(clientCa.at, ['10:34 PILLION_ERR_TLS_FILE inbound.listeners[0].tls.clientCertificate.ca']);
});

test('an upstream CA bundle that is not PEM, and an access log in a directory that cannot be made', () => {
  const r = validate(
    [
      'outbound:',
      '  upstreams:',
      '    pay:',
      '      endpoints: [127.0.0.1:9000]',
      `      tls: { ca: ${f('not-pem.txt')} }`,
      '  accessLog: { path: /proc/pillion-no-such-dir/access.log }',
      '',
    ].join('\n'),
  );
  assert.deepEqual(r.at, [
    '5:18 PILLION_ERR_TLS_FILE outbound.upstreams.pay.tls.ca',
    '6:22 PILLION_ERR_PROXY_ACCESS_LOG outbound.accessLog.path',
  ]);
});

test('logs: a data directory and a file sink that cannot be written are errors; a missing one that can be made is not, and is not made', () => {
  const later = f('later/data');
  const ok = validate(
    [
      'logs:',
      `  dataDir: ${later}`,
      `  sources: { a: { type: tail, include: ["${f('*.log')}"] } }`,
      `  sinks: { out: { type: file, path: ${f('later/out/shipped.ndjson')} } }`,
      '',
    ].join('\n'),
  );
  assert.deepEqual(ok.errors, []);
  assert.ok(!existsSync(f('later')), 'validate created nothing');

  const bad = validate(
    [
      'logs:',
      '  dataDir: /proc/pillion-no-such-dir/data',
      `  sources: { a: { type: tail, include: ["${f('*.log')}"] } }`,
      '  sinks:',
      `    out: { type: file, path: ${f('ca.pem')}/shipped.ndjson }`,
      '',
    ].join('\n'),
  );
  assert.deepEqual(bad.at, [
    '2:12 PILLION_ERR_LOGS_DATA_DIR logs.dataDir',
    '5:30 PILLION_ERR_LOGS_DELIVERY logs.sinks.out.path',
  ]);
  assert.match(bad.errors[0]!.message, /cannot create \/proc\/pillion-no-such-dir/);
  assert.match(bad.errors[1]!.message, /ca\.pem is not a directory/);
});

test('the text report shows the line with a caret, like schema errors', () => {
  const file = f('text.yaml');
  writeFileSync(file, tlsConfig(f('nope.crt'), f('tls.key')));
  const r = spawnSync(process.execPath, [cli, 'validate', '-c', file], {
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1' },
  });
  assert.equal(r.status, 1);
  const lines = r.stderr.split('\n');
  assert.match(
    lines[0]!,
    /text\.yaml:8:19 PILLION_ERR_TLS_FILE inbound\.listeners\[0\]\.tls\.certificates\[0\]\.cert: /,
  );
  assert.equal(lines[1], `  8 |           - cert: ${f('nope.crt')}`);
  assert.equal(lines[2], `${' '.repeat(24)}^`);
});

test('identity: a CA directory without a CA, and certificate files whose key does not match, at their keys', async () => {
  const { LocalCa } = await import('../identity/local-ca.js');
  const ca = await LocalCa.init(f('ca'), { trustDomain: 'cluster.local' });
  const ok = validate(`identity:\n  ca: { dir: ${f('ca')} }\n`);
  assert.equal(ok.valid, true, JSON.stringify(ok.errors));
  const missing = validate(`identity:\n  ca:\n    dir: ${f('no-ca')}\n`);
  assert.deepEqual(missing.at, ['3:10 PILLION_ERR_CA_NOT_FOUND identity.ca.dir']);
  const a = await ca.issue({ spiffeId: 'spiffe://cluster.local/ns/a/sa/a' });
  const b = await ca.issue({ spiffeId: 'spiffe://cluster.local/ns/b/sa/b' });
  writeFileSync(f('id.crt'), a.cert);
  writeFileSync(f('id.key'), b.key);
  writeFileSync(f('bundle.pem'), ca.bundle);
  const files = validate(
    `identity:\n  files:\n    cert: ${f('id.crt')}\n    key: ${f('id.key')}\n    bundle: ${f('bundle.pem')}\n`,
  );
  assert.deepEqual(files.at, ['4:10 PILLION_ERR_IDENTITY_UNAVAILABLE identity.files.key']);
});
