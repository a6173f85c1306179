// The identity role inside the process: configured in pillion.yaml, shown on the admin API
// (never its key), part of readiness; mutual TLS without an identity refused at its line:col.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { formatIssue } from '../config/index.js';
import { parsePillionConfig } from '../roles.js';
import { startRuntimeOn } from '../runtime/test-support.js';
import { LocalCa } from './local-ca.js';

const dir = mkdtempSync(join(tmpdir(), 'pillion-identity-rt-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('GET /identity shows the SPIFFE ID, expiry and renewal time, never the key; /readyz counts it', async () => {
  const caDir = join(dir, 'ca');
  await LocalCa.init(caDir, { trustDomain: 'cluster.local' });
  const file = join(dir, 'pillion.yaml');
  writeFileSync(
    file,
    [
      'admin: { listen: 127.0.0.1:0 }',
      'identity:',
      '  namespace: production',
      '  serviceAccount: payments',
      `  ca: { dir: ${caDir}, ttl: 1h }`,
      'inbound:',
      '  listeners: [{ address: 127.0.0.1:0, mode: tcp, upstream: echo }]',
      '  upstreams: { echo: { endpoints: [127.0.0.1:9] } }',
      '  mtls: { mode: STRICT }',
      '',
    ].join('\n'),
  );
  const rt = await startRuntimeOn(file);
  try {
    const base = `http://127.0.0.1:${rt.adminAddress!.port}`;
    const res = await fetch(`${base}/identity`);
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.doesNotMatch(text, /PRIVATE KEY/);
    const body = JSON.parse(text);
    assert.equal(body.spiffeId, 'spiffe://cluster.local/ns/production/sa/payments');
    assert.equal(body.principal, 'cluster.local/ns/production/sa/payments');
    // Renewed at 2/3 of the hour it was given: with a third, 20 minutes, left.
    const left = Date.parse(body.notAfter) - Date.parse(body.renewAt);
    assert.ok(left > 19 * 60_000 && left <= 20 * 60_000, `${left} ms left at renewal`);
    assert.match(body.trustBundle[0], /pillion local CA cluster.local/);
    const ready = (await (await fetch(`${base}/readyz`)).json()) as {
      checks: { name: string; ready: boolean }[];
    };
    assert.deepEqual(
      ready.checks.find((c) => c.name === 'identity'),
      { name: 'identity', ready: true },
    );
    // A changed identity section is applied on reload: the module restarts with a new certificate.
    writeFileSync(
      file,
      readFileSync(file, 'utf8').replace('serviceAccount: payments', 'serviceAccount: refunds'),
    );
    const reload = await fetch(`${base}/reload`, { method: 'POST' });
    assert.equal(reload.status, 200, await reload.text());
    const next = (await (await fetch(`${base}/identity`)).json()) as { spiffeId: string; serial: string };
    assert.equal(next.spiffeId, 'spiffe://cluster.local/ns/production/sa/refunds');
    assert.notEqual(next.serial, body.serial);
  } finally {
    await rt.shutdown('test end');
  }
});

test('mutual TLS without an identity section is an error at its line:col', async () => {
  const text = [
    'app: { port: 8080 }',
    'inbound:',
    '  listeners: [{ address: 127.0.0.1:0 }]',
    '  upstreams: { svc: { endpoints: [127.0.0.1:9], tls: { mutual: true } } }',
    '  mtls:',
    '    mode: STRICT',
    '',
  ].join('\n');
  const r = await parsePillionConfig(text, 'p.yaml', {});
  assert.ok(!r.ok);
  const lines = r.issues.map(formatIssue);
  assert.ok(
    lines.some((l) => /^p\.yaml:[56]:\d+ .*inbound\.mtls.*no identity section/.test(l)),
    lines.join('\n'),
  );
  assert.ok(
    lines.some((l) => /^p\.yaml:4:\d+ .*upstream svc is mutual TLS/.test(l)),
    lines.join('\n'),
  );
});

test('a listener with its own tls and mutual TLS on the same port is an error', async () => {
  const text = [
    'app: { port: 8080 }',
    'identity: { ca: { dir: /nowhere } }',
    'inbound:',
    '  listeners:',
    '    - address: 127.0.0.1:0',
    '      tls: { certificates: [{ cert: a.crt, key: a.key }] }',
    '  mtls: { mode: PERMISSIVE }',
    '',
  ].join('\n');
  const r = await parsePillionConfig(text, 'p.yaml', {});
  assert.ok(!r.ok);
  assert.match(
    r.issues.map(formatIssue).join('\n'),
    /p\.yaml:6:\d+ .*terminates TLS with its own certificates/,
  );
});

test('without identity: the identity role, the local CA, @peculiar/x509 and mutual TLS are never loaded', async () => {
  const { spawn } = await import('node:child_process');
  const hook = join(dir, 'hook.mjs');
  // A module hook that names every module of the identity role and its libraries as it loads.
  const load = `export async function load(url, ctx, next) { if (/identity-module|local-ca|peculiar|reflect-metadata|tls\\/mutual/.test(url)) process.stderr.write('LOADED ' + url + '\\n'); return next(url, ctx); }`;
  writeFileSync(
    hook,
    `import { register } from 'node:module';\nregister('data:text/javascript,' + encodeURIComponent(${JSON.stringify(load)}));\n`,
  );
  // `until`: what the hook must have named before the process is stopped. On Node 22 and later
  // the hook runs on a thread of its own, so its lines can come after the proxy's first log line.
  const run = async (yaml: string, until?: RegExp) => {
    const file = join(dir, `lazy-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(file, yaml);
    const cli = join(new URL('../../', import.meta.url).pathname, 'dist/cli/main.js');
    const child = spawn(
      process.execPath,
      ['--import', hook, cli, 'run', '-c', file, '--log-format', 'json'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    let err = '';
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    await new Promise<void>((resolve, reject) => {
      const check = () => {
        if (out.includes('proxy listening') && (until === undefined || until.test(err))) resolve();
      };
      child.stdout.on('data', (b: Buffer) => {
        out += b.toString();
        check();
      });
      child.stderr.on('data', check);
      child.on('exit', () => reject(new Error(`pillion run exited: ${out}${err}`)));
      // Bounded: what never loads fails the assertions below rather than hanging the suite.
      setTimeout(resolve, 20_000).unref();
    });
    child.kill('SIGTERM');
    await new Promise((r) => child.once('close', r));
    return err;
  };
  const base =
    'admin: { listen: 127.0.0.1:0 }\napp: { port: 9 }\ninbound:\n  listeners: [{ address: 127.0.0.1:0 }]\n';
  assert.doesNotMatch(await run(base), /LOADED/);
  const withIdentity = await run(
    `${base}  mtls: { mode: PERMISSIVE }\nidentity: { ca: { dir: ${join(dir, 'ca')} } }\n`,
    /tls\/mutual/,
  );
  assert.match(withIdentity, /LOADED .*identity-module/);
  assert.match(withIdentity, /LOADED .*peculiar/);
  assert.match(withIdentity, /LOADED .*tls\/mutual/);
});
