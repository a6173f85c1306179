// Memory given back after a burst: one full collection once the process has been idle for two
// looks with a heap grown by 16 MB or more since the last; never under load, never for a heap
// that did not grow, once per burst. On fake time with readings the test sets; and once for real,
// with V8's own collection.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FakeClock } from '../lib/clock.js';
import { MEMORY_RETURN, MemoryReturn, v8Collect } from './memory-return.js';

const MB = 1024 * 1024;
const STEP = MEMORY_RETURN.intervalMs;

/** A process whose heap size and CPU time the test sets; collect() drops the heap to `floor`. */
function setup(heapMb: number) {
  const clock = new FakeClock();
  const s = { heap: heapMb * MB, cpu: 0, floor: heapMb * MB, collections: 0, returned: [] as number[] };
  const m = new MemoryReturn({
    clock,
    heapBytes: () => s.heap,
    cpuMicros: () => s.cpu,
    collect: () => {
      s.collections++;
      s.heap = s.floor;
    },
    onReturn: (before, after) => s.returned.push((before - after) / MB),
  });
  m.start();
  /** One interval with this share of a core busy. */
  const step = async (busyShare: number) => {
    s.cpu += busyShare * STEP * 1000;
    await clock.advance(STEP);
  };
  return { s, m, clock, step };
}

test('a burst that grew the heap, then two idle looks: one collection, counted with what it gave back', async () => {
  const { s, m, step } = setup(20);
  // The burst: busy, the heap grows.
  s.heap = 90 * MB;
  await step(0.9);
  await step(0.5);
  assert.equal(s.collections, 0, 'collected under load');
  await step(0.001); // one idle look is not yet enough
  assert.equal(s.collections, 0);
  await step(0.001);
  assert.equal(s.collections, 1);
  assert.deepEqual(s.returned, [70]);
  // Still idle, the heap as small as after the collection: nothing more.
  for (let i = 0; i < 10; i++) await step(0.001);
  assert.equal(s.collections, 1);
  m.stop();
});

test('idle with a heap that did not grow by 16 MB: no collection', async () => {
  const { s, m, step } = setup(20);
  s.heap = 20 * MB + MEMORY_RETURN.growthBytes - 1;
  for (let i = 0; i < 10; i++) await step(0);
  assert.equal(s.collections, 0);
  m.stop();
});

test('steady load, however large the heap: no collection; the first idle looks after it: one', async () => {
  const { s, m, step } = setup(20);
  s.heap = 120 * MB;
  for (let i = 0; i < 20; i++) await step(i % 2 === 0 ? 0.05 : 0.03); // light but steady: over 2 %
  assert.equal(s.collections, 0);
  s.floor = 30 * MB;
  await step(0.01);
  await step(0.01);
  assert.equal(s.collections, 1);
  assert.deepEqual(s.returned, [90]);
  m.stop();
});

test('growth counts from the smallest heap seen: a heap V8 shrank itself and that grows again by 16 MB is collected', async () => {
  const { s, m, step } = setup(60);
  s.heap = 30 * MB; // V8's own reducer gave memory back
  await step(0);
  s.heap = 50 * MB; // another burst, smaller than the start's heap but 20 MB over the last size
  await step(0.8);
  await step(0);
  await step(0);
  assert.equal(s.collections, 1);
  m.stop();
});

test('stop() ends the looks', async () => {
  const { s, m, step, clock } = setup(20);
  m.stop();
  s.heap = 200 * MB;
  for (let i = 0; i < 5; i++) await step(0);
  assert.equal(s.collections, 0);
  assert.equal(clock.pending, 0);
});

test("V8's collection, taken the way the runtime takes it, collects what nothing holds", async () => {
  const collect = v8Collect();
  let finalized = false;
  const registry = new FinalizationRegistry(() => {
    finalized = true;
  });
  ((): void => registry.register({ payload: Array.from({ length: 1000 }, (_, i) => i) }, 'x'))();
  await new Promise((resolve) => setImmediate(resolve));
  collect();
  collect(); // the flag is set once; later calls reuse the function
  // The registry's callback runs in a later task.
  await new Promise((resolve) => setImmediate(resolve));
  assert.ok(finalized, 'the collection left an object nothing holds');
  assert.equal((globalThis as { gc?: unknown }).gc, undefined, 'gc was put in the global scope');
});
