import assert from 'node:assert/strict';
import { PassThrough, Writable } from 'node:stream';
import { test } from 'node:test';
import type { SendOutcome } from '../types.js';
import { createStdoutDriver } from './stdout.js';

const signal = () => AbortSignal.timeout(5000);

test('writes one JSON line per event', async () => {
  const out = new PassThrough();
  let text = '';
  out.on('data', (d: Buffer) => (text += d.toString()));
  const d = createStdoutDriver(out);
  assert.deepEqual(await d.send([{ a: 1 }, { b: 'x\ny' }], signal()), { kind: 'ok' });
  assert.deepEqual(await d.send([], signal()), { kind: 'ok' });
  await d.close();
  assert.equal(text, '{"a":1}\n{"b":"x\\ny"}\n');
});

test('resolves only once a slow stream has taken the batch', async () => {
  let release: (() => void) | undefined;
  const slow = new Writable({
    highWaterMark: 16,
    write(_chunk, _enc, cb) {
      release = cb;
    },
  });
  const d = createStdoutDriver(slow);
  let done = false;
  const p = d.send([{ a: 1 }], signal()).then((o) => {
    done = true;
    return o;
  });
  await new Promise((r) => setImmediate(r));
  assert.equal(done, false);
  release!();
  assert.deepEqual(await p, { kind: 'ok' });
  await d.close();
});

test('a broken stream fails the batch, retryably, instead of throwing', async () => {
  const broken = new Writable({
    write(_chunk, _enc, cb) {
      cb(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
    },
  });
  const d = createStdoutDriver(broken);
  const out = (await d.send([{ a: 1 }], signal())) as Extract<SendOutcome, { kind: 'failed' }>;
  assert.equal(out.kind, 'failed');
  assert.equal(out.retry, true);
  assert.match(out.reason, /EPIPE/);
  const again = await d.send([{ a: 2 }], signal());
  assert.equal(again.kind, 'failed');
  await d.close();
});
