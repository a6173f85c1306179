import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, test } from 'node:test';
import type { LogEvent } from '../types.js';
import fc from 'fast-check';
import { leanEvent, setRaw } from '../types.js';
import { encodeEvent, encodeEventStrict, encodeLines } from './encode.js';
import { createStdoutDriver } from './stdout.js';

describe('encodeEvent', () => {
  test('an ordinary event is exactly what JSON.stringify writes', () => {
    const ev: LogEvent = {
      message: 'héllo "x"\n',
      level: 'info',
      n: 1.5,
      ok: true,
      tags: ['a', null],
      nested: { k: 'v' },
    };
    assert.equal(encodeEvent(ev), JSON.stringify(ev));
    assert.equal(encodeEventStrict(ev), JSON.stringify(ev));
  });

  test('a BigInt is written as its decimal string instead of throwing', () => {
    const ev: LogEvent = { message: 'm', id: 12345678901234567890n };
    assert.equal(encodeEvent(ev), '{"message":"m","id":"12345678901234567890"}');
    assert.equal(encodeEventStrict(ev), undefined);
  });

  test('a cycle is written as "[Circular]" instead of throwing', () => {
    const inner: Record<string, unknown> = { a: 1 };
    inner.self = inner;
    const ev: LogEvent = { message: 'm', inner };
    assert.equal(encodeEvent(ev), '{"message":"m","inner":{"a":1,"self":"[Circular]"}}');
    assert.equal(encodeEventStrict(ev), undefined);
  });

  test('what even the lenient pass cannot encode becomes a message with a parse_error', () => {
    const ev = Object.create(null) as LogEvent;
    Object.defineProperty(ev, 'bad', {
      enumerable: true,
      get() {
        throw new Error('boom');
      },
    });
    const out = JSON.parse(encodeEvent(ev)) as LogEvent;
    assert.equal(typeof out.message, 'string');
    assert.match(String(out.parse_error), /not serializable: Error: boom/);
  });

  test('a value JSON writes nothing for is "null" (strict: undefined)', () => {
    assert.equal(encodeEvent(undefined), 'null');
    assert.equal(encodeEventStrict(undefined), undefined);
  });
});

// Regression: the file, stdout and syslog sinks called bare JSON.stringify, so one BigInt event
// threw on every retry of its batch and wedged the sink.
test('a sink writing a BigInt event delivers the batch', async () => {
  const out = new PassThrough();
  let text = '';
  out.on('data', (d: Buffer) => (text += d.toString()));
  const d = createStdoutDriver(out);
  assert.deepEqual(await d.send([{ n: 1n }, { a: 1 }], AbortSignal.timeout(5000)), { kind: 'ok' });
  await d.close();
  assert.equal(text, '{"n":"1"}\n{"a":1}\n');
});

describe('encodeLines', () => {
  test('each event as encodeEvent writes it, one a line, raw and lean texts as they were', () => {
    const parsed: LogEvent = { a: 1, s: 'é😀' };
    const raw: LogEvent = { b: 2 };
    setRaw(raw, '{"b": 2.0');
    const lean = leanEvent('{"c":"ü"');
    const out = encodeLines([parsed, raw, lean, { n: 10n } as unknown as LogEvent]);
    assert.equal(out.toString('utf8'), '{"a":1,"s":"é😀"}\n{"b": 2.0}\n{"c":"ü"}\n{"n":"10"}\n');
    assert.equal(encodeLines([]).length, 0);
  });

  test('matches joining encodeEvent texts for any mix of widths, growing its buffer as needed (property)', () => {
    const text = fc.string({ unit: fc.constantFrom('a', 'é', '€', '😀', '"', '\\', '\n') });
    fc.assert(
      fc.property(
        fc.array(fc.tuple(text, fc.constantFrom('parsed', 'raw', 'lean')), { maxLength: 40 }),
        (specs) => {
          const events = specs.map(([t, kind]) => {
            if (kind === 'parsed') return { t } as LogEvent;
            const open = `{"t":${JSON.stringify(t)}`;
            if (kind === 'lean') return leanEvent(open);
            const e: LogEvent = { t };
            setRaw(e, open);
            return e;
          });
          const expected = events.map((e) => encodeEvent(e) + '\n').join('');
          assert.equal(encodeLines(events).toString('utf8'), expected);
        },
      ),
    );
  });
});
