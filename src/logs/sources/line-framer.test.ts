import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { FakeClock } from '../../lib/clock.js';
import type { Series } from '../../metrics/index.js';
import type { MultilineConfig } from '../config.js';
import { parseJson } from '../parsers/json.js';
import { encodeEvent } from '../sinks/encode.js';
import { type LogEvent, rawOf } from '../types.js';
import { LineFramer, type LineFramerOptions } from './line-framer.js';

const asMessage = (text: string): LogEvent => ({ message: text });
const asJson = (text: string): LogEvent => {
  try {
    return JSON.parse(text) as LogEvent;
  } catch {
    return { message: text, parse_error: 'not JSON' };
  }
};

function series(): Series {
  return { labels: {}, value: 0 };
}

function framer(opts: Partial<LineFramerOptions> = {}): LineFramer {
  return new LineFramer({
    format: 'lines',
    maxLineBytes: 1024 * 1024,
    parse: asMessage,
    clock: new FakeClock(),
    ...opts,
  });
}

const MULTILINE: MultilineConfig = {
  startPattern: String.raw`^\d{4}-\d{2}-\d{2}`,
  timeout: 1000,
  maxLines: 500,
  maxBytes: 1024 * 1024,
};

describe('LineFramer', () => {
  test('splits lines, strips a CR, and holds an unterminated line until its newline', () => {
    const f = framer();
    f.push(Buffer.from('one\r\ntwo\n\nthr'));
    assert.deepEqual(
      f.take().map((e) => e.message),
      ['one', 'two', ''],
    );
    assert.equal(f.committedOffset, 10);
    assert.equal(f.position, 13);
    f.push(Buffer.from('ee'));
    assert.equal(f.readyCount, 0);
    f.push(Buffer.from('\nfour'));
    assert.deepEqual(
      f.take().map((e) => e.message),
      ['three'],
    );
    assert.equal(f.committedOffset, 16);
    f.end();
    assert.deepEqual(
      f.take().map((e) => e.message),
      ['four'],
    );
    assert.equal(f.committedOffset, 20);
  });

  test('end(true) flags the unterminated line as cut (a truncate removed its rest)', () => {
    const f = framer();
    f.push(Buffer.from('whole\nline 392'));
    f.end(true);
    assert.deepEqual(f.take(), [{ message: 'whole' }, { message: 'line 392', truncated: true }]);
  });

  test('offsets start at the given stream offset', () => {
    const f = framer({ offset: 1000 });
    f.push(Buffer.from('a\nb\n'));
    assert.equal(f.committedOffset, 1004);
    assert.equal(f.position, 1004);
  });

  test('property: any split of the bytes gives the same events and offsets', () => {
    const line = fc.string({ unit: 'grapheme', maxLength: 20 }).map((s) => s.replace(/[\r\n]/g, '_'));
    fc.assert(
      fc.property(
        fc.array(line, { maxLength: 20 }),
        fc.array(fc.nat(40), { maxLength: 10 }),
        (lines, cuts) => {
          const bytes = Buffer.from(lines.map((l) => l + '\n').join(''));
          const f = framer();
          let at = 0;
          for (const c of [...cuts.map((c) => Math.min(at + c, bytes.length)), bytes.length]) {
            const to = Math.max(at, Math.min(c, bytes.length));
            f.push(bytes.subarray(at, to));
            at = to;
          }
          assert.deepEqual(
            f.take().map((e) => e.message),
            lines,
          );
          assert.equal(f.committedOffset, bytes.length);
        },
      ),
    );
  });

  test('a multi-byte character split between two pushes is not invalid', () => {
    const f = framer();
    const bytes = Buffer.from('ok €uro\n');
    f.push(bytes.subarray(0, 4));
    f.push(bytes.subarray(4));
    const [ev] = f.take();
    assert.deepEqual(ev, { message: 'ok €uro' });
  });

  test('invalid UTF-8 is replaced by U+FFFD and flagged on its line only', () => {
    const f = framer();
    f.push(Buffer.concat([Buffer.from('good\nbad '), Buffer.from([0xff, 0xfe]), Buffer.from('\nfine é\n')]));
    f.push(Buffer.concat([Buffer.from('held '), Buffer.from([0xc3])]));
    f.push(Buffer.from('\n'));
    assert.deepEqual(f.take(), [
      { message: 'good' },
      { message: 'bad \uFFFD\uFFFD', invalid_utf8: true },
      { message: 'fine é' },
      { message: 'held \uFFFD', invalid_utf8: true },
    ]);
  });

  test("fields the framer adds (invalid_utf8, truncated, pathField) drop an event's raw JSON text", () => {
    const parse = (t: string) => parseJson(t, series(), true);
    const f = framer({ parse });
    f.push(Buffer.concat([Buffer.from('{"a":"ok"}\n{"a":"'), Buffer.from([0xff]), Buffer.from('"}\n')]));
    const [ok, bad] = f.take();
    assert.equal(encodeEvent(ok!), '{"a":"ok"}');
    assert.equal(rawOf(bad!), undefined);
    assert.equal(encodeEvent(bad!), '{"a":"\uFFFD","invalid_utf8":true}');
    const g = framer({ parse, pathField: 'file', path: '/var/log/x.log' });
    g.push(Buffer.from('{"a":1}\n'));
    assert.equal(encodeEvent(g.take()[0]!), '{"a":1,"file":"/var/log/x.log"}');
  });

  test('a line over maxLineBytes is cut on a character boundary and flagged; the next is intact', () => {
    const truncated = series();
    const f = framer({ maxLineBytes: 1024, stats: { truncated, parseErrors: series() } });
    const long = 'a'.repeat(1023) + 'é'.repeat(10);
    f.push(Buffer.from(`${long}\nnext\n`));
    const [cut, next] = f.take();
    assert.equal(cut!.message, 'a'.repeat(1023));
    assert.equal(cut!.truncated, true);
    assert.deepEqual(next, { message: 'next' });
    assert.equal(truncated.value, 1);
    assert.equal(f.committedOffset, Buffer.byteLength(long) + 6);
  });

  test('a line of exactly maxLineBytes followed by CRLF is not truncated', () => {
    const f = framer({ maxLineBytes: 1024 });
    const exact = 'x'.repeat(1024);
    f.push(Buffer.from(exact.slice(0, 10)));
    f.push(Buffer.from(`${exact.slice(10)}\r\n${exact}\r\n`));
    assert.deepEqual(f.take(), [{ message: exact }, { message: exact }]);
  });

  test('a 5 MB line with maxLineBytes 1MiB is cut without holding 5 MB', () => {
    const MiB = 1024 * 1024;
    const f = framer({ maxLineBytes: MiB });
    const piece = Buffer.alloc(64 * 1024, 'z');
    let maxHeld = 0;
    f.push(Buffer.from('before\n'));
    for (let sent = 0; sent < 5 * MiB; sent += piece.length) {
      f.push(piece);
      maxHeld = Math.max(maxHeld, f.heldBytes);
    }
    assert.equal(f.readyCount, 1, 'nothing more until the newline');
    f.push(Buffer.from('\nafter\n'));
    const evs = f.take();
    assert.equal(evs.length, 3);
    assert.equal((evs[1]!.message as string).length, MiB);
    assert.equal(evs[1]!.truncated, true);
    assert.deepEqual(evs[2], { message: 'after' });
    assert.ok(maxHeld <= MiB + 1, `held ${maxHeld} bytes`);
    assert.ok(f.heldBytes <= 64 * 1024, 'the long line buffer is let go');
    assert.equal(f.committedOffset, 7 + 5 * MiB + 1 + 6);
  });

  test('the injected parser makes the event; flags and the path field are added to it', () => {
    const f = framer({ parse: asJson, pathField: 'file', path: '/var/log/a.log', maxLineBytes: 1024 });
    f.push(Buffer.from(`{"level":"info","n":1}\nnot json\n{"x":"${'y'.repeat(2000)}"}\n`));
    assert.deepEqual(f.take(), [
      { level: 'info', n: 1, file: '/var/log/a.log' },
      { message: 'not json', parse_error: 'not JSON', file: '/var/log/a.log' },
      {
        message: `{"x":"${'y'.repeat(1018)}`,
        parse_error: 'not JSON',
        truncated: true,
        file: '/var/log/a.log',
      },
    ]);
  });

  test('cri: partials are joined, time and stream become fields, a malformed line is kept raw', () => {
    const parseErrors = series();
    const f = framer({ format: 'cri', parse: asJson, stats: { parseErrors, truncated: series() } });
    const T = '2026-11-21T07:35:46.123456789Z';
    f.push(Buffer.from(`${T} stdout P {"a":\n${T} stderr F plain\n${T} stdout F 1}\ngarbage\n`));
    assert.deepEqual(f.take(), [
      { message: 'plain', parse_error: 'not JSON', time: T, stream: 'stderr' },
      { a: 1, time: T, stream: 'stdout' },
      { message: 'garbage', parse_error: 'not a CRI log record' },
    ]);
    assert.equal(parseErrors.value, 1, 'the parser counts its own failures; the framer counts non-CRI lines');
  });

  test("cri: the app's own time field wins over the runtime's", () => {
    const f = framer({ format: 'cri', parse: asJson });
    f.push(Buffer.from('2026-11-21T07:35:46.000000000Z stdout F {"time":"app"}\n'));
    assert.deepEqual(f.take(), [{ time: 'app', stream: 'stdout' }]);
  });

  test('cri: a partial line held of one stream keeps the committed offset before it', () => {
    const f = framer({ format: 'cri' });
    const p = '2026-11-21T07:35:46.000000000Z stdout P part\n';
    const e = '2026-11-21T07:35:46.000000000Z stderr F err\n';
    f.push(Buffer.from(p + e));
    assert.equal(f.take().length, 1);
    assert.equal(f.committedOffset, 0, 'the stdout partial at 0 is not an event yet');
    f.push(Buffer.from('2026-11-21T07:35:46.000000000Z stdout F end\n'));
    assert.equal(f.take()[0]!.message, 'partend');
    assert.equal(f.committedOffset, f.position);
  });

  test('multiline: groups by start pattern; the held group is not covered by the committed offset', () => {
    const f = framer({ multiline: MULTILINE });
    const first = '2026-11-21 10:00:00 ERROR boom\njava.lang.RuntimeException: x\n\tat a.b(C.java:1)\n';
    f.push(Buffer.from(first + '2026-11-21 10:00:01 INFO ok\n'));
    const evs = f.take();
    assert.deepEqual(evs, [{ message: first.slice(0, -1) }]);
    assert.equal(f.committedOffset, Buffer.byteLength(first));
    f.flushGroup();
    assert.deepEqual(f.take(), [{ message: '2026-11-21 10:00:01 INFO ok' }]);
    assert.equal(f.committedOffset, f.position);
    f.close();
  });

  test('multiline: the timeout hands over a group outside push and calls onReady', async () => {
    const clock = new FakeClock();
    let ready = 0;
    const f = framer({ multiline: MULTILINE, clock, onReady: () => ready++ });
    f.push(Buffer.from('2026-11-21 10:00:00 ERROR boom\n  at x\n'));
    assert.equal(f.readyCount, 0);
    await clock.advance(1000);
    assert.equal(ready, 1);
    assert.deepEqual(f.take(), [{ message: '2026-11-21 10:00:00 ERROR boom\n  at x' }]);
    f.close();
  });

  test('cri with multiline: each stream has its own group', () => {
    const f = framer({ format: 'cri', multiline: MULTILINE });
    const T = '2026-11-21T07:35:46.000000000Z';
    f.push(
      Buffer.from(
        [
          `${T} stderr F 2026-11-21 ERROR boom`,
          `${T} stdout F 2026-11-21 INFO request`,
          `${T} stderr F \tat a.b(C.java:1)`,
          `${T} stdout F 2026-11-21 INFO request 2`,
          `${T} stderr F 2026-11-21 INFO next`,
          '',
        ].join('\n'),
      ),
    );
    f.end();
    assert.deepEqual(
      f.take().map((e) => [e.stream, e.message]),
      [
        ['stdout', '2026-11-21 INFO request'],
        ['stderr', '2026-11-21 ERROR boom\n\tat a.b(C.java:1)'],
        ['stdout', '2026-11-21 INFO request 2'],
        ['stderr', '2026-11-21 INFO next'],
      ],
    );
    f.close();
  });

  test('reset forgets what is held and continues at the offset', () => {
    const f = framer({ multiline: MULTILINE });
    f.push(Buffer.from('2026-11-21 a\npartial'));
    f.reset(0);
    f.push(Buffer.from('2026-11-21 b\n'));
    f.end();
    assert.deepEqual(f.take(), [{ message: '2026-11-21 b' }]);
    assert.equal(f.committedOffset, 13);
    f.close();
  });

  // Speed is measured by `npm run bench:logs`, not here: a wall-clock bound fails on a busy machine.
  test('frames every line of many pushed reads, none lost or repeated', () => {
    const f = framer();
    const lines: string[] = [];
    for (let i = 0; i < 2000; i++)
      lines.push(`2026-11-21T07:35:46.123Z level=info msg="request done" n=${i}`);
    const buf = Buffer.from(lines.join('\n') + '\n');
    let n = 0;
    let last = '';
    for (let round = 0; round < 100; round++) {
      f.push(buf);
      const got = f.take();
      n += got.length;
      last = String(got.at(-1)?.message);
    }
    assert.equal(n, 200_000);
    assert.equal(last, lines[1999]);
  });
});
