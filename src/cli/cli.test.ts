import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, test } from 'node:test';
import { waitFor } from '../lib/wait-for.js';

const root = new URL('../../', import.meta.url).pathname;
const cli = join(root, 'dist/cli/main.js');
const dir = mkdtempSync(join(tmpdir(), 'pillion-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

/** Writes a whole file at once (temp and rename), as a config change should be made. */
function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(`${p}.tmp`, text);
  renameSync(`${p}.tmp`, p);
  return p;
}

function pillion(...args: string[]) {
  return spawnSync(process.execPath, [cli, ...args], {
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1' },
  });
}

/** Starts a long-running process and collects its JSON log lines. */
function launch(args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, args, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const logs: Record<string, any>[] = [];
  let stderr = '';
  let buf = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    buf += chunk;
    const lines = buf.split('\n');
    buf = lines.pop()!;
    for (const line of lines) {
      try {
        logs.push(JSON.parse(line));
      } catch {
        logs.push({ msg: line });
      }
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (c: string) => {
    stderr += c;
  });
  // 'close', not 'exit': the last lines the process wrote may still be in the pipe at 'exit'.
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal })),
  );
  return { child, logs, exited, stderr: () => stderr };
}

async function adminPort(logs: Record<string, any>[]): Promise<number> {
  const line = await waitFor(
    () => logs.find((l) => l.msg === 'admin server listening' || l.msg === 'fixture ready'),
    // Generous: starting Node on a busy two-core machine can take seconds. A bound, not a measure.
    { what: 'admin server', timeoutMs: 30_000 },
  );
  return line.port ?? Number(String(line.admin).split(':').pop());
}

test('regression: the installed bin runs by itself (executable, with its shebang)', () => {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { bin: { pillion: string } };
  assert.equal(pkg.bin.pillion, 'dist/bin/pillion.js');
  const r = spawnSync(join(root, pkg.bin.pillion), ['--help'], { encoding: 'utf8' });
  assert.equal(r.error, undefined, String(r.error));
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /Usage: pillion/);
});

test('pillion --help and --version work', () => {
  const help = pillion('--help');
  assert.equal(help.status, 0);
  assert.match(help.stdout, /Usage: pillion/);
  for (const cmd of ['run', 'validate', 'schema']) assert.match(help.stdout, new RegExp(`\\n  ${cmd}`));
  assert.match(pillion('--version').stdout, /^\d+\.\d+\.\d+\n$/);
});

test('pillion validate: exit 0 when valid, 1 with every error and its line:col when not', () => {
  const good = file('good.yaml', 'app:\n  port: 8080\n');
  const ok = pillion('validate', '-c', good);
  assert.equal(ok.status, 0);
  assert.equal(ok.stdout, `${good}: valid\n`);

  const bad = file('bad.yaml', 'admin:\n  lisen: 127.0.0.1:1\napp:\n  port: 70000\n');
  const r = pillion('validate', '-c', bad);
  assert.equal(r.status, 1);
  const lines = r.stderr.split('\n');
  assert.equal(
    lines[0],
    `${bad}:2:3 PILLION_ERR_CONFIG_UNKNOWN_KEY admin.lisen: unknown key (did you mean "listen"?)`,
  );
  assert.equal(lines[1], '  2 |   lisen: 127.0.0.1:1');
  assert.equal(lines[2], '        ^');
  assert.equal(
    lines[3],
    `${bad}:4:9 PILLION_ERR_CONFIG_OUT_OF_RANGE app.port: 70000 is out of range: must be at most 65535`,
  );
  assert.match(r.stderr, /2 errors in /);

  const json = pillion('validate', '-c', bad, '--format', 'json');
  assert.equal(json.status, 1);
  const parsed = JSON.parse(json.stdout);
  assert.equal(parsed.valid, false);
  assert.deepEqual(
    parsed.errors.map((e: any) => [e.line, e.col, e.code]),
    [
      [2, 3, 'PILLION_ERR_CONFIG_UNKNOWN_KEY'],
      [4, 9, 'PILLION_ERR_CONFIG_OUT_OF_RANGE'],
    ],
  );
  assert.equal(pillion('validate', '-c', join(dir, 'missing.yaml')).status, 1);
});

