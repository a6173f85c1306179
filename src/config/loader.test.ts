import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { z } from 'zod';
import { address, duration, formatIssue, loadConfigFile, parseConfigText, secret, size } from './index.js';

// A small schema of every field kind, so the loader is tested apart from Pillion's own sections.
const schema = z.strictObject({
  server: z
    .strictObject({
      listen: address().prefault('127.0.0.1:8080'),
      timeout: duration().prefault('5s'),
      maxBody: size().prefault('1MiB'),
      workers: z.number().int().min(1).max(64).default(4),
      mode: z.enum(['fast', 'safe']).default('safe'),
      tls: z.strictObject({ cert: z.string(), key: secret() }).optional(),
      name: z.string().optional(),
      enabled: z.boolean().default(true),
    })
    .prefault({}),
  routes: z.array(z.strictObject({ path: z.string(), to: z.string() })).default([]),
});

// `sync` stands for a planned role's section, `server.retries` for a planned key inside a section.
const planned = (path: readonly (string | number)[]) =>
  path.join('.') === 'sync' ? 'config sync' : path.join('.') === 'server.retries' ? 'resilience' : undefined;
const opts = (env: Record<string, string> = {}) => ({ schema, env, planned });

function issuesOf(text: string, env: Record<string, string> = {}) {
  const r = parseConfigText(text, 'pillion.yaml', opts(env));
  assert.equal(r.ok, false, 'expected the config to be rejected');
  return r.ok ? [] : r.issues.map(formatIssue);
}

test('a valid file yields typed values and defaults', () => {
  const r = parseConfigText(
    'server:\n  listen: "[::1]:9000"\n  timeout: 1m30s\n  maxBody: 64KiB\nroutes:\n  - { path: /a, to: app }\n',
    'p.yaml',
    opts(),
  );
  assert.ok(r.ok);
  assert.deepEqual(r.config.server.listen, { host: '::1', port: 9000 });
  assert.equal(r.config.server.timeout, 90_000);
  assert.equal(r.config.server.maxBody, 65_536);
  assert.equal(r.config.server.workers, 4);
  assert.deepEqual(r.config.routes, [{ path: '/a', to: 'app' }]);
});

test('an empty file is valid and all defaults', () => {
  const r = parseConfigText('', 'p.yaml', opts());
  assert.ok(r.ok);
  assert.equal(r.config.server.timeout, 5000);
});

test('unknown key: position of the key, with did-you-mean', () => {
  assert.deepEqual(issuesOf('server:\n  lisen: ":80"\n'), [
    'pillion.yaml:2:3 PILLION_ERR_CONFIG_UNKNOWN_KEY server.lisen: unknown key (did you mean "listen"?)',
  ]);
  assert.deepEqual(issuesOf('server:\n  tsl: {}\n'), [
    'pillion.yaml:2:3 PILLION_ERR_CONFIG_UNKNOWN_KEY server.tsl: unknown key (did you mean "tls"?)',
  ]);
});

test('a planned section or key is refused as not built yet, not as a typo, and never says "upgrade"', () => {
  assert.deepEqual(issuesOf('sync:\n  files: []\nserver:\n  retries: 3\n  retrys: 3\n'), [
    'pillion.yaml:1:1 PILLION_ERR_CONFIG_UNSUPPORTED_SECTION sync: the sync section is planned but not built yet: config sync (remove it for now; the README says what works today and what is coming)',
    'pillion.yaml:4:3 PILLION_ERR_CONFIG_NOT_BUILT_YET server.retries: "retries" is planned but not built yet: resilience (remove it for now; the README says what works today and what is coming)',
    'pillion.yaml:5:3 PILLION_ERR_CONFIG_UNKNOWN_KEY server.retrys: unknown key (known keys: listen, timeout, maxBody, workers, mode, tls, name, enabled)',
  ]);
});

