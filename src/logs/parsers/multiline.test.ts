import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FakeClock } from '../../lib/clock.js';
import { RECORD_FLAG } from './cri.js';
import { MultilineJoiner } from './multiline.js';

const JAVA = `2026-11-21 07:35:46.123 ERROR [http-nio-8080-exec-3] o.a.c.c.C.[.[.[/].[dispatcherServlet] : Servlet.service() threw exception
java.lang.IllegalStateException: Failed to process order 42
	at com.example.orders.OrderService.process(OrderService.java:88)
	at com.example.orders.OrderController.create(OrderController.java:41)
	at java.base/jdk.internal.reflect.NativeMethodAccessorImpl.invoke0(Native Method)
	at org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:883)
Caused by: java.sql.SQLTransientConnectionException: HikariPool-1 - Connection is not available, request timed out after 30000ms.
	at com.zaxxer.hikari.pool.HikariPool.createTimeoutException(HikariPool.java:696)
	at com.zaxxer.hikari.pool.HikariPool.getConnection(HikariPool.java:197)
	at com.example.orders.OrderRepository.save(OrderRepository.java:27)
	... 5 more`;

const PYTHON = `2026-11-21 07:35:47,001 ERROR app: unhandled error in /orders
Traceback (most recent call last):
  File "/app/orders/views.py", line 52, in create
    order = parse_order(request.json)
  File "/app/orders/parse.py", line 17, in parse_order
    quantity = int(body["quantity"])
ValueError: invalid literal for int() with base 10: 'three'`;

interface Ev {
  text: string;
  flags: number;
  start: number;
  end: number;
}

function joiner(
  clock: FakeClock,
  opts: Partial<{ timeout: number; maxLines: number; maxBytes: number }> = {},
): { j: MultilineJoiner; out: Ev[]; timeouts: number[]; feed: (text: string) => void } {
  const out: Ev[] = [];
  const timeouts: number[] = [];
  const j = new MultilineJoiner(
    {
      startPattern: String.raw`^\d{4}-\d{2}-\d{2}`,
      timeout: opts.timeout ?? 1000,
      maxLines: opts.maxLines ?? 500,
      maxBytes: opts.maxBytes ?? 1024 * 1024,
    },
    clock,
    (text, _bytes, flags, start, end) => out.push({ text, flags, start, end }),
    () => timeouts.push(out.length),
  );
  let offset = 0;
  const feed = (text: string): void => {
    j.touch(clock.now());
    for (const line of text.split('\n')) {
      const b = Buffer.byteLength(line);
      j.push(line, b, 0, offset, offset + b + 1, undefined, undefined);
      offset += b + 1;
    }
  };
  return { j, out, timeouts, feed };
}

describe('MultilineJoiner', () => {
  test('a Java stack trace with "Caused by:" and "... 5 more" is one event', () => {
    const clock = new FakeClock();
    const { j, out, feed } = joiner(clock);
    feed(`2026-11-21 07:35:45.000 INFO starting\n${JAVA}\n2026-11-21 07:35:48.000 INFO next`);
    assert.equal(out.length, 2);
    assert.equal(out[0]!.text, '2026-11-21 07:35:45.000 INFO starting');
    assert.equal(out[1]!.text, JAVA);
    assert.equal(out[1]!.start, out[0]!.end);
    assert.equal(out[1]!.end, out[1]!.start + Buffer.byteLength(JAVA) + 1);
    j.flush();
    assert.equal(out[2]!.text, '2026-11-21 07:35:48.000 INFO next');
    j.close();
  });

  test('a Python traceback ending in an unindented "ValueError:" line is one event', () => {
    const clock = new FakeClock();
    const { j, out, feed } = joiner(clock);
    feed(`${PYTHON}\n2026-11-21 07:35:48,000 INFO ok`);
    assert.deepEqual(
      out.map((e) => e.text),
      [PYTHON],
    );
    assert.equal(j.heldStart(), Buffer.byteLength(PYTHON) + 1);
    j.close();
  });

  test('a group is sent after `timeout` without a new line, and not before', async () => {
    const clock = new FakeClock();
    const { j, out, timeouts, feed } = joiner(clock, { timeout: 500 });
    feed(PYTHON.split('\n').slice(0, 3).join('\n'));
    await clock.advance(400);
    feed(PYTHON.split('\n').slice(3).join('\n'));
    await clock.advance(499);
    assert.equal(out.length, 0, 'the last line came 499 ms ago');
    await clock.advance(1);
    assert.deepEqual(
      out.map((e) => e.text),
      [PYTHON],
    );
    assert.deepEqual(timeouts, [1]);
    assert.equal(clock.pending, 0, 'no timer left once nothing is held');
    j.close();
  });

  test('a group is cut at maxLines and flagged; the rest starts the next event', () => {
    const clock = new FakeClock();
    const { j, out, feed } = joiner(clock, { maxLines: 4 });
    feed(JAVA);
    j.flush();
    const lines = JAVA.split('\n');
    assert.equal(out[0]!.text, lines.slice(0, 4).join('\n'));
    assert.equal(out[0]!.flags & RECORD_FLAG.truncated, RECORD_FLAG.truncated);
    assert.equal(out[1]!.text, lines.slice(4, 8).join('\n'));
    assert.equal(out.map((e) => e.text).join('\n'), JAVA, 'nothing lost');
    assert.equal(out[1]!.start, out[0]!.end);
    j.close();
  });

  test('a group is cut at maxBytes and flagged; a single line longer than maxBytes is cut', () => {
    const clock = new FakeClock();
    const { j, out, feed } = joiner(clock, { maxBytes: 1024 });
    feed(`2026-11-21 start\n${'a'.repeat(600)}\n${'b'.repeat(600)}\n2026-11-21 ${'c'.repeat(2000)}`);
    j.flush();
    assert.equal(out.length, 3);
    assert.equal(out[0]!.text, `2026-11-21 start\n${'a'.repeat(600)}`);
    assert.ok(out[0]!.flags & RECORD_FLAG.truncated);
    assert.equal(out[1]!.text, 'b'.repeat(600));
    assert.equal(out[2]!.text.length, 1024);
    assert.ok(out[2]!.flags & RECORD_FLAG.truncated);
    j.close();
  });

  test('close cancels the timer', async () => {
    const clock = new FakeClock();
    const { j, out, feed } = joiner(clock);
    feed('2026-11-21 a');
    j.close();
    await clock.advance(5000);
    assert.equal(out.length, 0);
  });
});
