import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { FileSinkConfig } from '../config.js';
import type { SendOutcome } from '../types.js';
import { createFileDriver } from './file.js';

const dir = mkdtempSync(join(tmpdir(), 'pillion-file-sink-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function cfg(path: string, maxBytes: number, maxFiles: number): FileSinkConfig {
  return {
    type: 'file',
    batch: { maxEvents: 1000, maxBytes: 1 << 20, maxAge: 1000 },
    retry: { initialBackoff: 10, maxBackoff: 100, timeout: 5000 },
    buffer: { type: 'memory', maxBytes: 1 << 20 },
    path,
    maxBytes,
    maxFiles,
  };
}

const signal = () => AbortSignal.timeout(5000);
const read = (p: string) =>
  readFileSync(p, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as { n: number; pad: string });

test('appends one JSON line per event, creating the parent directories', async () => {
  const path = join(dir, 'a', 'b', 'out.ndjson');
  const d = createFileDriver(cfg(path, 1 << 20, 3));
  assert.deepEqual(
    await d.send(
      [
        { n: 1, s: 'a"\nb' },
        { n: 2, nested: { x: [1] } },
      ],
      signal(),
    ),
    { kind: 'ok' },
  );
  assert.deepEqual(await d.send([{ n: 3 }], signal()), { kind: 'ok' });
  await d.close();
  assert.equal(readFileSync(path, 'utf8'), '{"n":1,"s":"a\\"\\nb"}\n{"n":2,"nested":{"x":[1]}}\n{"n":3}\n');
  // A new driver appends to what is there.
  const again = createFileDriver(cfg(path, 1 << 20, 3));
  await again.send([{ n: 4 }], signal());
  await again.close();
  assert.equal(read(path).length, 4);
});

test('rotates by size to .1, .2 ... keeping maxFiles, every line in order and none lost', async () => {
  const path = join(dir, 'rot', 'app.log');
  const d = createFileDriver(cfg(path, 1024, 2));
  const pad = 'x'.repeat(80);
  let n = 0;
  // 40 batches of 3 lines of about 100 bytes: about 12 KB through 1 KiB files.
  for (let b = 0; b < 40; b++) {
    const batch = [];
    for (let i = 0; i < 3; i++) batch.push({ n: n++, pad });
    assert.deepEqual(await d.send(batch, signal()), { kind: 'ok' });
  }
  await d.close();
  assert.deepEqual(readdirSync(join(dir, 'rot')).sort(), ['app.log', 'app.log.1', 'app.log.2']);
  for (const f of ['app.log', 'app.log.1', 'app.log.2'])
    assert.ok(statSync(join(dir, 'rot', f)).size <= 1024, f);
  const kept = [...read(`${path}.2`), ...read(`${path}.1`), ...read(path)].map((e) => e.n);
  // The newest lines, consecutive up to the last one written.
  assert.equal(kept.at(-1), n - 1);
  assert.deepEqual(
    kept,
    Array.from({ length: kept.length }, (_, i) => n - kept.length + i),
  );
  // Each file holds whole batches.
  assert.equal(read(path)[0]!.n % 3, 0);
});

test('a file moved away by someone else is reopened at its path', async () => {
  const path = join(dir, 'moved.log');
  const d = createFileDriver(cfg(path, 1 << 20, 1));
  await d.send([{ n: 1 }], signal());
  rmSync(path);
  await d.send([{ n: 2 }], signal());
  await d.close();
  assert.deepEqual(read(path), [{ n: 2 }]);
});

test('write errors fail the batch, retryably, with the reason', async () => {
  // A parent that is a file: the directory cannot be made.
  const blocker = join(dir, 'blocker');
  writeFileSync(blocker, '');
  const d = createFileDriver(cfg(join(blocker, 'out.log'), 1 << 20, 1));
  const out = (await d.send([{ n: 1 }], signal())) as Extract<SendOutcome, { kind: 'failed' }>;
  assert.equal(out.kind, 'failed');
  assert.equal(out.retry, true);
  assert.match(out.reason, /cannot open .*blocker\/out\.log: (ENOTDIR|EEXIST)/);
  await d.close();

  // /dev/full answers every write with ENOSPC.
  if (existsSync('/dev/full')) {
    const full = createFileDriver(cfg('/dev/full', 1 << 20, 1));
    const o = (await full.send([{ n: 1 }], signal())) as Extract<SendOutcome, { kind: 'failed' }>;
    assert.equal(o.kind, 'failed');
    assert.equal(o.retry, true);
    assert.match(o.reason, /cannot write \/dev\/full: ENOSPC/);
    await full.close();
  }
});