test('wrong types, out of range, bad enum: each its own code at the value', () => {
  assert.deepEqual(issuesOf('server:\n  workers: "8"\n'), [
    'pillion.yaml:2:12 PILLION_ERR_CONFIG_WRONG_TYPE server.workers: expected a number, got a string (remove the quotes to make it a number)',
  ]);
  assert.deepEqual(issuesOf('server:\n  workers: 100\n'), [
    'pillion.yaml:2:12 PILLION_ERR_CONFIG_OUT_OF_RANGE server.workers: 100 is out of range: must be at most 64',
  ]);
  assert.deepEqual(issuesOf('server:\n  mode: fsat\n'), [
    'pillion.yaml:2:9 PILLION_ERR_CONFIG_BAD_ENUM server.mode: the string "fsat" is not one of "fast", "safe" (did you mean "fast"?)',
  ]);
  assert.deepEqual(issuesOf('server:\n  name: 42\n'), [
    'pillion.yaml:2:9 PILLION_ERR_CONFIG_WRONG_TYPE server.name: expected a string, got an integer (quote the value to make it a string)',
  ]);
  assert.deepEqual(issuesOf('server: [1]\n'), [
    'pillion.yaml:1:9 PILLION_ERR_CONFIG_WRONG_TYPE server: expected a mapping, got a list',
  ]);
});

test('durations, sizes and addresses have their own codes and hints', () => {
  assert.deepEqual(issuesOf('server:\n  timeout: 5\n'), [
    'pillion.yaml:2:12 PILLION_ERR_CONFIG_BAD_DURATION server.timeout: "5" has no unit (durations look like "250ms", "2s", "1m" or "1m30s")',
  ]);
  assert.deepEqual(issuesOf('server:\n  maxBody: 64kb\n'), [
    'pillion.yaml:2:12 PILLION_ERR_CONFIG_BAD_SIZE server.maxBody: "64kb" has an unknown unit (units are case-sensitive) (sizes look like "512B", "64KiB", "10MB" or "1GiB")',
  ]);
  assert.deepEqual(issuesOf('server:\n  listen: 8080\n'), [
    'pillion.yaml:2:11 PILLION_ERR_CONFIG_BAD_ADDRESS server.listen: expected "host:port", got number 8080 (write ":8080" for every interface or "127.0.0.1:8080" for loopback)',
  ]);
  assert.deepEqual(issuesOf('server:\n  listen: "::1:80"\n'), [
    'pillion.yaml:2:11 PILLION_ERR_CONFIG_BAD_ADDRESS server.listen: "::1:80": put IPv6 addresses in brackets, "[::1]:80" (addresses look like "127.0.0.1:8080", ":8080" or "[::1]:8080")',
  ]);
});

test('missing required keys point at the mapping that lacks them', () => {
  assert.deepEqual(issuesOf('routes:\n  - path: /a\n'), [
    'pillion.yaml:2:5 PILLION_ERR_CONFIG_MISSING_KEY routes[0].to: required key "to" is missing (add "to: <string>")',
  ]);
});

test('a misspelt required key is one error, not a missing key and an unknown one', () => {
  assert.deepEqual(issuesOf('routes:\n  - path: /a\n    tp: app\n'), [
    'pillion.yaml:3:5 PILLION_ERR_CONFIG_UNKNOWN_KEY routes[0].tp: unknown key (did you mean "to"?)',
  ]);
});

test('every error is reported at once, sorted by position', () => {
  const all = issuesOf('server:\n  timeout: 2x\n  workers: 0\n  bogus: 1\nroutes:\n  - path: 1\n    to: a\n');
  assert.deepEqual(
    all.map((l) => l.split(' ').slice(0, 2).join(' ')),
    [
      'pillion.yaml:2:12 PILLION_ERR_CONFIG_BAD_DURATION',
      'pillion.yaml:3:12 PILLION_ERR_CONFIG_OUT_OF_RANGE',
      'pillion.yaml:4:3 PILLION_ERR_CONFIG_UNKNOWN_KEY',
      'pillion.yaml:6:11 PILLION_ERR_CONFIG_WRONG_TYPE',
    ],
  );
});

