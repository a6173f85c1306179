import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { FACILITY_NAMES, parseSyslog, SEVERITY_NAMES } from './syslog.js';

// 2024-03-15 12:00 local time: the year and zone an RFC 3164 stamp takes.
const NOW = new Date(2024, 2, 15, 12, 0, 0).getTime();

function localOffset(d: Date): string {
  const off = -d.getTimezoneOffset();
  if (off === 0) return 'Z';
  const a = Math.abs(off);
  return `${off < 0 ? '-' : '+'}${String(Math.floor(a / 60)).padStart(2, '0')}:${String(a % 60).padStart(2, '0')}`;
}

describe('RFC 5424', () => {
  test('the example of RFC 5424 section 6.5 with structured data and a BOM', () => {
    const msg =
      '<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 ' +
      '[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"] ' +
      '\uFEFFAn application event log entry...';
    assert.deepEqual(parseSyslog(msg, NOW), {
      facility: 'local4',
      severity: 'notice',
      timestamp: '2003-10-11T22:14:15.003Z',
      hostname: 'mymachine.example.com',
      appname: 'evntslog',
      msgid: 'ID47',
      structured_data: {
        'exampleSDID@32473': { iut: '3', eventSource: 'Application', eventID: '1011' },
        'examplePriority@32473': { class: 'high' },
      },
      message: 'An application event log entry...',
    });
  });

  test('NILVALUEs are left out; a message without MSG has an empty message', () => {
    assert.deepEqual(parseSyslog('<34>1 - - - - - -', NOW), {
      facility: 'auth',
      severity: 'crit',
      message: '',
    });
    assert.deepEqual(parseSyslog('<0>1 2024-01-01T00:00:00+02:00 h a 42 - - hi\n', NOW), {
      facility: 'kern',
      severity: 'emerg',
      timestamp: '2024-01-01T00:00:00+02:00',
      hostname: 'h',
      appname: 'a',
      procid: '42',
      message: 'hi',
    });
  });

  test('escapes in PARAM-VALUE: \\" \\\\ \\] are unescaped, other backslashes kept', () => {
    const ev = parseSyslog('<14>1 - - - - - [id@1 a="q\\"b\\\\s\\]e" b="c:\\dir" c=""] m', NOW);
    assert.deepEqual(ev.structured_data, { 'id@1': { a: 'q"b\\s]e', b: 'c:\\dir', c: '' } });
    assert.equal(ev.message, 'm');
  });

  test('a repeated PARAM-NAME keeps every value', () => {
    const ev = parseSyslog('<14>1 - - - - - [x a="1" a="2" a="3"]', NOW);
    assert.deepEqual(ev.structured_data, { x: { a: ['1', '2', '3'] } });
  });

  test('a message that claims 5424 and breaks it is kept raw with the reason', () => {
    const cases: [string, RegExp][] = [
      ['<14>1 yesterday host app - - - m', /TIMESTAMP "yesterday" is not RFC 3339/],
      ['<14>1 - host', /missing HOSTNAME/],
      ['<14>1 - - - - - [id a="x] m', /no closing quote/],
      ['<14>1 - - - - - [id a=x] m', /needs ="value"/],
      ['<14>1 - - - - - [a][a] m', /appears twice/],
      ['<14>1 - - - - - junk', /STRUCTURED-DATA/],
      ['<14>1 - - - - - [a]junk', /space after STRUCTURED-DATA/],
    ];
    for (const [text, reason] of cases) {
      const ev = parseSyslog(text, NOW);
      assert.equal(ev.message, text);
      assert.match(String(ev.parse_error), reason, text);
    }
  });

  test('a generated message round-trips its fields', () => {
    const printable = (max: number) =>
      fc
        .string({
          unit: fc.integer({ min: 33, max: 126 }).map((c) => String.fromCharCode(c)),
          maxLength: max,
        })
        .filter((v) => v.length > 0 && v !== '-');
    const sdName = fc
      .string({
        unit: fc
          .integer({ min: 33, max: 126 })
          .filter((c) => c !== 0x3d && c !== 0x5d && c !== 0x22)
          .map((c) => String.fromCharCode(c)),
        minLength: 1,
        maxLength: 32,
      })
      .filter((v) => v !== '-');
    const timestamp = fc
      .record({
        ms: fc.integer({ min: 0, max: 4_102_444_800_000 }),
        frac: fc.constantFrom('', '.1', '.123', '.123456'),
        off: fc.constantFrom('Z', '+02:00', '-05:30'),
      })
      .map(({ ms, frac, off }) => new Date(ms).toISOString().slice(0, 19) + frac + off);
    const sd = fc.uniqueArray(
      fc.record({
        id: sdName,
        params: fc.uniqueArray(fc.record({ name: sdName, value: fc.string({ unit: 'grapheme' }) }), {
          selector: (p) => p.name,
          maxLength: 4,
        }),
      }),
      { selector: (e) => e.id, maxLength: 3 },
    );
    const message = fc
      .string({ unit: 'grapheme' })
      .filter((m) => !/[\n\r\0]$/.test(m) && !m.startsWith('\uFEFF'));
    fc.assert(
      fc.property(
        fc.record({
          pri: fc.integer({ min: 0, max: 191 }),
          timestamp: fc.option(timestamp, { nil: undefined }),
          hostname: fc.option(printable(255), { nil: undefined }),
          appname: fc.option(printable(48), { nil: undefined }),
          procid: fc.option(printable(128), { nil: undefined }),
          msgid: fc.option(printable(32), { nil: undefined }),
          sd,
          message,
          bom: fc.boolean(),
        }),
        (g) => {
          const esc = (v: string) => v.replace(/["\\\]]/g, (c) => `\\${c}`);
          const sdText =
            g.sd.length === 0
              ? '-'
              : g.sd
                  .map((e) => `[${e.id}${e.params.map((p) => ` ${p.name}="${esc(p.value)}"`).join('')}]`)
                  .join('');
          const text =
            `<${g.pri}>1 ${g.timestamp ?? '-'} ${g.hostname ?? '-'} ${g.appname ?? '-'} ${g.procid ?? '-'} ` +
            `${g.msgid ?? '-'} ${sdText} ${g.bom ? '\uFEFF' : ''}${g.message}`;
          const expected: Record<string, unknown> = {
            facility: FACILITY_NAMES[g.pri >> 3],
            severity: SEVERITY_NAMES[g.pri & 7],
          };
          if (g.timestamp !== undefined) expected.timestamp = g.timestamp;
          if (g.hostname !== undefined) expected.hostname = g.hostname;
          if (g.appname !== undefined) expected.appname = g.appname;
          if (g.procid !== undefined) expected.procid = g.procid;
          if (g.msgid !== undefined) expected.msgid = g.msgid;
          if (g.sd.length > 0)
            expected.structured_data = Object.fromEntries(
              g.sd.map((e) => [e.id, Object.fromEntries(e.params.map((p) => [p.name, p.value]))]),
            );
          expected.message = g.message;
          assert.deepEqual(parseSyslog(text, NOW), expected);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('RFC 3164', () => {
  test('the classic form: host, TAG[pid], message; year and zone from now', () => {
    const ev = parseSyslog("<34>Oct 11 22:14:15 mymachine su[123]: 'su root' failed on /dev/pts/8", NOW);
    const at = new Date(2024, 9, 11, 22, 14, 15);
    // October is more than a month after March 2024, so it is last October.
    const last = new Date(2023, 9, 11, 22, 14, 15);
    assert.deepEqual(ev, {
      facility: 'auth',
      severity: 'crit',
      timestamp: `2023-10-11T22:14:15${localOffset(last)}`,
      hostname: 'mymachine',
      appname: 'su',
      procid: '123',
      message: "'su root' failed on /dev/pts/8",
    });
    assert.ok(at); // the same stamp read in October 2024 would be this year
    const inOct = parseSyslog('<34>Oct 11 22:14:15 mymachine su: x', new Date(2024, 9, 12).getTime());
    assert.equal(inOct.timestamp, `2024-10-11T22:14:15${localOffset(at)}`);
  });

  test('December read in January is last year; a padded day and a fraction are kept', () => {
    const jan = new Date(2025, 0, 1, 0, 5).getTime();
    const ev = parseSyslog('<13>Dec  1 23:59:59.250 host app: m', jan);
    assert.equal(ev.timestamp, `2024-12-01T23:59:59.250${localOffset(new Date(2024, 11, 1, 23, 59, 59))}`);
  });

  test('no host: the word after the stamp is the TAG', () => {
    assert.deepEqual(parseSyslog('<13>Mar  5 01:02:03 cron[77]: job done', NOW), {
      facility: 'user',
      severity: 'notice',
      timestamp: `2024-03-05T01:02:03${localOffset(new Date(2024, 2, 5, 1, 2, 3))}`,
      appname: 'cron',
      procid: '77',
      message: 'job done',
    });
  });

  test('no PRI: user.notice, as RFC 3164 section 4.3.3 has a relay assume', () => {
    const ev = parseSyslog('Mar 15 11:00:00 web1 nginx: GET /', NOW);
    assert.equal(ev.facility, 'user');
    assert.equal(ev.severity, 'notice');
    assert.equal(ev.hostname, 'web1');
    assert.equal(ev.appname, 'nginx');
    assert.equal(ev.message, 'GET /');
  });

  test('PRI and text only; an ISO stamp in place of the BSD one', () => {
    assert.deepEqual(parseSyslog('<11>something broke', NOW), {
      facility: 'user',
      severity: 'err',
      message: 'something broke',
    });
    assert.deepEqual(parseSyslog('<11>app: something broke', NOW), {
      facility: 'user',
      severity: 'err',
      appname: 'app',
      message: 'something broke',
    });
    const iso = parseSyslog('<30>2024-03-15T10:00:00.5+01:00 h d[1]: up', NOW);
    assert.equal(iso.timestamp, '2024-03-15T10:00:00.5+01:00');
    assert.equal(iso.hostname, 'h');
    assert.equal(iso.appname, 'd');
    assert.equal(iso.message, 'up');
  });
});

describe('garbage', () => {
  test('text that fits neither form is kept raw with parse_error', () => {
    for (const [text, reason] of [
      ['hello world', /no <PRI> and no timestamp/],
      ['<999>x', /above 191/],
      ['<ab>x', /bad PRI/],
      ['<13', /bad PRI/],
      ['', /empty/],
      ['\n', /empty/],
      ['<13>Feb 30 00:00:00 h a: m', /bad timestamp/],
    ] as const) {
      const ev = parseSyslog(text, NOW);
      assert.deepEqual(Object.keys(ev).sort(), ['message', 'parse_error'], text);
      assert.equal(ev.message, text);
      assert.match(String(ev.parse_error), reason);
    }
  });

  test('never throws, and always yields a message', () => {
    const prefix = fc.constantFrom('', '<13>', '<165>1 ', '<13>Oct 11 22:14:15 ', '<1>1 - - - - - [', '<0>');
    fc.assert(
      fc.property(prefix, fc.string({ unit: 'binary', maxLength: 200 }), (p, rest) => {
        const ev = parseSyslog(p + rest, NOW);
        assert.equal(typeof ev.message, 'string');
      }),
      { numRuns: 500 },
    );
  });
});
