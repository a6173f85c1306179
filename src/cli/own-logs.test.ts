// The process's own log lines: an operational error is one line (EADDRINUSE once, no stack) in
// JSON and in pretty mode, and every JSON line carries each key once.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { waitFor } from '../lib/wait-for.js';

const root = new URL('../../', import.meta.url).pathname;
const cli = join(root, 'dist/cli/main.js');
const dir = mkdtempSync(join(tmpdir(), 'pillion-own-logs-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

/** Runs pillion; `lines` fills as it writes, `done` resolves once its output is all read. */
function pillion(...args: string[]) {
  const child = spawn(process.execPath, [cli, ...args], {
    env: { ...process.env, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr.resume();
  const done = new Promise<{ status: number | null; stdout: string }>((resolve) =>
    child.on('close', (status) => resolve({ status, stdout })),
  );
  return { child, done, lines: () => stdout.split('\n').filter(Boolean) };
}

test('a port already taken is one clear line, without a stack, in JSON and in pretty mode (exit 1)', async () => {
  const holder = createServer();
  await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
  const port = (holder.address() as { port: number }).port;
  try {
    const admin = file('taken.yaml', `admin:\n  listen: 127.0.0.1:${port}\n`);
    const proxy = file(
      'taken-proxy.yaml',
      `admin:\n  listen: 127.0.0.1:0\napp:\n  port: 1\ninbound:\n  listeners:\n    - address: 127.0.0.1:${port}\n`,
    );
    const cases = [
      [admin, 'PILLION_ERR_ADMIN_LISTEN'],
      [proxy, 'PILLION_ERR_PROXY_LISTEN'],
    ] as const;
    // All at once: each is a separate process, and the machine may be busy.
    const runs = await Promise.all([
      ...cases.flatMap(([config]) => [
        pillion('run', '-c', config, '--log-format', 'json').done,
        pillion('run', '-c', config, '--log-format', 'pretty').done,
      ]),
      pillion('run', '-c', admin, '--log-format', 'json', '--log-level', 'debug').done,
    ]);
    cases.forEach(([, code], i) => {
      const json = runs[2 * i]!;
      assert.equal(json.status, 1);
      const fatal = json.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((l) => l.level === 'fatal');
      assert.equal(fatal.length, 1, json.stdout);
      assert.equal(fatal[0]!.code, code);
      assert.equal(fatal[0]!.err, undefined, 'no error object, so no stack');
      assert.equal(json.stdout.match(/EADDRINUSE/g)?.length, 1, json.stdout);
      assert.doesNotMatch(json.stdout, /stack| {4}at /);

      const pretty = runs[2 * i + 1]!;
      assert.equal(pretty.status, 1);
      const out = pretty.stdout.trim().split('\n');
      const fatalLines = out.filter((l) => l.includes('FATAL'));
      assert.equal(fatalLines.length, 1, pretty.stdout);
      assert.equal(out.at(-1), fatalLines[0], 'nothing follows the one line');
      assert.match(
        fatalLines[0]!,
        new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: EADDRINUSE .*${code}`),
      );
      assert.equal(pretty.stdout.match(/EADDRINUSE/g)?.length, 1, pretty.stdout);
    });
    // At debug level the stack is there for whoever asked.
    assert.match(runs[4]!.stdout, /"stack":/);
  } finally {
    holder.close();
  }
});

/** Top-level keys of a JSON object in the order written, repeats included (JSON.parse keeps the last). */
function topLevelKeys(line: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  let expectKey = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (ch === '"') {
      let j = i + 1;
      while (line[j] !== '"') j += line[j] === '\\' ? 2 : 1;
      if (depth === 1 && expectKey) keys.push(JSON.parse(line.slice(i, j + 1)) as string);
      expectKey = false;
      i = j;
    } else if (ch === '{' || ch === '[') {
      depth++;
      expectKey = ch === '{' && depth === 1;
    } else if (ch === '}' || ch === ']') depth--;
    else if (ch === ',' && depth === 1) expectKey = true;
  }
  return keys;
}

test('regression: every JSON log line of the process carries each key once (logs bound `module` twice)', async () => {
  const work = mkdtempSync(join(dir, 'keys-'));
  mkdirSync(join(work, 'data'));
  // A corrupt checkpoint file makes the logs module log at start, through the logger it is given.
  writeFileSync(join(work, 'data', 'checkpoints.json'), 'garbage\n');
  const config = file(
    'keys.yaml',
    [
      'admin:\n  listen: 127.0.0.1:0',
      'app:\n  port: 1\n  health: { interval: 100ms }',
      'inbound:\n  listeners:\n    - address: 127.0.0.1:0',
      'outbound:\n  listener: { address: 127.0.0.1:0 }',
      `logs:\n  dataDir: ${join(work, 'data')}`,
      `  sources:\n    a: { type: tail, include: ["${join(work, '*.log')}"] }`,
      `  sinks:\n    f: { type: file, path: ${join(work, 'out.ndjson')} }`,
      '',
    ].join('\n'),
  );
  const p = pillion('run', '-c', config, '--log-format', 'json');
  const logs = () => p.lines().map((l) => JSON.parse(l) as Record<string, unknown>);
  try {
    await waitFor(() => logs().some((l) => l.msg === 'pillion started'), {
      what: 'start',
      timeoutMs: 30_000,
    });
  } finally {
    p.child.kill('SIGTERM');
  }
  const { status } = await p.done;
  assert.equal(status, 0);
  assert.ok(logs().some((l) => l.module === 'logs' && l.code === 'PILLION_ERR_LOGS_CHECKPOINT'));
  const lines = p.lines();
  assert.ok(lines.length >= 5);
  for (const line of lines) {
    const keys = topLevelKeys(line);
    assert.deepEqual(keys, [...new Set(keys)], line);
  }
});
