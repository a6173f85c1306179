import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { FakeClock } from '../../lib/clock.js';
import { waitFor } from '../../lib/wait-for.js';
import type { LogEvent } from '../types.js';
import { type DiskBatch, DiskBuffer, type DiskBufferOptions } from './disk-buffer.js';

interface LogLine {
  level: number;
  code?: string;
  msg: string;
}

function capture(): { logger: pino.Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const logger = pino(
    { level: 'debug' },
    { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) },
  );
  return { logger, lines };
}

let root: string;
let n = 0;
before(() => {
  root = mkdtempSync(join(tmpdir(), 'pillion-disk-buffer-'));
});
after(() => rmSync(root, { recursive: true, force: true }));

function fresh(): string {
  return join(root, `b${n++}`);
}

function open(dir: string, extra: Partial<DiskBufferOptions> = {}) {
  const log = capture();
  const clock = new FakeClock();
  const buf = DiskBuffer.open({ dir, maxBytes: 1024 * 1024, clock, logger: log.logger, ...extra });
  return { buf, lines: log.lines, clock };
}

function ev(i: number, pad = 0): LogEvent {
  return { i, message: `line ${i}${'x'.repeat(pad)}` };
}

/** Reads everything unread, acking as it goes; returns the `i` of each event. */
function readAll(buf: DiskBuffer, maxEvents = 1000, maxBytes = 1e9): number[] {
  const out: number[] = [];
  for (let b: DiskBatch | undefined; (b = buf.read(maxEvents, maxBytes));) {
    for (const e of b.events) out.push(e.i as number);
    buf.ack(b.end);
  }
  return out;
}

function segments(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.seg'))
    .sort();
}

function diskBytes(dir: string): number {
  return segments(dir).reduce((s, f) => s + statSync(join(dir, f)).size, 0);
}

/** Records in a segment file, by walking its length headers. */
function recordCount(path: string): number {
  const b = readFileSync(path);
  let count = 0;
  for (let pos = 0; pos + 8 <= b.length; pos += 8 + b.readUInt32LE(pos)) count++;
  return count;
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, k) => from + k);
}

