import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import pino from 'pino';
import { FakeClock } from '../../lib/clock.js';
import type { BatchConfig, BufferConfig, RetryConfig } from '../config.js';
import type { LogEvent, SendOutcome, SinkDriver } from '../types.js';
import { retryDelay, type SinkItem, SinkRunner, type SinkStats } from './runner.js';

interface LogLine {
  level: number;
  code?: string;
  msg: string;
  suppressed?: number;
}

type Script = (events: LogEvent[], signal: AbortSignal) => SendOutcome | Promise<SendOutcome>;

const ok: Script = () => ({ kind: 'ok' });
const down: Script = () => ({ kind: 'failed', retry: true, reason: 'connection refused' });

/** A driver that answers from a script (one entry per call, then `fallback`) and records each call. */
class FakeDriver implements SinkDriver {
  readonly calls: { events: LogEvent[]; at: number; signal: AbortSignal }[] = [];
  script: Script[] = [];
  fallback: Script = ok;
  closed = false;
  readonly #clock: FakeClock;

  constructor(clock: FakeClock) {
    this.#clock = clock;
  }

  async send(events: LogEvent[], signal: AbortSignal): Promise<SendOutcome> {
    this.calls.push({ events: [...events], at: this.#clock.now(), signal });
    return (this.script.shift() ?? this.fallback)(events, signal);
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /** The `i` of every event of every call, in order. */
  get sent(): number[] {
    return this.calls.flatMap((c) => c.events.map((e) => e.i as number));
  }
}

let root: string;
let dirs = 0;
before(() => {
  root = mkdtempSync(join(tmpdir(), 'pillion-sink-runner-'));
});
after(() => rmSync(root, { recursive: true, force: true }));

interface Options {
  batch?: Partial<BatchConfig>;
  retry?: Partial<RetryConfig>;
  buffer?: Partial<BufferConfig>;
  random?: () => number;
  dataDir?: string;
  clock?: FakeClock;
}

function harness(o: Options = {}) {
  const clock = o.clock ?? new FakeClock();
  const driver = new FakeDriver(clock);
  const lines: LogLine[] = [];
  const logger = pino(
    { level: 'debug' },
    { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) },
  );
  const series = () => ({ labels: {}, value: 0 });
  const stats: SinkStats = {
    events: series(),
    bytes: series(),
    retries: series(),
    deadLettered: series(),
    failures: series(),
    bufferBytes: series(),
  };
  const acked: SinkItem[] = [];
  const dataDir = o.dataDir ?? join(root, `d${dirs++}`);
  const runner = new SinkRunner({
    name: 'out',
    driver,
    batch: { maxEvents: 100, maxBytes: 1_000_000, maxAge: 1000, ...o.batch },
    retry: { initialBackoff: 100, maxBackoff: 1000, timeout: 5000, ...o.retry },
    buffer: { type: 'memory', maxBytes: 1_000_000, ...o.buffer },
    dataDir,
    timing: { clock, random: o.random ?? (() => 0.5) },
    logger,
    stats,
    onAck: (item) => acked.push(item),
  });
  return { clock, driver, lines, stats, acked, runner, dataDir };
}

let next = 0;
/** An item of count events numbered from `from` (or on from a counter), bytes defaulting to 10 per event. */
function item(count: number, bytes = count * 10, from = next): SinkItem {
  next = from + count;
  const events: LogEvent[] = [];
  for (let k = 0; k < count; k++) events.push({ i: from + k });
  return { chunk: { source: 'src', events, bytes }, events, bytes };
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, k) => from + k);
}

