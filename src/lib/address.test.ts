import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { formatAddress, isLoopback, parseAddress } from './address.js';

test('parses the address forms the config accepts', () => {
  assert.deepEqual(parseAddress('127.0.0.1:8080'), { ok: true, value: { host: '127.0.0.1', port: 8080 } });
  assert.deepEqual(parseAddress(':8080'), { ok: true, value: { host: '', port: 8080 } });
  assert.deepEqual(parseAddress('[::1]:8080'), { ok: true, value: { host: '::1', port: 8080 } });
  assert.deepEqual(parseAddress('localhost:0'), { ok: true, value: { host: 'localhost', port: 0 } });
  assert.deepEqual(parseAddress('api.internal.example:443'), {
    ok: true,
    value: { host: 'api.internal.example', port: 443 },
  });
});

test('rejects malformed addresses with a reason', () => {
  const bad = [
    '8080',
    '127.0.0.1',
    '127.0.0.1:',
    '127.0.0.1:99999',
    '::1:8080',
    '[::1]8080',
    '[zz]:80',
    '999.1.1.1:80',
    'a b:80',
    'host:http',
  ];
  for (const text of bad) {
    const r = parseAddress(text);
    assert.equal(r.ok, false, text);
    assert.ok(!r.ok && r.reason.length > 0);
  }
  const v6 = parseAddress('::1:8080');
  assert.ok(!v6.ok && v6.reason.includes('brackets'));
});

test('formatAddress round-trips through parseAddress', () => {
  fc.assert(
    fc.property(
      fc.oneof(fc.ipV4(), fc.ipV6(), fc.constant('')),
      fc.integer({ min: 0, max: 65535 }),
      (host, port) => {
        const r = parseAddress(formatAddress({ host, port }));
        return (
          r.ok &&
          r.value.port === port &&
          (r.value.host === host || r.value.host.toLowerCase() === host.toLowerCase())
        );
      },
    ),
  );
});

test('loopback detection', () => {
  for (const h of ['127.0.0.1', '127.1.2.3', '::1', 'localhost', '::ffff:127.0.0.1'])
    assert.equal(isLoopback(h), true, h);
  for (const h of ['', '0.0.0.0', '10.0.0.1', '::', 'example.com', '::ffff:10.0.0.1'])
    assert.equal(isLoopback(h), false, h);
});
