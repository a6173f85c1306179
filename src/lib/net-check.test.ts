import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { createServer } from 'node:net';
import { test } from 'node:test';
import { tcpCheck } from './net-check.js';

test('regression: TCP checks leave no listener on their signal (one leaked per check: a leak a second)', async () => {
  const server = createServer((s) => s.end());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  const refused = await new Promise<number>((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  const ac = new AbortController();
  try {
    for (let i = 0; i < 12; i++) {
      assert.deepEqual(await tcpCheck({ host: '127.0.0.1', port, timeoutMs: 5000, signal: ac.signal }), {
        kind: 'connected',
      });
      assert.equal(
        (await tcpCheck({ host: '127.0.0.1', port: refused, timeoutMs: 5000, signal: ac.signal })).kind,
        'error',
      );
    }
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
  } finally {
    server.close();
  }
});

test('a TCP check ends at once when its signal aborts, or when it was aborted before', async () => {
  const ac = new AbortController();
  // 192.0.2.1 (TEST-NET-1) is never routed: the connect hangs until the abort.
  const pending = tcpCheck({ host: '192.0.2.1', port: 9, timeoutMs: 60_000, signal: ac.signal });
  ac.abort();
  assert.deepEqual(await pending, { kind: 'aborted' });
  assert.deepEqual(await tcpCheck({ host: '127.0.0.1', port: 9, timeoutMs: 1000, signal: ac.signal }), {
    kind: 'aborted',
  });
  assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
});