test('pillion schema prints a JSON Schema an editor can use', () => {
  const r = pillion('schema');
  assert.equal(r.status, 0);
  const schema = JSON.parse(r.stdout);
  assert.equal(schema.$schema, 'http://json-schema.org/draft-07/schema#');
  assert.ok(schema.properties.admin.properties.listen);
});

test('pillion run refuses an invalid config with its errors and exit 1', () => {
  const r = pillion('run', '-c', file('run-bad.yaml', 'runtime:\n  drainTimeout: soon\n'));
  assert.equal(r.status, 1);
  assert.match(r.stderr, /run-bad\.yaml:2:17 PILLION_ERR_CONFIG_BAD_DURATION runtime\.drainTimeout/);
});

test('pillion run: waits for the app, reloads on SIGHUP (a bad file keeps the old config), exits 0 on SIGTERM', async () => {
  // The app comes up after pillion does, as it would in a pod.
  let app: Server | undefined;
  const appPort = await new Promise<number>((resolve) => {
    const probe = createServer();
    probe.listen(0, '127.0.0.1', () => {
      const p = (probe.address() as AddressInfo).port;
      probe.close(() => resolve(p));
    });
  });
  const cfg = (extra = '') =>
    `admin:\n  listen: 127.0.0.1:0\napp:\n  port: ${appPort}\n  health:\n    path: /ok\n    interval: 100ms\n${extra}`;
  const configFile = file('run.yaml', cfg());
  const p = launch([cli, 'run', '-c', configFile, '--log-format', 'json']);
  const base = `http://127.0.0.1:${await adminPort(p.logs)}`;
  try {
    const early = await fetch(`${base}/readyz`);
    assert.equal(early.status, 503);
    assert.match(JSON.stringify(await early.json()), /app unhealthy: (connection refused|not checked yet)/);

    app = createServer((req, res) => {
      res.statusCode = req.url === '/ok' ? 200 : 404;
      res.end();
    });
    await new Promise<void>((r) => app!.listen(appPort, '127.0.0.1', r));
    await waitFor(async () => (await fetch(`${base}/readyz`)).status === 200, {
      what: 'ready once the app is healthy',
    });

    file('run.yaml', cfg('  bogus: true\n'));
    p.child.kill('SIGHUP');
    await waitFor(
      async () => ((await (await fetch(`${base}/config`)).json()) as any).lastReload?.ok === false,
      { what: 'failed reload' },
    );
    assert.ok(
      p.logs.some(
        (l) =>
          l.level === 'error' &&
          String(l.msg).includes(`run.yaml:8:3 PILLION_ERR_CONFIG_UNKNOWN_KEY app.bogus`),
      ),
    );
    assert.equal((await fetch(`${base}/readyz`)).status, 200, 'the old config keeps running');

    file('run.yaml', cfg().replace('/ok', '/missing'));
    p.child.kill('SIGHUP');
    await waitFor(async () => (await fetch(`${base}/readyz`)).status === 503, {
      what: 'new health path applied',
    });

    p.child.kill('SIGTERM');
    const { code } = await p.exited;
    assert.equal(code, 0);
    assert.ok(p.logs.some((l) => l.msg === 'pillion stopped'));
  } finally {
    app?.close();
  }
});

