import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { FakeClock } from '../lib/clock.js';
import { CheckpointStore, RELEASED_MAX } from './checkpoints.js';
import type { FileIdentity } from './types.js';

const silent = pino({ level: 'silent' });
const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

function identity(ino: number, path = `/var/log/${ino}.log`): FileIdentity {
  return { path, dev: 1, ino, fingerprint: 'f'.repeat(32), fingerprintLength: 256 };
}

describe('CheckpointStore', () => {
  let dir: string;
  let n = 0;
  const file = (): string => join(dir, `cp-${++n}`, 'checkpoints.json');
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'pillion-checkpoints-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('resume offset is the least any listed sink acknowledged; cut points are the others above it', () => {
    const store = CheckpointStore.open(file(), silent);
    const cp = store.forSource('app', ['es', 'loki', 'ch']);
    cp.register('app:1', identity(1));
    store.advance('app:1', 'es', 500);
    store.advance('app:1', 'loki', 300);
    store.advance('app:1', 'ch', 300);
    assert.deepEqual(cp.list(), [{ stream: 'app:1', identity: identity(1), offset: 300 }]);
    assert.deepEqual(cp.cutPoints('app:1'), [500]);
    assert.equal(store.acknowledged('app:1', 'es'), 500);
    store.close();
  });

  test('a new stream starts every sink at 0, so one sink acknowledging does not skip the others', () => {
    const store = CheckpointStore.open(file(), silent);
    const cp = store.forSource('app', ['a', 'b']);
    cp.register('app:1', identity(1));
    store.advance('app:1', 'a', 800);
    assert.equal(cp.list()[0]!.offset, 0);
    assert.deepEqual(cp.cutPoints('app:1'), [800]);
    store.close();
  });

  test('a sink with no entry (added later) counts as the least of the others, or 0', () => {
    const f = file();
    const first = CheckpointStore.open(f, silent);
    const cp1 = first.forSource('app', ['a']);
    cp1.register('app:1', identity(1));
    first.advance('app:1', 'a', 700);
    cp1.register('app:2', identity(2));
    first.close();
    const store = CheckpointStore.open(f, silent);
    const cp = store.forSource('app', ['a', 'new']);
    assert.deepEqual(
      cp.list().map((e) => [e.stream, e.offset]),
      [
        ['app:1', 700],
        ['app:2', 0],
      ],
    );
    assert.deepEqual(cp.cutPoints('app:1'), []);
    store.close();
  });

  test('an acknowledgement never moves a checkpoint backwards', () => {
    const store = CheckpointStore.open(file(), silent);
    const cp = store.forSource('app', ['a']);
    cp.register('app:1', identity(1));
    store.advance('app:1', 'a', 900);
    store.advance('app:1', 'a', 100);
    assert.equal(cp.list()[0]!.offset, 900);
    store.advance('unknown', 'a', 5);
    store.close();
  });

  test('streams are kept per source', () => {
    const store = CheckpointStore.open(file(), silent);
    const a = store.forSource('a', ['s']);
    const b = store.forSource('b', ['s']);
    a.register('a:1', identity(1));
    b.register('b:1', identity(1));
    assert.deepEqual(
      a.list().map((e) => e.stream),
      ['a:1'],
    );
    assert.deepEqual(
      b.list().map((e) => e.stream),
      ['b:1'],
    );
    b.release('a:1', 0);
    assert.equal(a.list().length, 1, 'another source cannot release it');
    store.close();
  });

  test('a released stream is removed once every sink has reached its final offset', () => {
    const store = CheckpointStore.open(file(), silent);
    const cp = store.forSource('app', ['a', 'b']);
    cp.register('app:1', identity(1));
    cp.release('app:1', 1000);
    store.advance('app:1', 'a', 1000);
    assert.equal(cp.list().length, 1);
    store.advance('app:1', 'b', 999);
    assert.equal(cp.list().length, 1);
    store.advance('app:1', 'b', 1000);
    assert.equal(cp.list().length, 0);
    cp.register('app:2', identity(2));
    store.advance('app:2', 'a', 10);
    store.advance('app:2', 'b', 10);
    cp.release('app:2', 10);
    assert.equal(cp.list().length, 0, 'already acknowledged: removed at once');
    store.close();
  });

  test('changes are written at the end of the turn, coalesced, and survive reopening', async () => {
    const f = file();
    const store = CheckpointStore.open(f, silent);
    const cp = store.forSource('app', ['a']);
    cp.register('app:1', identity(1));
    for (let i = 1; i <= 1000; i++) store.advance('app:1', 'a', i * 10);
    assert.equal(existsSync(f), false, 'not written within the turn');
    await turn();
    const doc = JSON.parse(readFileSync(f, 'utf8'));
    assert.equal(doc.streams['app:1'].sinks.a, 10_000);
    // A second process (kill -9 of the first, which is not closed) resumes from it.
    const again = CheckpointStore.open(f, silent);
    assert.deepEqual(again.forSource('app', ['a']).list(), [
      { stream: 'app:1', identity: identity(1), offset: 10_000 },
    ]);
    again.close();
    store.close();
  });

  test('fsync at most once a second: later writes arm a sync timer; flush syncs now', async () => {
    const clock = new FakeClock();
    const f = file();
    const store = CheckpointStore.open(f, silent, clock);
    const cp = store.forSource('app', ['a']);
    cp.register('app:1', identity(1));
    await turn();
    assert.equal(clock.pending, 0, 'the first write was synced');
    store.advance('app:1', 'a', 5);
    await turn();
    assert.equal(JSON.parse(readFileSync(f, 'utf8')).streams['app:1'].sinks.a, 0, 'the file waits');
    assert.match(readFileSync(`${f}.journal`, 'utf8'), /"a":5/, 'the journal has it');
    assert.equal(clock.pending, 1, 'a sync is due within the second');
    await clock.advance(1000);
    assert.equal(clock.pending, 0);
    assert.equal(JSON.parse(readFileSync(f, 'utf8')).streams['app:1'].sinks.a, 5);
    store.advance('app:1', 'a', 6);
    store.flush();
    assert.equal(JSON.parse(readFileSync(f, 'utf8')).streams['app:1'].sinks.a, 6);
    store.close();
    store.advance('app:1', 'a', 7);
    await turn();
    assert.equal(JSON.parse(readFileSync(f, 'utf8')).streams['app:1'].sinks.a, 6, 'closed: not written');
  });

  test('between syncs the journal holds the newest state: a process killed then resumes from it', async () => {
    const clock = new FakeClock();
    const f = file();
    const store = CheckpointStore.open(f, silent, clock);
    const cp = store.forSource('app', ['a']);
    cp.register('app:1', identity(1));
    await turn();
    for (let i = 1; i <= 3; i++) {
      store.advance('app:1', 'a', i * 100);
      await turn();
    }
    // Not closed (kill -9): the next process reads the journal, which is newer than the file.
    const again = CheckpointStore.open(f, silent, clock);
    assert.equal(again.forSource('app', ['a']).list()[0]!.offset, 300);
    again.flush();
    assert.equal(JSON.parse(readFileSync(f, 'utf8')).streams['app:1'].sinks.a, 300, 'flush writes the file');
    again.close();
    // A journal older than the file (written before the last sync) is ignored.
    store.advance('app:1', 'a', 400);
    await clock.advance(1000);
    const third = CheckpointStore.open(f, silent, clock);
    assert.equal(third.forSource('app', ['a']).list()[0]!.offset, 400);
    third.close();
    store.close();
  });

  test('a torn or foreign journal is ignored with a warning and the file is used', async () => {
    const f = file();
    const store = CheckpointStore.open(f, silent, new FakeClock());
    const cp = store.forSource('app', ['a']);
    cp.register('app:1', identity(1));
    await turn();
    store.advance('app:1', 'a', 100);
    await turn();
    const good = readFileSync(`${f}.journal`);
    for (const bad of [
      good.subarray(0, good.length - 5), // cut short
      Buffer.from(good.toString('latin1').replace('"a":100', '"a":900'), 'latin1'), // checksum fails
      Buffer.from('garbage\n{}'),
    ]) {
      writeFileSync(`${f}.journal`, bad);
      const warnings: string[] = [];
      const logger = pino(
        new Writable({
          write(chunk, _enc, cb) {
            warnings.push((JSON.parse(String(chunk)) as { msg: string }).msg);
            cb();
          },
        }),
      );
      const again = CheckpointStore.open(f, logger);
      assert.equal(again.forSource('app', ['a']).list()[0]!.offset, 0, 'the file, not the journal');
      assert.match(warnings.join('\n'), /journal is torn/);
      again.close();
    }
    // Bytes after the record (a longer earlier record) do not matter.
    writeFileSync(`${f}.journal`, Buffer.concat([good, Buffer.from('x'.repeat(500))]));
    const last = CheckpointStore.open(f, silent);
    assert.equal(last.forSource('app', ['a']).list()[0]!.offset, 100);
    last.close();
    store.close();
  });

  test('a corrupt file is set aside as .corrupt, logged with its code, and the store starts empty', () => {
    const f = file();
    CheckpointStore.open(f, silent).close();
    for (const bad of [
      '{"version":1,"streams":{"x":',
      '[1,2]',
      '{"version":1,"streams":{"x":{"source":"a"}}}',
    ]) {
      writeFileSync(f, bad);
      const lines: { code?: string; msg: string }[] = [];
      const logger = pino(
        new Writable({
          write(chunk, _enc, cb) {
            lines.push(JSON.parse(String(chunk)));
            cb();
          },
        }),
      );
      const store = CheckpointStore.open(f, logger);
      assert.deepEqual(store.entries(), []);
      assert.equal(readFileSync(`${f}.corrupt`, 'utf8'), bad);
      assert.equal(existsSync(f), false);
      assert.equal(lines.length, 1);
      assert.equal(lines[0]!.code, 'PILLION_ERR_LOGS_CHECKPOINT');
      store.close();
    }
  });

  test('an unusable directory is PILLION_ERR_LOGS_DATA_DIR', () => {
    const blocker = join(dir, 'not-a-dir');
    writeFileSync(blocker, 'x');
    assert.throws(
      () => CheckpointStore.open(join(blocker, 'sub', 'checkpoints.json'), silent),
      (err: Error & { code?: string }) => err.code === 'PILLION_ERR_LOGS_DATA_DIR',
    );
  });
  test('released files are remembered across a reopen; past RELEASED_MAX the oldest are forgotten and the horizon moves past them', () => {
    const f = file();
    const store = CheckpointStore.open(f, silent);
    const cp = store.forSource('app', ['sink']);
    const horizon = cp.horizon;
    assert.ok(horizon > 0 && horizon <= Date.now(), 'the first run sets the horizon to now');
    const born = (i: number): FileIdentity => ({ ...identity(i), birth: horizon + i });
    cp.register('app:1', born(1));
    assert.ok(cp.knownFile(1, 1, horizon + 1), 'a checkpointed file is known');
    cp.release('app:1', 0);
    assert.equal(store.entries().length, 0, 'released and acknowledged: the checkpoint is gone');
    assert.ok(cp.knownFile(1, 1, horizon + 1), 'but the file is remembered');
    assert.ok(!cp.knownFile(1, 1, horizon + 2), 'a new file on the same inode is not');
    store.close();

    const again = CheckpointStore.open(f, silent);
    const cp2 = again.forSource('app', ['sink']);
    assert.equal(cp2.horizon, horizon);
    assert.ok(cp2.knownFile(1, 1, horizon + 1));
    assert.deepEqual(
      cp2.knownHeads().map((h) => h.fingerprint),
      ['f'.repeat(32)],
    );
    for (let i = 2; i <= RELEASED_MAX + 1; i++) {
      cp2.register(`app:${i}`, born(i));
      cp2.release(`app:${i}`, 0);
    }
    assert.equal(
      cp2.horizon,
      horizon + 1,
      'the first one forgotten: files born up to it are no longer told apart',
    );
    assert.ok(!cp2.knownFile(1, 1, horizon + 1));
    assert.ok(cp2.knownFile(1, 2, horizon + 2));
    again.close();
  });
});
