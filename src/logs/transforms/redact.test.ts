import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { LogEvent } from '../types.js';
import { compileRedact } from './redact.js';

type Pattern = 'email' | 'bearer' | 'jwt' | 'credit-card' | 'ipv4';

function redact(patterns: (Pattern | string)[], text: string, replacement = '[REDACTED]'): string {
  const chain = compileRedact({ type: 'redact', patterns, replacement });
  return chain([{ message: text }])[0]!.message as string;
}

const JWT =
  'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U';

describe('redact transform', () => {
  test('email', () => {
    assert.equal(redact(['email'], 'from john.doe+x@mail.example.co.uk, ok'), 'from [REDACTED], ok');
    assert.equal(redact(['email'], 'no @ here, a@b'), 'no @ here, a@b');
  });

  test('bearer: the token goes, the scheme stays, in any string and any case', () => {
    assert.equal(
      redact(['bearer'], 'Authorization: Bearer abc.DEF-123_~+/=='),
      'Authorization: Bearer [REDACTED]',
    );
    assert.equal(redact(['bearer'], 'auth=bearer  t0k3n;'), 'auth=bearer  [REDACTED];');
    assert.equal(redact(['bearer'], 'Bearers are people'), 'Bearers are people');
  });

  test('jwt: three base64url segments starting eyJ', () => {
    assert.equal(redact(['jwt'], `token=${JWT} next`), 'token=[REDACTED] next');
    assert.equal(redact(['jwt'], 'eyJabc.def'), 'eyJabc.def');
    assert.equal(redact(['jwt'], 'xeyJa.b.c'), 'xeyJa.b.c');
  });

  test('credit-card: 13 to 19 digits with spaces or dashes, only when the Luhn check passes', () => {
    assert.equal(redact(['credit-card'], 'card 4111 1111 1111 1111 ok'), 'card [REDACTED] ok');
    assert.equal(redact(['credit-card'], 'card 4111-1111-1111-1111'), 'card [REDACTED]');
    assert.equal(redact(['credit-card'], 'amex=378282246310005;'), 'amex=[REDACTED];');
    assert.equal(redact(['credit-card'], 'order 4111111111111112'), 'order 4111111111111112');
    assert.equal(redact(['credit-card'], 'short 411111111111'), 'short 411111111111');
    assert.equal(redact(['credit-card'], 'long 41111111111111111111'), 'long 41111111111111111111');
  });

  test('ipv4', () => {
    assert.equal(
      redact(['ipv4'], 'from 10.0.0.1:8080 and ::ffff:192.168.1.255.'),
      'from [REDACTED]:8080 and ::ffff:[REDACTED].',
    );
    assert.equal(
      redact(['ipv4'], 'v1.2.3.4.5 and 256.1.1.1 and 1.2.3'),
      'v1.2.3.4.5 and 256.1.1.1 and 1.2.3',
    );
  });

  test('user patterns and built-ins together; `$` in the replacement is literal', () => {
    const text = `user=alice@example.com ip=10.1.2.3 key=sk_live_abcdef card=4242424242424242 ${JWT}`;
    assert.equal(
      redact(['email', 'ipv4', 'sk_live_\\w+', 'credit-card', 'jwt'], text, '$&-$1'),
      'user=$&-$1 ip=$&-$1 key=$&-$1 card=$&-$1 $&-$1',
    );
  });

  test('a user pattern with a back-reference, and one that matches the empty string', () => {
    assert.equal(
      redact(['email', '(\\w)\\1{3}'], 'aaaa bbbb abab x@y.io'),
      '[REDACTED] [REDACTED] abab [REDACTED]',
    );
    assert.equal(redact(['x*'], 'abxxc'), 'ab[REDACTED]c');
  });

  test('a user pattern named like an Object property is a pattern', () => {
    assert.equal(redact(['constructor', 'toString'], 'a constructor toString'), 'a [REDACTED] [REDACTED]');
  });

  test('user patterns with the same group name still work', () => {
    assert.equal(
      redact(['(?<n>foo)', '(?<n>bar)', 'ipv4'], 'foo bar 1.2.3.4'),
      '[REDACTED] [REDACTED] [REDACTED]',
    );
  });

  test('without `fields`, every string is scanned, nested in objects and arrays; other values stay', () => {
    const chain = compileRedact({ type: 'redact', patterns: ['email'], replacement: 'X' });
    const events: LogEvent[] = [
      {
        message: 'a@b.io',
        n: 42,
        ok: true,
        none: null,
        user: { email: 'c@d.io', tags: ['e@f.io', 1, { deep: ['g@h.io'] }] },
        'e@f.io': 'key names stay',
      },
    ];
    assert.equal(chain(events), events);
    assert.deepEqual(events[0], {
      message: 'X',
      n: 42,
      ok: true,
      none: null,
      user: { email: 'X', tags: ['X', 1, { deep: ['X'] }] },
      'e@f.io': 'key names stay',
    });
  });

  test('with `fields`, only those top-level fields (and what is nested in them) are scanned', () => {
    const chain = compileRedact({
      type: 'redact',
      patterns: ['email'],
      fields: ['message', 'user', 'gone'],
      replacement: 'X',
    });
    const [event] = chain([{ message: 'a@b.io', user: { email: ['c@d.io'] }, other: 'e@f.io', n: 1 }]);
    assert.deepEqual(event, { message: 'X', user: { email: ['X'] }, other: 'e@f.io', n: 1 });
  });

  test('a deeply nested event does not overflow the stack', () => {
    let deep: unknown = 'a@b.io';
    for (let i = 0; i < 100_000; i++) deep = [deep];
    const chain = compileRedact({ type: 'redact', patterns: ['email'], replacement: 'X' });
    let node = chain([{ deep }])[0]!.deep;
    while (Array.isArray(node)) node = node[0];
    assert.equal(node, 'X');
  });

  test('long lines without a match stay cheap (bounded repetitions)', () => {
    const chain = compileRedact({
      type: 'redact',
      patterns: ['email', 'bearer', 'jwt', 'credit-card', 'ipv4'],
      replacement: 'X',
    });
    const runs = ['a'.repeat(200_000), 'eyJ'.repeat(70_000), '1'.repeat(200_000), '1.'.repeat(100_000)];
    for (const text of runs) assert.equal(chain([{ message: text }])[0]!.message, text);
  });
});
