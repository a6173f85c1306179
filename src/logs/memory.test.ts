// The memory buffer's bound counts what events hold in the heap (EVENT_COST in pipeline.ts). It is
// checked here against V8's own measure, so a change in what events keep cannot quietly make a
// 64 MiB buffer hold four times that again.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import v8 from 'node:v8';
import vm from 'node:vm';
import { systemClock } from '../lib/clock.js';
import { compileParser } from './parsers/index.js';
import { EVENT_COST } from './pipeline.js';
import { LineFramer } from './sources/line-framer.js';
import { compileTransforms } from './transforms/index.js';
import type { LogEvent } from './types.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const N = 50_000;

function input(): Buffer {
  let s = '';
  for (let i = 1; i <= N; i++)
    s += `{"time":"2026-12-05T10:00:${String(i % 60).padStart(2, '0')}.${String(i % 1000).padStart(3, '0')}Z","level":"info","msg":"GET /orders/${i % 1000} 200","user":"u${10_000 + (i % 90_000)}","latency_ms":${i % 50},"seq":${i}}\n`;
  return Buffer.from(s);
}

/** Heap bytes the events of `buf` hold once parsed (and enriched), after full collections. */
function measure(buf: Buffer, parse: (text: string) => LogEvent, enrich: boolean): number {
  const chain = enrich
    ? compileTransforms([{ type: 'enrich', fields: { env: 'prod' }, hostname: 'host' }], ['app'], {
        hostname: 'node-1',
        env: {},
        clock: systemClock,
        readFile: () => '',
      }).get('app')
    : undefined;
  gc();
  gc();
  const before = process.memoryUsage().heapUsed;
  const framer = new LineFramer({ format: 'lines', maxLineBytes: 1 << 20, parse, clock: systemClock });
  const held: LogEvent[][] = [];
  for (let at = 0; at < buf.length; at += 256 * 1024) {
    framer.push(buf.subarray(at, Math.min(buf.length, at + 256 * 1024)));
    const events = framer.take();
    held.push(chain ? chain(events) : events);
  }
  gc();
  gc();
  const used = process.memoryUsage().heapUsed - before;
  assert.equal(
    held.reduce((a, e) => a + e.length, 0),
    N,
  );
  return used;
}

test("regression: the memory buffer counts what events hold in the heap (within a third of V8's measure), not the bytes read", () => {
  const buf = input();
  const errors = { labels: {}, value: 0 };
  const cases = [
    {
      name: 'JSON lines that keep their text, enriched',
      cost: EVENT_COST.raw,
      parse: compileParser('json', errors, { keepRaw: true }),
      enrich: true,
    },
    {
      name: 'lean JSON lines (text only), enriched',
      cost: EVENT_COST.lean,
      parse: compileParser('json', errors, { keepRaw: true, lean: ['env', 'host'] }),
      enrich: true,
    },
    { name: 'JSON parsed', cost: EVENT_COST.parsed, parse: compileParser('json', errors), enrich: false },
    {
      name: 'lines kept as message',
      cost: EVENT_COST.parsed,
      parse: compileParser('none', errors),
      enrich: false,
    },
  ];
  for (const c of cases) {
    const heap = measure(buf, c.parse, c.enrich);
    const counted = buf.length * c.cost.perByte + N * c.cost.perEvent;
    const ratio = counted / heap;
    assert.ok(
      ratio > 0.67 && ratio < 1.5,
      `${c.name}: counted ${counted}, heap ${heap} (×${ratio.toFixed(2)})`,
    );
    // What the bound counted before: the bytes read, a fraction of the heap.
    assert.ok(buf.length < heap / 1.5, `${c.name}: bytes read ${buf.length}, heap ${heap}`);
  }
});