describe('SinkRunner batching', () => {
  test('sends a batch when it holds maxEvents, ending it at an item boundary after the first item', async () => {
    const h = harness({ batch: { maxEvents: 5 } });
    await h.runner.start();
    const items = [item(2, 20, 0), item(2), item(2), item(2), item(2)];
    for (const it of items) h.runner.push(it);
    await h.clock.advance(0);
    // A third item of 2 does not fit in a batch of 5 after 4: it starts the next batch, so a
    // batch never ends inside an item it did not start with.
    assert.deepEqual(
      h.driver.calls.map((c) => c.events.length),
      [4, 4],
    );
    await h.clock.advance(1000);
    assert.deepEqual(
      h.driver.calls.map((c) => c.events.length),
      [4, 4, 2],
    );
    assert.deepEqual(h.driver.sent, range(0, 10));
    assert.deepEqual(h.acked, items);
    assert.equal(h.stats.events.value, 10);
    assert.equal(h.stats.bytes.value, 100);
    await h.runner.stop();
  });

  test('an item larger than a batch is split, as the first item of each batch', async () => {
    const h = harness({ batch: { maxEvents: 3 } });
    await h.runner.start();
    const items = [item(7, 70, 0)];
    h.runner.push(items[0]!);
    await h.clock.advance(1000);
    assert.deepEqual(
      h.driver.calls.map((c) => c.events.length),
      [3, 3, 1],
    );
    assert.deepEqual(h.acked, items);
    await h.runner.stop();
  });

  test('sends a batch when it reaches maxBytes, without going over', async () => {
    const h = harness({ batch: { maxBytes: 1000 } });
    await h.runner.start();
    for (let k = 0; k < 3; k++) h.runner.push(item(1, 300, k));
    await h.clock.advance(10);
    assert.equal(h.driver.calls.length, 0);
    h.runner.push(item(1, 300, 3));
    await h.clock.advance(0);
    assert.deepEqual(h.driver.sent, [0, 1, 2]);
    // The fourth waits for its age, counted from its own push.
    await h.clock.advance(999);
    assert.equal(h.driver.calls.length, 1);
    await h.clock.advance(1);
    assert.deepEqual(h.driver.sent, [0, 1, 2, 3]);
    await h.runner.stop();
  });

  test('splits an item by bytes in proportion to its events', async () => {
    const h = harness({ batch: { maxBytes: 1000 } });
    await h.runner.start();
    h.runner.push(item(10, 2500, 0));
    await h.clock.advance(0);
    assert.deepEqual(
      h.driver.calls.map((c) => c.events.length),
      [4, 4],
    );
    assert.equal(h.acked.length, 0, 'acknowledged only when all of its events are done');
    await h.clock.advance(1000);
    assert.deepEqual(h.driver.sent, range(0, 10));
    assert.equal(h.acked.length, 1);
    assert.equal(h.stats.bytes.value, 2500);
    await h.runner.stop();
  });

  test('sends a partial batch once its oldest event has waited maxAge', async () => {
    const h = harness({ batch: { maxAge: 1000 } });
    await h.runner.start();
    h.runner.push(item(1, 10, 0));
    await h.clock.advance(600);
    h.runner.push(item(1, 10, 1));
    await h.clock.advance(399);
    assert.equal(h.driver.calls.length, 0);
    await h.clock.advance(1);
    assert.deepEqual(h.driver.sent, [0, 1]);
    assert.equal(h.driver.calls[0]!.at - h.clock.now(), 0);
    await h.runner.stop();
  });

  test('sends a whole item as its own array, without copying', async () => {
    const h = harness({ batch: { maxEvents: 3 } });
    const seen: LogEvent[][] = [];
    h.driver.fallback = (events) => {
      seen.push(events);
      return { kind: 'ok' };
    };
    await h.runner.start();
    const it = item(3, 30, 0);
    h.runner.push(it);
    await h.clock.advance(0);
    assert.equal(seen[0], it.events);
    await h.runner.stop();
  });
});

