import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { CriLogWriter, MAX_RECORD } from '../../pod/cri-log.js';
import { CriDecoder, cutToBytes, RECORD_FLAG, utf8Boundary } from './cri.js';

interface Rec {
  text: string;
  bytes: number;
  flags: number;
  start: number;
  end: number;
  time: string | undefined;
  stream: string | undefined;
}

function decoder(maxBytes = 1024 * 1024): { d: CriDecoder; out: Rec[]; feed: (lines: string[]) => void } {
  const out: Rec[] = [];
  const d = new CriDecoder(
    (text, bytes, flags, start, end, time, stream) =>
      out.push({ text, bytes, flags, start, end, time, stream }),
    maxBytes,
  );
  let offset = 0;
  const feed = (lines: string[]): void => {
    for (const l of lines) {
      const bytes = Buffer.byteLength(l);
      d.line(l, bytes, 0, offset, offset + bytes + 1);
      offset += bytes + 1;
    }
  };
  return { d, out, feed };
}

const T = '2026-11-21T07:35:46.123456789Z';

describe('CriDecoder', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'pillion-cri-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('a full record gives its text, time and stream', () => {
    const { out, feed } = decoder();
    feed([`${T} stdout F hello world`, `${T} stderr F  two spaces`, `${T} stdout F`]);
    assert.deepEqual(
      out.map((r) => [r.text, r.time, r.stream, r.flags]),
      [
        ['hello world', T, 'stdout', 0],
        [' two spaces', T, 'stderr', 0],
        ['', T, 'stdout', 0],
      ],
    );
    assert.equal(out[0]!.bytes, 11);
  });

  test('partials of one stream are joined until its F record, across the other stream', () => {
    const { d, out, feed } = decoder();
    feed([`${T} stdout P aaa`, `${T} stderr F err line`, `${T} stdout P bbb`]);
    assert.deepEqual(
      out.map((r) => r.text),
      ['err line'],
    );
    // The stdout partial started at 0 and is still held.
    assert.equal(d.heldStart(), 0);
    feed([`2026-11-21T07:35:47.000000000Z stdout F ccc`]);
    assert.equal(out[1]!.text, 'aaabbbccc');
    assert.equal(out[1]!.time, T, 'the time of the first partial');
    assert.equal(out[1]!.start, 0);
    assert.equal(d.heldStart(), Infinity);
  });

  test('a line that is not CRI is kept raw and flagged', () => {
    const { out, feed } = decoder();
    feed(['plain text', `${T} stdin F x`, `${T} stdout X x`, `${T} stdout Fx`, 'x'.repeat(40), '']);
    assert.equal(out.length, 6);
    for (const r of out) assert.equal(r.flags & RECORD_FLAG.notCri, RECORD_FLAG.notCri, r.text);
    assert.equal(out[0]!.text, 'plain text');
    assert.equal(out[0]!.stream, undefined);
  });

  test('joined partials are bounded by maxBytes and flagged truncated', () => {
    const { out, feed } = decoder(2048);
    feed([`${T} stdout P ${'a'.repeat(1500)}`, `${T} stdout P ${'é'.repeat(600)}`, `${T} stdout F end`]);
    assert.equal(out.length, 1);
    assert.ok(out[0]!.flags & RECORD_FLAG.truncated);
    assert.ok(Buffer.byteLength(out[0]!.text) <= 2048);
    assert.equal(out[0]!.text, 'a'.repeat(1500) + 'é'.repeat(274));
  });

  test('flush hands over partials whose file ended without an F record', () => {
    const { d, out, feed } = decoder();
    feed([`${T} stderr P late`, `${T} stdout P early`]);
    d.flush(99);
    assert.deepEqual(
      out.map((r) => [r.text, r.stream, r.end]),
      [
        ['late', 'stderr', 99],
        ['early', 'stdout', 99],
      ],
    );
  });

  test("the pod runner's writer round-trips, long lines split into partials included", () => {
    const path = join(dir, 'round.log');
    const w = new CriLogWriter(path, { maxBytes: 1 << 30, maxFiles: 2 });
    const lines = ['short', 'ü'.repeat(MAX_RECORD), 'x'.repeat(3 * MAX_RECORD + 5), ''];
    for (const l of lines) w.write('stdout', Buffer.from(l + '\n'));
    w.write('stderr', Buffer.from('on stderr\n'));
    w.close();
    const { out, feed } = decoder();
    feed(readFileSync(path, 'utf8').split('\n').slice(0, -1));
    assert.deepEqual(
      out.map((r) => r.text),
      [...lines, 'on stderr'],
    );
    assert.deepEqual(
      out.map((r) => r.stream),
      ['stdout', 'stdout', 'stdout', 'stdout', 'stderr'],
    );
  });

  test('property: any content split into partials joins back to itself', () => {
    fc.assert(
      fc.property(
        fc.array(fc.string({ unit: 'grapheme', maxLength: 30 }), { minLength: 1, maxLength: 6 }),
        (parts) => {
          const clean = parts.map((p) => p.replace(/\n/g, ' '));
          const { out, feed } = decoder();
          const lines = clean.map((p, i) => `${T} stdout ${i === clean.length - 1 ? 'F' : 'P'} ${p}`);
          feed(lines);
          assert.equal(out.length, 1);
          assert.equal(out[0]!.text, clean.join(''));
        },
      ),
    );
  });
});

describe('utf8 cuts', () => {
  test('never split a character', () => {
    const buf = Buffer.from('aé€😀');
    assert.equal(utf8Boundary(buf, 2), 1);
    assert.equal(utf8Boundary(buf, 3), 3);
    assert.equal(utf8Boundary(buf, 5), 3);
    assert.equal(utf8Boundary(buf, 7), 6);
    assert.equal(utf8Boundary(buf, 9), 6);
    assert.equal(cutToBytes('aé€😀', 8), 'aé€');
    assert.equal(cutToBytes('abc', 10), 'abc');
  });
});
