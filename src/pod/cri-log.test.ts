import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CriLogWriter, MAX_RECORD, parseCriLine, readCriLog, rfc3339Nano, rotatedFiles } from './cri-log.js';

const dir = () => mkdtempSync(join(tmpdir(), 'pillion-cri-'));

test('lines are written in the kubelet CRI format, per stream, across chunk boundaries', () => {
  const path = join(dir(), '0.log');
  const seen: string[] = [];
  const w = new CriLogWriter(path, {
    maxBytes: 1 << 20,
    maxFiles: 5,
    onLine: (s, l) => seen.push(`${s}:${l}`),
  });
  w.write('stdout', Buffer.from('hello wor'));
  w.write('stderr', Buffer.from('oops\n'));
  w.write('stdout', Buffer.from('ld\nsecond\nunterminated'));
  w.close();
  const lines = readFileSync(path, 'utf8').trimEnd().split('\n');
  assert.equal(lines.length, 4);
  for (const l of lines) assert.match(l, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (stdout|stderr) F /);
  assert.deepEqual(
    lines.map((l) => parseCriLine(l)!).map((r) => `${r.stream}:${r.content}`),
    ['stderr:oops', 'stdout:hello world', 'stdout:second', 'stdout:unterminated'],
  );
  assert.deepEqual(seen, ['stderr:oops', 'stdout:hello world', 'stdout:second', 'stdout:unterminated']);
});

test('a line longer than 16 KiB becomes P records and a final F, joined again by the reader', () => {
  const path = join(dir(), '0.log');
  const long = 'x'.repeat(MAX_RECORD * 2 + 100);
  const seen: string[] = [];
  const w = new CriLogWriter(path, { maxBytes: 1 << 22, maxFiles: 5, onLine: (_s, l) => seen.push(l) });
  w.write('stdout', Buffer.from(long.slice(0, MAX_RECORD + 5))); // the first partial goes out before the newline
  w.write('stdout', Buffer.from(`${long.slice(MAX_RECORD + 5)}\n`));
  w.close();
  const tags = readFileSync(path, 'utf8')
    .trimEnd()
    .split('\n')
    .map((l) => parseCriLine(l)!.partial);
  assert.deepEqual(tags, [true, true, false]);
  assert.deepEqual(
    readCriLog(path).map((e) => e.line),
    [long],
  );
  assert.deepEqual(seen, [long]);
});

test('files rotate by size, keeping maxFiles in all, and the reader reads them in order', () => {
  const path = join(dir(), '0.log');
  const w = new CriLogWriter(path, { maxBytes: 200, maxFiles: 3 });
  for (let i = 0; i < 40; i++) w.write('stdout', Buffer.from(`line ${i}\n`));
  w.close();
  const rotated = rotatedFiles(path);
  assert.equal(rotated.length, 2);
  for (const f of rotated) assert.match(f, /0\.log\.\d{8}-\d{6}(-\d+)?$/);
  const lines = readCriLog(path).map((e) => e.line);
  assert.equal(lines.at(-1), 'line 39');
  const nums = lines.map((l) => Number(l.split(' ')[1]));
  assert.deepEqual(
    nums,
    [...nums].sort((a, b) => a - b),
    'in order',
  );
});

test('RFC3339 timestamps carry nanoseconds', () => {
  assert.equal(rfc3339Nano(1_700_000_000_123_456_789n), '2023-11-14T22:13:20.123456789Z');
});

test('regression: partial records are cut between characters, never inside one', () => {
  const path = join(dir(), '0.log');
  const line = `${'a'.repeat(MAX_RECORD - 1)}€€€`; // the first € straddles the 16 KiB mark
  const w = new CriLogWriter(path, { maxBytes: 1 << 22, maxFiles: 5 });
  w.write('stdout', Buffer.from(`${line}\n`));
  w.close();
  assert.equal(readCriLog(path)[0]!.line, line);
  assert.ok(!readFileSync(path, 'utf8').includes('\uFFFD'));
});