describe('SinkRunner retries', () => {
  test('backs off with full jitter: random × min(maxBackoff, initialBackoff × 2^attempt)', async () => {
    const h = harness({ retry: { initialBackoff: 100, maxBackoff: 1000 }, random: () => 0.5 });
    h.driver.script = [down, down, down, down, down, down];
    await h.runner.start();
    h.runner.push(item(1, 10, 0));
    await h.clock.advance(1000); // the batch's age
    const start = h.driver.calls[0]!.at;
    assert.equal(h.runner.failingSince, start);
    await h.clock.advance(5000);
    const gaps = h.driver.calls.slice(1).map((c, k) => c.at - h.driver.calls[k]!.at);
    assert.deepEqual(gaps, [50, 100, 200, 400, 500, 500]);
    assert.equal(h.runner.failingSince, undefined);
    assert.equal(h.stats.retries.value, 6);
    assert.equal(h.stats.failures.value, 6);
    assert.equal(h.acked.length, 1);
    const warns = h.lines.filter((l) => l.code === 'PILLION_ERR_LOGS_DELIVERY');
    assert.equal(warns.length, 1, 'one line for a minute of failures');
    assert.equal(warns[0]!.level, 40);
    assert.ok(h.lines.some((l) => /delivering again/.test(l.msg) && l.suppressed === 5));
    await h.runner.stop();
  });

  test('logs a failing sink once a minute, then once when it recovers', async () => {
    const h = harness({ retry: { initialBackoff: 100, maxBackoff: 1000 } });
    h.driver.fallback = down;
    await h.runner.start();
    h.runner.push(item(1, 10, 0));
    await h.clock.advance(1000 + 130_000);
    const warns = h.lines.filter((l) => l.code === 'PILLION_ERR_LOGS_DELIVERY');
    assert.equal(warns.length, 3, 'at 0 s, 60 s and 120 s');
    assert.ok(warns[1]!.suppressed! > 50);
    h.driver.fallback = ok;
    await h.clock.advance(1000);
    assert.equal(h.lines.filter((l) => /delivering again/.test(l.msg)).length, 1);
    assert.equal(h.lines.length, 4);
    await h.runner.stop();
  });

  test('jitter stays within [0, min(maxBackoff, initialBackoff × 2^attempt))', () => {
    fc.assert(
      fc.property(
        fc.nat(80),
        fc.integer({ min: 1, max: 10_000 }),
        fc.integer({ min: 1, max: 600_000 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (attempt, initialBackoff, maxBackoff, r) => {
          const retry = { initialBackoff, maxBackoff, timeout: 1 };
          const d = retryDelay(attempt, retry, () => r);
          const ceiling = Math.min(maxBackoff, initialBackoff * 2 ** attempt);
          assert.ok(d >= 0 && d < ceiling + 1e-9);
          assert.equal(d, r * ceiling);
        },
      ),
      { numRuns: 300 },
    );
  });

  test('retries forever while events keep coming, then delivers all of them in order', async () => {
    let seed = 1;
    const random = () => ((seed = (seed * 48271) % 2147483647) / 2147483647) * 0.999;
    const h = harness({
      batch: { maxEvents: 7, maxAge: 50 },
      retry: { initialBackoff: 10, maxBackoff: 200 },
      random,
    });
    h.driver.fallback = down;
    await h.runner.start();
    const items: SinkItem[] = [];
    next = 0;
    for (let k = 0; k < 60; k++) {
      const it = item(1 + (k % 4));
      items.push(it);
      h.runner.push(it);
      await h.clock.advance(97);
    }
    assert.ok(h.driver.calls.length > 25, `${h.driver.calls.length} attempts`);
    assert.equal(h.acked.length, 0, 'nothing is acknowledged while the sink is down');
    assert.ok(h.runner.failingSince !== undefined);
    const firstOk = h.driver.calls.length;
    h.driver.fallback = ok;
    await h.clock.advance(2000);
    assert.deepEqual(h.acked, items);
    // The failing batch is retried as it was, then the rest follow: each event once, in order.
    const delivered = h.driver.calls.slice(firstOk).flatMap((c) => c.events.map((e) => e.i as number));
    assert.deepEqual(delivered, range(0, next));
    assert.equal(h.stats.events.value, next);
    assert.equal(h.runner.bufferedBytes, 0);
    assert.equal(h.runner.failingSince, undefined);
    await h.runner.stop();
  });

  test('dead-letters a batch the destination refuses for good, then goes on', async () => {
    const h = harness({ batch: { maxEvents: 2 } });
    h.driver.script = [() => ({ kind: 'failed', retry: false, reason: 'HTTP 400: bad field', status: 400 })];
    await h.runner.start();
    h.runner.push(item(2, 20, 0));
    h.runner.push(item(2, 20, 2));
    await h.clock.advance(0);
    assert.equal(h.driver.calls.length, 2, 'no retry of a refused batch');
    assert.equal(h.acked.length, 2, 'a dead-lettered item is acknowledged');
    assert.equal(h.stats.deadLettered.value, 2);
    assert.equal(h.stats.events.value, 2);
    assert.equal(h.stats.failures.value, 1);
    assert.equal(h.runner.failingSince, undefined);
    const file = join(h.dataDir, 'dead-letter', 'out.ndjson');
    const lines = readFileSync(file, 'utf8')
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(lines, [
      {
        sink: 'out',
        reason: 'HTTP 400: bad field',
        time: new Date(h.clock.now()).toISOString(),
        event: { i: 0 },
      },
      {
        sink: 'out',
        reason: 'HTTP 400: bad field',
        time: new Date(h.clock.now()).toISOString(),
        event: { i: 1 },
      },
    ]);
    assert.ok(h.lines.some((l) => l.code === 'PILLION_ERR_LOGS_DELIVERY'));
    await h.runner.stop();
  });

  test('partial (Elasticsearch-style): dead-letters the rejects, retries only the rest, then acknowledges', async () => {
    const h = harness({ batch: { maxEvents: 5 } });
    h.driver.script = [
      (events) => ({
        kind: 'partial',
        retry: [events[1]!, events[3]!],
        reject: [{ event: events[2]!, reason: 'mapper_parsing_exception' }],
      }),
      (events) => ({ kind: 'partial', retry: [events[1]!], reject: [] }),
    ];
    await h.runner.start();
    const it = item(5, 50, 0);
    h.runner.push(it);
    await h.clock.advance(0);
    assert.equal(h.driver.calls.length, 1);
    assert.equal(h.acked.length, 0);
    await h.clock.advance(50); // 0.5 × 100
    assert.deepEqual(
      h.driver.calls[1]!.events.map((e) => e.i),
      [1, 3],
    );
    await h.clock.advance(100); // 0.5 × 200
    assert.deepEqual(
      h.driver.calls[2]!.events.map((e) => e.i),
      [3],
    );
    assert.deepEqual(h.acked, [it]);
    assert.equal(h.stats.events.value, 4);
    assert.equal(h.stats.deadLettered.value, 1);
    assert.equal(h.stats.retries.value, 2);
    assert.equal(h.stats.bytes.value, 40);
    const dl = JSON.parse(readFileSync(join(h.dataDir, 'dead-letter', 'out.ndjson'), 'utf8')) as {
      reason: string;
      event: LogEvent;
    };
    assert.deepEqual([dl.reason, dl.event], ['mapper_parsing_exception', { i: 2 }]);
    await h.runner.stop();
  });

  test('an attempt that outlives retry.timeout is aborted and retried', async () => {
    const h = harness({ retry: { timeout: 3000 } });
    h.driver.script = [() => new Promise<SendOutcome>(() => {})];
    await h.runner.start();
    h.runner.push(item(1, 10, 0));
    await h.clock.advance(1000);
    assert.equal(h.driver.calls.length, 1);
    await h.clock.advance(2999);
    assert.equal(h.driver.calls[0]!.signal.aborted, false);
    await h.clock.advance(1);
    assert.equal(h.driver.calls[0]!.signal.aborted, true);
    assert.equal(h.stats.failures.value, 1);
    await h.clock.advance(50);
    assert.equal(h.driver.calls.length, 2);
    assert.equal(h.acked.length, 1);
    await h.runner.stop();
  });

  test('a driver that throws counts as a retry-able failure', async () => {
    const h = harness();
    h.driver.script = [
      () => {
        throw new Error('boom');
      },
    ];
    await h.runner.start();
    h.runner.push(item(1, 10, 0));
    await h.clock.advance(1100);
    assert.equal(h.driver.calls.length, 2);
    assert.equal(h.acked.length, 1);
    await h.runner.stop();
  });
});

describe('SinkRunner acknowledgements and buffers', () => {
  test('acknowledges in push order, split items when all their events are done', async () => {
    const h = harness({ batch: { maxEvents: 3 } });
    const answers: ((o: SendOutcome) => void)[] = [];
    h.driver.fallback = () => new Promise<SendOutcome>((r) => answers.push(r));
    await h.runner.start();
    const items = [item(2, 20, 0), item(5), item(0), item(1), item(4)];
    for (const it of items) h.runner.push(it);
    await h.clock.advance(0);
    assert.equal(answers.length, 1, 'one batch in flight at a time');
    answers.shift()!({ kind: 'ok' }); // events 0,1 (the next item does not fit after them)
    await h.clock.advance(0);
    assert.deepEqual(h.acked, [items[0]]);
    answers.shift()!({ kind: 'ok' }); // 2,3,4: the first item of its batch may be split
    await h.clock.advance(0);
    assert.deepEqual(h.acked, [items[0]], 'the split item still has events to go');
    answers.shift()!({ kind: 'ok' }); // 5,6 | (empty) | 7
    await h.clock.advance(0);
    assert.deepEqual(h.acked, items.slice(0, 4), 'an empty item follows the one before it');
    answers.shift()!({ kind: 'ok' }); // 8,9,10
    await h.clock.advance(1000);
    answers.shift()!({ kind: 'ok' }); // 11, sent at maxAge
    await h.clock.advance(0);
    assert.deepEqual(h.acked, items);
    assert.deepEqual(h.driver.sent, range(0, 12));
    await h.runner.stop();
  });

  test('an empty item alone is acknowledged, but never from inside push()', async () => {
    const h = harness();
    await h.runner.start();
    const it = item(0, 0, 0);
    h.runner.push(it);
    assert.equal(h.acked.length, 0);
    await Promise.resolve();
    assert.deepEqual(h.acked, [it]);
    await h.runner.stop();
  });

  test('memory bound: with the sink down, a pausing source never buffers more than maxBytes + one item', async () => {
    const h = harness({ buffer: { maxBytes: 1000 }, batch: { maxEvents: 4, maxAge: 10 } });
    h.driver.fallback = down;
    await h.runner.start();
    let maxSeen = 0;
    let pushed = 0;
    const source = (async () => {
      for (let k = 0; k < 40; k++) {
        h.runner.push(item(2, 150));
        pushed++;
        maxSeen = Math.max(maxSeen, h.runner.bufferedBytes, h.stats.bufferBytes.value);
        if (h.runner.full) await h.runner.whenNotFull();
      }
    })();
    await h.clock.advance(5000);
    assert.ok(h.runner.full);
    assert.ok(pushed < 10, `the source paused after ${pushed} items`);
    assert.ok(maxSeen <= 1000 + 150, `buffered ${maxSeen}`);
    h.driver.fallback = ok;
    for (let k = 0; k < 50 && pushed < 40; k++) await h.clock.advance(1000);
    await source;
    await h.clock.advance(1000);
    assert.equal(h.acked.length, 40);
    assert.ok(maxSeen <= 1150, `buffered ${maxSeen}`);
    assert.equal(h.runner.bufferedBytes, 0);
    assert.equal(h.stats.bufferBytes.value, 0);
    await h.runner.stop();
  });

  test('backlogged: two whole batches waiting behind the one in flight hold back a source that does not read ahead', async () => {
    const h = harness({ batch: { maxEvents: 4, maxAge: 1000 } });
    const releases: (() => void)[] = [];
    h.driver.fallback = () => new Promise((r) => releases.push(() => r({ kind: 'ok' })));
    await h.runner.start();
    h.runner.push(item(4));
    await h.clock.advance(0);
    assert.equal(h.driver.calls.length, 1, 'the first batch is in flight');
    h.runner.push(item(4));
    assert.equal(h.runner.backlogged, false, 'one batch waits');
    h.runner.push(item(3));
    assert.equal(h.runner.backlogged, false, 'one and three quarters wait');
    h.runner.push(item(1));
    assert.equal(h.runner.backlogged, true, 'two whole batches wait');
    assert.equal(h.runner.full, false);
    let lazy = false;
    let eager = false;
    void h.runner.whenNotFull({ readAhead: false }).then(() => (lazy = true));
    void h.runner.whenNotFull().then(() => (eager = true));
    await h.clock.advance(0);
    assert.equal(eager, true, 'a source that reads ahead only waits for a full buffer');
    assert.equal(lazy, false);
    releases.shift()!();
    await h.clock.advance(0);
    assert.equal(h.driver.calls.length, 2, 'a waiting batch went out');
    assert.equal(lazy, true, 'and the source may read again');

    // Failing or not, two batches waiting is backlogged; whether a source fills a failing sink's
    // buffer anyway (so its other sinks keep going) is the pipeline's choice, asked through a predicate.
    h.driver.fallback = down;
    releases.shift()!();
    h.runner.push(item(4));
    h.runner.push(item(4));
    await h.clock.advance(0);
    assert.ok(h.runner.failingSince !== undefined);
    assert.equal(h.runner.backlogged, true);
    let asked = false;
    let fillAnyway = false;
    void h.runner.whenNotFull(() => !fillAnyway && h.runner.backlogged).then(() => (asked = true));
    fillAnyway = true;
    h.runner.recheck();
    await h.clock.advance(0);
    assert.equal(asked, true, 'a waiter is asked again on recheck()');
    h.driver.fallback = ok;
    await h.clock.advance(5000);
    assert.equal(h.acked.length, 6);
    await h.runner.stop();
  });

  test('disk: items are acknowledged once written, and delivered after a restart', async () => {
    const dataDir = join(root, 'disk-restart');
    const a = harness({ buffer: { type: 'disk', maxBytes: 1_000_000 }, dataDir });
    a.driver.fallback = down;
    await a.runner.start();
    const items = [item(3, 30, 0), item(2), item(4)];
    for (const it of items) a.runner.push(it);
    assert.equal(a.acked.length, 0, 'not from inside push()');
    await a.clock.advance(0);
    assert.deepEqual(a.acked, items, 'acknowledged once on disk, with the sink down');
    assert.ok(a.runner.bufferedBytes > 0);
    assert.equal(a.stats.bufferBytes.value, a.runner.bufferedBytes);
    await a.clock.advance(3000);
    assert.ok(a.driver.calls.length > 1);
    await a.runner.stop();
    assert.ok(a.driver.closed);
    assert.ok(readdirSync(join(dataDir, 'buffers', 'out')).some((f) => f.endsWith('.seg')));

    const b = harness({ buffer: { type: 'disk', maxBytes: 1_000_000 }, dataDir, batch: { maxEvents: 4 } });
    await b.runner.start();
    await b.clock.advance(0);
    assert.deepEqual(b.driver.sent, range(0, 9), 'the backlog goes at once, in order');
    assert.deepEqual(
      b.driver.calls.map((c) => c.events.length),
      [4, 4, 1],
    );
    assert.equal(b.acked.length, 0, 'items from before the restart were acknowledged then');
    assert.equal(b.runner.bufferedBytes, 0);
    assert.equal(b.stats.bytes.value, 90);
    await b.runner.stop();

    const c = harness({ buffer: { type: 'disk', maxBytes: 1_000_000 }, dataDir });
    await c.runner.start();
    await c.clock.advance(5000);
    assert.equal(c.driver.calls.length, 0, 'nothing is delivered twice');
    await c.runner.stop();
  });

  test('disk: a full buffer keeps items in memory, reports full, and writes them when there is room', async () => {
    const h = harness({
      buffer: { type: 'disk', maxBytes: 64 * 1024 },
      batch: { maxEvents: 50, maxAge: 10 },
    });
    h.driver.fallback = down;
    await h.runner.start();
    const pad = 'p'.repeat(1000);
    const items: SinkItem[] = [];
    for (let k = 0; k < 80; k++) {
      const it = item(1, 1000);
      it.events[0]!.pad = pad;
      items.push(it);
      h.runner.push(it);
    }
    await h.clock.advance(0);
    assert.ok(h.runner.full);
    assert.ok(h.acked.length < 80 && h.acked.length > 40, `${h.acked.length} on disk`);
    assert.deepEqual(h.acked, items.slice(0, h.acked.length));
    let room = false;
    void h.runner.whenNotFull().then(() => (room = true));
    await h.clock.advance(100);
    assert.equal(room, false);
    h.driver.fallback = ok;
    await h.clock.advance(3000);
    assert.ok(room);
    assert.deepEqual(h.acked, items);
    assert.deepEqual(h.driver.sent.slice(-80), range(next - 80, next));
    await h.runner.stop();
  });

  test('drain sends the partial batch at once and returns when delivered', async () => {
    const h = harness({ batch: { maxAge: 60_000 } });
    await h.runner.start();
    h.runner.push(item(2, 20, 0));
    await h.clock.advance(0);
    assert.equal(h.driver.calls.length, 0);
    await h.runner.drain(h.clock.now() + 5000);
    assert.deepEqual(h.driver.sent, [0, 1]);
    assert.equal(h.acked.length, 1);
    await h.runner.stop();
  });

  test('drain returns once an empty item alone is acknowledged', async () => {
    const h = harness();
    await h.runner.start();
    h.runner.push(item(0, 0, 0));
    await h.runner.drain(h.clock.now() + 5000);
    assert.equal(h.acked.length, 1);
    await h.runner.stop();
  });

  test('drain with a disk buffer delivers what the disk holds', async () => {
    const h = harness({ buffer: { type: 'disk', maxBytes: 1_000_000 }, batch: { maxAge: 60_000 } });
    await h.runner.start();
    h.runner.push(item(3, 30, 0));
    h.runner.push(item(2));
    await h.clock.advance(0);
    assert.equal(h.driver.calls.length, 0);
    await h.runner.drain(h.clock.now() + 5000);
    assert.deepEqual(h.driver.sent, range(0, 5));
    assert.equal(h.runner.bufferedBytes, 0);
    await h.runner.stop();
  });

  test('drain gives up when the clock passes the deadline', async () => {
    const h = harness({ batch: { maxAge: 60_000 } });
    h.driver.fallback = down;
    await h.runner.start();
    h.runner.push(item(2, 20, 0));
    let drained = false;
    const p = h.runner.drain(h.clock.now() + 5000).then(() => (drained = true));
    await h.clock.advance(4999);
    assert.ok(h.driver.calls.length > 3, 'keeps retrying while draining');
    assert.equal(drained, false);
    await h.clock.advance(1);
    await p;
    assert.equal(h.acked.length, 0);
    await h.runner.stop();
  });

  test('stop aborts the send in flight and leaves its items unacknowledged', async () => {
    const h = harness();
    h.driver.fallback = () => new Promise<SendOutcome>(() => {});
    await h.runner.start();
    h.runner.push(item(1, 10, 0));
    await h.clock.advance(1000);
    const call = h.driver.calls[0]!;
    assert.equal(call.signal.aborted, false);
    await h.runner.stop();
    assert.equal(call.signal.aborted, true);
    assert.ok(h.driver.closed);
    assert.equal(h.acked.length, 0);
    assert.equal(h.driver.calls.length, 1);
  });
});
