import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, test } from 'node:test';
import pino from 'pino';
import { FakeClock } from '../../lib/clock.js';
import { waitFor } from '../../lib/wait-for.js';
import type { StdinSourceConfig } from '../config.js';
import { fakeSourceStats } from '../test-support/source-context.js';
import type { Chunk, LogEvent, SourceContext } from '../types.js';
import { createStdinSource } from './stdin.js';

const asMessage = (text: string): LogEvent => ({ message: text });

function context(clock = new FakeClock()): {
  ctx: SourceContext;
  chunks: Chunk[];
  setFull: (full: boolean) => void;
  capacityCalls: () => number;
} {
  const chunks: Chunk[] = [];
  let full = false;
  let calls = 0;
  let release: (() => void) | undefined;
  const ctx: SourceContext = {
    name: 'in',
    logger: pino({ level: 'silent' }),
    clock,
    stats: fakeSourceStats(),
    dataDir: '/nonexistent',
    emit: (chunk) => {
      chunks.push(chunk);
      return !full;
    },
    capacity: () => {
      calls++;
      return full ? new Promise((r) => (release = r)) : Promise.resolve();
    },
    hasCapacity: () => !full,
    maxChunkEvents: 10_000,
    checkpoints: {
      horizon: 0,
      knownFile: () => assert.fail('stdin has no checkpoints'),
      knownHeads: () => assert.fail('stdin has no checkpoints'),
      list: () => [],
      cutPoints: () => [],
      register: () => assert.fail('stdin has no checkpoints'),
      progress: () => assert.fail('stdin has no checkpoints'),
      release: () => assert.fail('stdin has no checkpoints'),
    },
  };
  const setFull = (f: boolean): void => {
    full = f;
    if (!f) release?.();
  };
  return { ctx, chunks, setFull, capacityCalls: () => calls };
}

const config = (over: Partial<StdinSourceConfig> = {}): StdinSourceConfig => ({
  type: 'stdin',
  format: 'lines',
  maxLineBytes: 1024 * 1024,
  parser: 'none',
  ...over,
});

const messages = (chunks: Chunk[]): unknown[] => chunks.flatMap((c) => c.events.map((e) => e.message));

describe('stdin source', () => {
  test('frames lines across writes; the last unterminated line is sent at end of input', async () => {
    const input = new PassThrough();
    const { ctx, chunks } = context();
    const src = createStdinSource(config(), ctx, asMessage, input);
    await src.start();
    input.write('one\ntw');
    input.write('o\nthree');
    await waitFor(() => messages(chunks).length === 2, { what: 'two lines' });
    input.end();
    await waitFor(() => messages(chunks).length === 3, { what: 'the last line' });
    assert.deepEqual(messages(chunks), ['one', 'two', 'three']);
    assert.equal(
      chunks.reduce((a, c) => a + c.bytes, 0),
      13,
    );
    assert.equal(chunks[0]!.stream, undefined, 'no checkpoints');
    assert.equal(ctx.stats.events.value, 3);
    await src.stop();
  });

  test('backpressure pauses the stream until capacity resolves', async () => {
    const input = new PassThrough();
    const { ctx, chunks, setFull, capacityCalls } = context();
    const src = createStdinSource(config(), ctx, asMessage, input);
    await src.start();
    setFull(true);
    input.write('a\n');
    await waitFor(() => capacityCalls() === 1, { what: 'waiting for capacity' });
    assert.equal(input.isPaused(), true);
    input.write('b\n');
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(messages(chunks), ['a'], 'nothing read while paused');
    setFull(false);
    await waitFor(() => messages(chunks).length === 2, { what: 'b after capacity' });
    await src.stop();
    assert.equal(input.isPaused(), true, 'stop leaves the stream paused for a later reader');
  });

  test('stop hands over a pending multiline group and the unterminated line', async () => {
    const input = new PassThrough();
    const { ctx, chunks } = context();
    const multiline = { startPattern: '^\\d{4}', timeout: 1000, maxLines: 10, maxBytes: 4096 };
    const src = createStdinSource(config({ multiline }), ctx, asMessage, input);
    await src.start();
    input.write('2026 boom\n  at x\n  at');
    await waitFor(() => ctx.stats.bytes.value === 21, { what: 'bytes read' });
    assert.equal(chunks.length, 0);
    await src.stop();
    assert.deepEqual(messages(chunks), ['2026 boom\n  at x\n  at']);
  });

  test('a multiline group is sent by its timeout on the injected clock', async () => {
    const clock = new FakeClock();
    const input = new PassThrough();
    const { ctx, chunks } = context(clock);
    const multiline = { startPattern: '^\\d{4}', timeout: 1000, maxLines: 10, maxBytes: 4096 };
    const src = createStdinSource(config({ multiline }), ctx, asMessage, input);
    await src.start();
    input.write('2026 boom\n  at x\n');
    await waitFor(() => ctx.stats.bytes.value > 0, { what: 'bytes read' });
    await clock.advance(999);
    assert.equal(chunks.length, 0);
    await clock.advance(1);
    assert.deepEqual(messages(chunks), ['2026 boom\n  at x']);
    await src.stop();
  });

  test('cri format from a pipe', async () => {
    const input = new PassThrough();
    const { ctx, chunks } = context();
    const src = createStdinSource(config({ format: 'cri' }), ctx, asMessage, input);
    await src.start();
    input.end('2026-11-21T07:35:46.000000000Z stderr P par\n2026-11-21T07:35:46.000000000Z stderr F t\n');
    await waitFor(() => chunks.length === 1, { what: 'one chunk' });
    assert.deepEqual(chunks[0]!.events, [
      { message: 'part', time: '2026-11-21T07:35:46.000000000Z', stream: 'stderr' },
    ]);
  });
});
