import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const cli = join(root, 'dist/cli/main.js');
const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function run(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += String(c)));
    child.stderr.on('data', (c) => (stderr += String(c)));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

test('pillion sync --once renders every file and exits 0 (secrets 0400, no value in the output), or exits 1 naming each failure', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pillion-once-'));
  dirs.push(dir);
  writeFileSync(join(dir, 'db.json'), '{"host": "pg.internal", "password": "pa55-w0rd"}');
  const config = join(dir, 'pillion.yaml');
  writeFileSync(
    config,
    [
      'runtime: { log: { format: json } }',
      'sync:',
      '  sources:',
      `    db: { type: file, path: ${join(dir, 'db.json')}, parse: json }`,
      '    env: { type: env, prefix: APP_ }',
      '  destinations:',
      `    dsn: { path: ${join(dir, 'out', 'dsn')}, template: "postgres://app:{{ db.password }}@{{ db.host }}/{{ env.DB }}", secret: true }`,
      '  exec: { command: [/bin/false] }',
      '',
    ].join('\n'),
  );
  const ok = await run(['sync', '--once', '-c', config], { APP_DB: 'orders' });
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  assert.equal(readFileSync(join(dir, 'out', 'dsn'), 'utf8'), 'postgres://app:pa55-w0rd@pg.internal/orders');
  assert.equal(statSync(join(dir, 'out', 'dsn')).mode & 0o777, 0o400);
  assert.ok(!(ok.stdout + ok.stderr).includes('pa55'), 'no secret in the output');
  assert.match(ok.stdout, /every destination rendered/);

  rmSync(join(dir, 'db.json'));
  const failed = await run(['sync', '--once', '-c', config], {});
  assert.equal(failed.code, 1);
  const fatal = failed.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { level: number | string; code?: string; msg: string })
    .find((l) => l.code === 'PILLION_ERR_SYNC_ONCE');
  assert.ok(fatal, failed.stdout);
  assert.match(fatal.msg, /file source db: cannot read .*db\.json: ENOENT/);
  assert.equal(
    readFileSync(join(dir, 'out', 'dsn'), 'utf8'),
    'postgres://app:pa55-w0rd@pg.internal/orders',
    'the last file stays',
  );

  const noSync = join(dir, 'empty.yaml');
  writeFileSync(noSync, 'runtime: { log: { format: json } }\n');
  const nothing = await run(['sync', '--once', '-c', noSync]);
  assert.equal(nothing.code, 1);
  assert.match(nothing.stdout, /has no sync section: nothing to render/);

  const noOnce = await run(['sync', '-c', config]);
  assert.notEqual(noOnce.code, 0);
  assert.match(noOnce.stderr, /required option '--once'/);
});