test('YAML syntax errors and duplicate keys carry their position', () => {
  assert.deepEqual(issuesOf('server:\n  workers: 1\n  workers: 2\n'), [
    'pillion.yaml:3:3 PILLION_ERR_CONFIG_DUPLICATE_KEY (root): Map keys must be unique',
  ]);
  const tab = issuesOf('server:\n\tworkers: 1\n');
  assert.match(
    tab[0]!,
    /^pillion\.yaml:2:1 PILLION_ERR_CONFIG_YAML_SYNTAX .*\(indent with spaces, not tabs\)$/,
  );
  // Reported where the quote opens, not where the file ends; what it swallowed is not reported again.
  assert.deepEqual(issuesOf('server:\n  name: "abc\n'), [
    'pillion.yaml:2:9 PILLION_ERR_CONFIG_YAML_SYNTAX (root): this double quote is never closed (add the closing ")',
  ]);
  assert.deepEqual(issuesOf("server:\n  name: 'it''s\n  x: [a, b]\n  y: 1\n"), [
    "pillion.yaml:2:9 PILLION_ERR_CONFIG_YAML_SYNTAX (root): this single quote is never closed (add the closing ')",
  ]);
  assert.deepEqual(issuesOf('- a\n- b\n'), [
    'pillion.yaml:1:1 PILLION_ERR_CONFIG_WRONG_TYPE (root): the config must be a mapping of sections (admin:, app:, ...)',
  ]);
});

test('environment interpolation: ${VAR}, ${VAR:-default}, $${, and re-typing of plain scalars', () => {
  const r = parseConfigText(
    'server:\n  listen: ":${PORT}"\n  workers: ${WORKERS}\n  name: "${NAME:-anon}-$${literal}"\n  enabled: ${ON:-false}\n  timeout: ${T:-}2s\n',
    'p.yaml',
    opts({ PORT: '9090', WORKERS: '8' }),
  );
  assert.ok(r.ok, r.ok ? '' : r.issues.map(formatIssue).join('\n'));
  assert.deepEqual(r.config.server.listen, { host: '', port: 9090 });
  assert.equal(r.config.server.workers, 8);
  assert.equal(r.config.server.name, 'anon-${literal}');
  assert.equal(r.config.server.enabled, false);
  assert.equal(r.config.server.timeout, 2000);
  // A quoted reference stays a string.
  assert.deepEqual(issuesOf('server:\n  workers: "${W}"\n', { W: '3' }), [
    'pillion.yaml:2:12 PILLION_ERR_CONFIG_WRONG_TYPE server.workers: expected a number, got a string (remove the quotes to make it a number)',
  ]);
});

test('a missing variable names itself and where it is used, once', () => {
  assert.deepEqual(issuesOf('server:\n  workers: 2\n  tls:\n    cert: /c.pem\n    key: ${TLS_KEY}\n'), [
    'pillion.yaml:5:10 PILLION_ERR_CONFIG_ENV_MISSING server.tls.key: environment variable TLS_KEY is not set (set TLS_KEY, or give a default: ${TLS_KEY:-value})',
  ]);
  assert.deepEqual(issuesOf('routes:\n  - path: /x\n    to: ${UP}\n'), [
    'pillion.yaml:3:9 PILLION_ERR_CONFIG_ENV_MISSING routes[0].to: environment variable UP is not set (set UP, or give a default: ${UP:-value})',
  ]);
  assert.match(
    issuesOf('server:\n  name: ${1BAD}\n')[0]!,
    /^pillion\.yaml:2:9 PILLION_ERR_CONFIG_ENV_SYNTAX server\.name: /,
  );
  assert.equal(
    issuesOf('server:\n  name: "${OPEN"\n')[0],
    'pillion.yaml:2:10 PILLION_ERR_CONFIG_ENV_SYNTAX server.name: a "${" is not closed by "}" (write ${NAME} or ${NAME:-default}; use $${ for a literal ${)',
  );
});

