import assert from 'node:assert/strict';
import { test } from 'node:test';
import { z } from 'zod';
import { duration, effectiveView, REDACTED, secret, toJsonSchema } from './index.js';

const schema = toJsonSchema(
  z.strictObject({
    a: z.strictObject({ timeout: duration().prefault('5s'), n: z.number().default(3) }).prefault({}),
    creds: z.strictObject({ user: z.string(), key: secret() }).optional(),
    headers: z.record(z.string(), z.string()).optional(),
    list: z.array(z.strictObject({ name: z.string(), password: z.string().optional() })).optional(),
  }),
  { id: 'urn:test', title: 't' },
);

test('fills defaults in their written form', () => {
  assert.deepEqual(effectiveView(schema, {}), { a: { timeout: '5s', n: 3 } });
  assert.deepEqual(effectiveView(schema, { a: { timeout: '1m' } }), { a: { timeout: '1m', n: 3 } });
});

test('redacts schema-marked secrets and secret-named keys, everywhere', () => {
  const view = effectiveView(schema, {
    creds: { user: 'bob', key: 'hunter2' },
    headers: { authorization: 'Bearer abc', 'x-api-key': 'k', accept: '*/*' },
    list: [{ name: 'db', password: 'pw' }],
  }) as Record<string, any>;
  assert.deepEqual(view.creds, { user: 'bob', key: REDACTED });
  assert.deepEqual(view.headers, { authorization: REDACTED, 'x-api-key': REDACTED, accept: '*/*' });
  assert.deepEqual(view.list, [{ name: 'db', password: REDACTED }]);
  assert.ok(!JSON.stringify(view).includes('hunter2'));
});

test('regression: secret-named keys are redacted wherever the word stands, and in lists', () => {
  const view = effectiveView(
    {},
    { secretKey: 'S6', accessKey: 'S7', apiKeys: ['S5'], credentials: 'S8', tokens: ['S9'] },
  );
  assert.ok(!/S[5-9]/.test(JSON.stringify(view)), JSON.stringify(view));
});
