import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { FakeClock } from '../../lib/clock.js';
import { DeadLetterFile } from './dead-letter.js';

let root: string;
let n = 0;
before(() => {
  root = mkdtempSync(join(tmpdir(), 'pillion-dead-letter-'));
});
after(() => rmSync(root, { recursive: true, force: true }));

function make(maxBytes?: number) {
  const dataDir = join(root, `d${n++}`);
  const lines: { level: number; code?: string }[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  const clock = new FakeClock(Date.UTC(2025, 0, 2, 3, 4, 5));
  const dl = new DeadLetterFile({ dataDir, sink: 'es', clock, logger, maxBytes });
  return { dl, dataDir, lines, clock };
}

function read(path: string): Record<string, unknown>[] {
  return readFileSync(path, 'utf8')
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('DeadLetterFile', () => {
  test('creates the file on first use and writes one line per event', () => {
    const { dl, dataDir } = make();
    assert.equal(dl.path, join(dataDir, 'dead-letter', 'es.ndjson'));
    assert.ok(!existsSync(join(dataDir, 'dead-letter')));
    assert.ok(dl.write([{ a: 1 }, { b: 'x\n"y"' }], 'HTTP 400'));
    assert.ok(dl.writeEach([{ event: { c: [1] }, reason: 'mapper_parsing_exception' }]));
    assert.deepEqual(read(dl.path), [
      { sink: 'es', reason: 'HTTP 400', time: '2025-01-02T03:04:05.000Z', event: { a: 1 } },
      { sink: 'es', reason: 'HTTP 400', time: '2025-01-02T03:04:05.000Z', event: { b: 'x\n"y"' } },
      { sink: 'es', reason: 'mapper_parsing_exception', time: '2025-01-02T03:04:05.000Z', event: { c: [1] } },
    ]);
    dl.close();
  });

  test('appends to an existing file across instances', () => {
    const a = make();
    a.dl.write([{ a: 1 }], 'r');
    a.dl.close();
    const b = new DeadLetterFile({
      dataDir: a.dataDir,
      sink: 'es',
      clock: a.clock,
      logger: pino({ level: 'silent' }),
    });
    b.write([{ a: 2 }], 'r');
    b.close();
    assert.deepEqual(
      read(a.dl.path).map((l) => l.event),
      [{ a: 1 }, { a: 2 }],
    );
  });

  test('is bounded by size with one rotated file', () => {
    const { dl } = make(1024);
    const pad = 'z'.repeat(100);
    for (let i = 0; i < 40; i++) dl.write([{ i, pad }], 'bad');
    assert.ok(statSync(dl.path).size <= 1024);
    assert.ok(statSync(`${dl.path}.1`).size <= 1024);
    const newest = read(dl.path).map((l) => (l.event as { i: number }).i);
    const older = read(`${dl.path}.1`).map((l) => (l.event as { i: number }).i);
    assert.equal(newest.at(-1), 39);
    assert.equal(older.at(-1)! + 1, newest[0]);
    // Rotation inside one large batch keeps both files within the bound too.
    dl.write(
      Array.from({ length: 30 }, (_, i) => ({ i: 100 + i, pad })),
      'bad',
    );
    assert.ok(statSync(dl.path).size <= 1024);
    assert.ok(statSync(`${dl.path}.1`).size <= 1024);
    dl.close();
  });

  test('keeps events JSON cannot encode as it is', () => {
    const { dl } = make();
    const cyclic: Record<string, unknown> = { n: 1n };
    cyclic.self = cyclic;
    dl.write([cyclic], 'r');
    assert.deepEqual(read(dl.path)[0]!.event, { n: '1', self: '[Circular]' });
    dl.close();
  });

  test('a data directory it cannot write is logged, not thrown', () => {
    const { dl, dataDir, lines } = make();
    writeFileSync(dataDir, 'not a directory');
    assert.equal(dl.write([{ a: 1 }], 'r'), false);
    assert.ok(lines.some((l) => l.code === 'PILLION_ERR_LOGS_DATA_DIR'));
  });
});