describe('DiskBuffer', () => {
  test('returns appended events in order, a batch at a time, splitting records at the limits', () => {
    const { buf } = open(fresh());
    assert.equal(buf.read(10, 1e9), undefined);
    assert.ok(buf.append([ev(0), ev(1), ev(2)], 300));
    assert.ok(buf.append([ev(3)], 50));
    assert.ok(buf.hasUnread);
    const a = buf.read(2, 1e9)!;
    assert.deepEqual(a.events, [ev(0), ev(1)]);
    assert.equal(a.bytes, 200); // an item's bytes are shared out by event
    buf.ack(a.end);
    const b = buf.read(10, 150)!;
    assert.deepEqual(
      b.events.map((e) => e.i),
      [2, 3],
    );
    assert.equal(b.bytes, 150);
    assert.ok(buf.hasUnacked);
    buf.ack(b.end);
    assert.ok(!buf.hasUnacked && !buf.hasUnread);
    assert.equal(buf.bytes, 0, 'a fully acknowledged buffer holds no bytes');
    buf.close();
  });

  test('maxBytes limits a batch but never below one event', () => {
    const { buf } = open(fresh());
    buf.append([ev(0), ev(1), ev(2), ev(3)], 4000);
    assert.equal(buf.read(100, 10)!.events.length, 1);
    assert.equal(buf.read(100, 2500)!.events.length, 2);
    buf.close();
  });

  test('a restart delivers exactly the unacknowledged events, even inside a split record', () => {
    const dir = fresh();
    let { buf } = open(dir);
    for (let i = 0; i < 10; i++) buf.append([ev(i * 2), ev(i * 2 + 1)], 20);
    buf.ack(buf.read(5, 1e9)!.end); // 0..4: the third record is half taken
    const unacked = buf.read(4, 1e9)!; // 5..8: read, never acknowledged
    assert.equal(unacked.events.length, 4);
    buf.close();
    ({ buf } = open(dir));
    assert.deepEqual(readAll(buf, 3), range(5, 20));
    buf.append([ev(20)], 10);
    buf.close();
    ({ buf } = open(dir));
    assert.deepEqual(readAll(buf), [20]);
    assert.equal(buf.corrupt, 0);
    const ack = JSON.parse(readFileSync(join(dir, 'ack'), 'utf8')) as Record<string, number>;
    assert.deepEqual(Object.keys(ack).sort(), ['offset', 'segment', 'skip']);
    assert.ok(!readdirSync(dir).some((f) => f.endsWith('.tmp')), 'no temporary file is left');
    buf.close();
  });

  test('a torn last record (short) is cut and counted at open; the rest is delivered and appends continue', () => {
    const dir = fresh();
    let { buf } = open(dir);
    for (let i = 0; i < 5; i++) buf.append([ev(i)], 10);
    buf.close();
    const [seg] = segments(dir);
    const path = join(dir, seg!);
    truncateSync(path, statSync(path).size - 3); // kill -9 in the middle of the last write
    const reopened = open(dir);
    buf = reopened.buf;
    const lines = reopened.lines;
    assert.equal(buf.corrupt, 1);
    assert.ok(lines.some((l) => l.code === 'PILLION_ERR_LOGS_BUFFER_CORRUPT'));
    buf.append([ev(5)], 10);
    assert.deepEqual(readAll(buf), [0, 1, 2, 3, 5]);
    buf.close();
  });

  test('a last record failing its checksum (power cut: zeros) is cut and counted', () => {
    const dir = fresh();
    let { buf } = open(dir);
    for (let i = 0; i < 4; i++) buf.append([ev(i)], 10);
    buf.close();
    const path = join(dir, segments(dir)[0]!);
    const bytes = readFileSync(path);
    bytes[bytes.length - 2] = bytes[bytes.length - 2]! ^ 0x20;
    writeFileSync(path, bytes);
    ({ buf } = open(dir));
    assert.equal(buf.corrupt, 1);
    assert.deepEqual(readAll(buf), [0, 1, 2]);
    buf.close();
  });

  test('a flipped byte in the middle skips that record only; a bad length skips to the next segment', () => {
    const dir = fresh();
    let { buf } = open(dir, { segmentBytes: 400 });
    for (let i = 0; i < 24; i++) buf.append([ev(i, 20)], 10);
    buf.close();
    const segs = segments(dir);
    const counts = segs.map((f) => recordCount(join(dir, f)));
    assert.ok(counts.length >= 3 && counts[0]! >= 3, `several segments (${counts.join(',')})`);
    // Segment 0: flip a payload byte of its second record.
    const p0 = join(dir, segs[0]!);
    const s0 = readFileSync(p0);
    const second = 8 + s0.readUInt32LE(0);
    s0[second + 8 + 5] = s0[second + 8 + 5]! ^ 0x01;
    writeFileSync(p0, s0);
    // Segment 1: make its second record's length impossible.
    const p1 = join(dir, segs[1]!);
    const s1 = readFileSync(p1);
    s1.writeUInt32LE(0x7fffffff, 8 + s1.readUInt32LE(0));
    writeFileSync(p1, s1);
    ({ buf } = open(dir, { segmentBytes: 400 }));
    const got = readAll(buf);
    assert.equal(buf.corrupt, 2);
    const seg1 = counts[0]!;
    const seg2 = seg1 + counts[1]!;
    const want = [0, ...range(2, seg1), seg1, ...range(seg2, 24)];
    assert.deepEqual(got, want);
    buf.close();
  });

  test('keeps the bytes on disk within maxBytes, refusing appends when full', () => {
    const dir = fresh();
    const maxBytes = 64 * 1024;
    const { buf } = open(dir, { maxBytes });
    let accepted = 0;
    while (buf.append([ev(accepted, 200)], 200)) accepted++;
    assert.ok(accepted > 100);
    assert.ok(buf.bytes <= maxBytes);
    assert.equal(buf.bytes, diskBytes(dir));
    assert.ok(buf.bytes > maxBytes - 400, 'fills up to the bound');
    assert.equal(buf.append([ev(-1, 200)], 200), false);
    // Acknowledging the oldest segments makes room.
    const half = Math.floor(accepted / 2);
    const b = buf.read(half, 1e9)!;
    buf.ack(b.end);
    assert.ok(buf.append([ev(accepted, 200)], 200));
    assert.deepEqual(readAll(buf), range(half, accepted + 1));
    buf.close();
  });

  test('an empty buffer takes a record larger than maxBytes, so it cannot wedge', () => {
    const { buf } = open(fresh(), { maxBytes: 64 * 1024 });
    assert.ok(buf.append([ev(0, 100 * 1024)], 100 * 1024));
    assert.equal(buf.append([ev(1)], 10), false);
    assert.deepEqual(readAll(buf), [0]);
    assert.ok(buf.append([ev(1)], 10));
    buf.close();
  });

  test('deletes segments once acknowledged', () => {
    const dir = fresh();
    const { buf } = open(dir, { segmentBytes: 1024 });
    for (let i = 0; i < 40; i++) buf.append([ev(i, 100)], 100);
    const before = segments(dir);
    assert.ok(before.length >= 5);
    const b = buf.read(20, 1e9)!;
    buf.ack(b.end);
    const mid = segments(dir);
    assert.ok(mid.length < before.length && mid.length > 1);
    assert.ok(!mid.includes(before[0]!));
    assert.equal(buf.bytes, diskBytes(dir));
    readAll(buf);
    assert.equal(segments(dir).length, 1);
    assert.equal(diskBytes(dir), 0);
    buf.close();
  });

  test('opens a buffer of many MiB without reading it, then reads a batch at a time', () => {
    const dir = fresh();
    const seg = 1024 * 1024;
    let { buf } = open(dir, { maxBytes: 64 * seg, segmentBytes: seg });
    const big = 'y'.repeat(4000);
    let i = 0;
    while (buf.bytes < 8 * seg) buf.append([{ i: i++, message: big }], 4000);
    buf.close();
    ({ buf } = open(dir, { maxBytes: 64 * seg, segmentBytes: seg }));
    assert.equal(buf.bytes, diskBytes(dir));
    assert.ok(buf.bytesRead <= seg, `open read ${buf.bytesRead} bytes of ${buf.bytes}`);
    const b = buf.read(10, 1e9)!;
    assert.equal(b.events.length, 10);
    assert.ok(buf.bytesRead <= seg + 11 * 4100, `one batch read ${buf.bytesRead} bytes`);
    buf.ack(b.end);
    buf.close();
  });

  test('a corrupt ack file means reading again from the oldest segment', () => {
    const dir = fresh();
    let { buf } = open(dir);
    for (let i = 0; i < 3; i++) buf.append([ev(i)], 10);
    buf.ack(buf.read(1, 1e9)!.end);
    buf.close();
    writeFileSync(join(dir, 'ack'), '{"segm');
    const reopened = open(dir);
    buf = reopened.buf;
    const lines = reopened.lines;
    assert.ok(lines.some((l) => l.code === 'PILLION_ERR_LOGS_BUFFER_CORRUPT'));
    assert.deepEqual(readAll(buf), [0, 1, 2]);
    buf.close();
  });

  test('fsyncs at most once a second, on the clock', async () => {
    const { buf, clock } = open(fresh());
    buf.append([ev(0)], 1);
    buf.append([ev(1)], 1);
    assert.equal(clock.pending, 1);
    await clock.advance(1000);
    assert.equal(clock.pending, 0);
    buf.close();
  });

  test('after kill -9 of a writing process every record up to the last whole one is delivered', async () => {
    const dir = fresh();
    const module = fileURLToPath(new URL('./disk-buffer.js', import.meta.url));
    const script = `
      import { DiskBuffer } from ${JSON.stringify(module)};
      const buf = DiskBuffer.open({ dir: ${JSON.stringify(dir)}, maxBytes: 1e9, segmentBytes: 64 * 1024,
        clock: { now: () => 0, setTimeout: () => ({ cancel() {} }) },
        logger: { warn() {}, info() {}, error() {} } });
      let i = 0;
      for (;;) {
        buf.append([{ i, message: 'z'.repeat(i % 700) }], 10);
        if (++i === 200) process.stdout.write('go\\n');
      }`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    await waitFor(() => out.includes('go'), { what: 'the writer to start' });
    await waitFor(() => diskBytes(dir) > 512 * 1024, { what: 'half a MiB written' });
    const exited = new Promise((r) => child.on('exit', r));
    child.kill('SIGKILL');
    await exited;
    const { buf } = open(dir, { maxBytes: 1e9, segmentBytes: 64 * 1024 });
    const got = readAll(buf);
    assert.ok(got.length > 200);
    assert.deepEqual(got, range(0, got.length), 'no gap, no duplicate');
    assert.ok(buf.corrupt <= 1);
    buf.close();
  });
});