test('a set-but-empty variable is used as empty; with :- the default applies', () => {
  const r = parseConfigText(
    'server:\n  name: "a${E}b"\n  mode: ${M:-fast}\n',
    'p.yaml',
    opts({ E: '', M: '' }),
  );
  assert.ok(r.ok);
  assert.equal(r.config.server.name, 'ab');
  assert.equal(r.config.server.mode, 'fast');
});

test('wrong-type errors never echo the value (it may be a secret)', () => {
  const lines = issuesOf('server:\n  tls:\n    cert: /c\n    key: 123456789\n');
  assert.equal(lines.length, 1);
  assert.ok(!lines[0]!.includes('123456789'), lines[0]);
});

test('loadConfigFile reports a missing file with its own code', async () => {
  const r = await loadConfigFile('/nonexistent/pillion.yaml', opts());
  assert.ok(!r.ok);
  assert.equal(
    formatIssue(r.issues[0]!),
    '/nonexistent/pillion.yaml:1:1 PILLION_ERR_CONFIG_READ (root): file not found',
  );
  const dir = mkdtempSync(join(tmpdir(), 'pillion-cfg-'));
  const d = await loadConfigFile(dir, opts());
  assert.ok(!d.ok && d.issues[0]!.message.includes('directory'));
  writeFileSync(join(dir, 'ok.yaml'), 'server:\n  workers: 2\n');
  const ok = await loadConfigFile(join(dir, 'ok.yaml'), opts());
  assert.ok(ok.ok && ok.config.server.workers === 2);
});

test('alias bombs are refused, not expanded', () => {
  const bomb = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]'];
  for (let i = 0; i < 8; i++)
    bomb.push(
      `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(10)
        .fill(`*${String.fromCharCode(97 + i)}`)
        .join(',')}]`,
    );
  const r = parseConfigText(bomb.join('\n'), 'p.yaml', opts());
  assert.equal(r.ok, false);
});

test('regression: a nested reference is an error, not a silently wrong value', () => {
  assert.deepEqual(issuesOf('server:\n  name: ${A:-${B}}\n', { B: 'x' }), [
    'pillion.yaml:2:9 PILLION_ERR_CONFIG_ENV_SYNTAX server.name: the default of ${A:-...} holds another reference; nested references are not supported (give the default as plain text, or set the variable)',
  ]);
});

test('regression: interpolation errors never quote the value around the reference (it may be a secret)', () => {
  for (const text of ['server:\n  name: "s3cr3t${pa55"\n', 'server:\n  name: ${1x:-hunter2}\n']) {
    const lines = issuesOf(text);
    assert.equal(lines.length, 1);
    assert.ok(!/s3cr3t|pa55|hunter2/.test(lines[0]!), lines[0]);
  }
});

test('regression: a reference inside a block scalar is reported on its own line', () => {
  assert.deepEqual(issuesOf('server:\n  name: |\n    first line\n    second ${NOPE}\n'), [
    'pillion.yaml:4:12 PILLION_ERR_CONFIG_ENV_MISSING server.name: environment variable NOPE is not set (set NOPE, or give a default: ${NOPE:-value})',
  ]);
});

test('regression: a file that is not UTF-8 is refused with the position of the bad byte', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pillion-cfg-'));
  const file = join(dir, 'latin1.yaml');
  writeFileSync(
    file,
    Buffer.concat([Buffer.from('server:\n  name: caf'), Buffer.from([0xe9]), Buffer.from('\n')]),
  );
  const r = await loadConfigFile(file, opts());
  assert.ok(!r.ok);
  assert.equal(
    formatIssue(r.issues[0]!),
    `${file}:2:12 PILLION_ERR_CONFIG_READ (root): not valid UTF-8 (save the file as UTF-8)`,
  );
  writeFileSync(file, Buffer.alloc(2 * 1024 * 1024, 0x20));
  const big = await loadConfigFile(file, opts());
  assert.ok(!big.ok && big.issues[0]!.message.includes('at most 1 MiB'));
});