test('drain: a module still busy at drainTimeout is stopped and the process exits 0', async () => {
  const p = launch([join(root, 'test/fixtures/slow-drain.mjs')], { DRAIN_TIMEOUT: '300ms' });
  await adminPort(p.logs);
  p.child.kill('SIGTERM');
  const { code } = await p.exited;
  assert.equal(code, 0);
  // The order says it waited for the deadline: the drain timed out, and only then was the module stopped.
  const timeout = p.logs.findIndex((l) => l.code === 'PILLION_ERR_RUNTIME_DRAIN_TIMEOUT');
  assert.ok(timeout >= 0);
  assert.deepEqual(p.logs[timeout]!.modules, ['stuck']);
  assert.ok(p.logs.findIndex((l) => l.msg === 'stuck module stopping') > timeout, JSON.stringify(p.logs));
  assert.ok(p.logs.some((l) => l.msg === 'stuck module stopped'));
});

test('regression: a module that never finishes stopping: the process exits 1 after drainTimeout + stopTimeout', async () => {
  const p = launch([join(root, 'test/fixtures/slow-drain.mjs')], {
    DRAIN_TIMEOUT: '200ms',
    STOP_TIMEOUT: '200ms',
    STOP: 'never',
  });
  await adminPort(p.logs);
  p.child.kill('SIGTERM');
  const { code } = await p.exited;
  assert.equal(code, 1);
  const stuck = p.logs.find((l) => l.code === 'PILLION_ERR_RUNTIME_STOP_TIMEOUT');
  assert.deepEqual(stuck?.modules, ['stuck']);
  assert.ok(!p.logs.some((l) => l.msg === 'stuck module stopped'));
});

test('regression: a file sink that cannot create its directory (under /proc) does not keep pillion run up after SIGTERM', async () => {
  const work = mkdtempSync(join(dir, 'proc-sink-'));
  writeFileSync(join(work, 'app.log'), 'a line to ship\n');
  const config = file(
    'proc-sink.yaml',
    [
      'admin:\n  listen: 127.0.0.1:0',
      'runtime:\n  drainTimeout: 200ms\n  stopTimeout: 500ms',
      `logs:\n  dataDir: ${join(work, 'data')}`,
      `  sources:\n    a: { type: tail, include: ["${join(work, '*.log')}"], startAt: beginning }`,
      '  sinks:\n    f: { type: file, path: /proc/pillion-no-such-dir/out.ndjson }',
      '',
    ].join('\n'),
  );
  const p = launch([cli, 'run', '-c', config, '--log-format', 'json']);
  const base = `http://127.0.0.1:${await adminPort(p.logs)}`;
  // Node's recursive mkdir never settles on such a path, so the line waits in the sink's buffer.
  await waitFor(
    async () =>
      /^pillion_logs_buffer_bytes\{sink="f"\} [1-9]/m.test(await (await fetch(`${base}/metrics`)).text()),
    { what: 'the line read and held by the sink', timeoutMs: 30_000 },
  );
  p.child.kill('SIGTERM');
  const { code } = await p.exited;
  assert.ok(code === 0 || code === 1, `exit code ${code}`);
  assert.ok(p.logs.some((l) => l.msg === 'pillion stopped'));
});

test('a second signal during drain exits at once', async () => {
  const p = launch([join(root, 'test/fixtures/slow-drain.mjs')], { DRAIN_TIMEOUT: '1h' });
  await adminPort(p.logs);
  p.child.kill('SIGINT');
  await waitFor(() => p.logs.some((l) => l.msg === 'shutting down: draining'), { what: 'drain to begin' });
  p.child.kill('SIGINT');
  const { code } = await p.exited;
  assert.equal(code, 130);
  assert.ok(p.logs.some((l) => l.msg === 'second signal during drain: exiting now'));
});

test('POST /quitquitquit ends the process with exit 0', async () => {
  const p = launch([
    cli,
    'run',
    '-c',
    file('quit.yaml', 'admin:\n  listen: 127.0.0.1:0\n'),
    '--log-format',
    'json',
  ]);
  const port = await adminPort(p.logs);
  assert.equal((await fetch(`http://127.0.0.1:${port}/quitquitquit`, { method: 'POST' })).status, 200);
  assert.equal((await p.exited).code, 0);
});
