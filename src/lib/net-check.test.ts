import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import net from 'node:net';
import { test } from 'node:test';
import v8 from 'node:v8';
import vm from 'node:vm';
import { tcpCheck } from './net-check.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

function heapAfterGc(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

async function listening(server: net.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as net.AddressInfo).port;
}

test('regression: 20 000 TCP health checks on one long-lived signal leave no abort listener and do not grow the heap', async () => {
  const server = net.createServer((s) => s.destroy());
  const port = await listening(server);
  // The prober's signal lives as long as the process, as the app-health module's does.
  const signal = new AbortController().signal;
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.name);
  process.on('warning', onWarning);
  try {
    // One at a time, as the prober makes them (concurrent connects are slower here, not faster).
    const run = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const o = await tcpCheck({ host: '127.0.0.1', port, timeoutMs: 5000, signal });
        assert.equal(o.kind, 'connected');
      }
    };
    await run(500); // warm-up: lazily built state is not growth
    const before = heapAfterGc();
    await run(20_000);
    assert.equal(getEventListeners(signal, 'abort').length, 0);
    const grown = heapAfterGc() - before;
    // The leak held about 6 KiB per check (120 MB here); what is left is noise.
    assert.ok(grown < 16 * 1024 * 1024, `heap grew by ${(grown / 1048576).toFixed(1)} MiB`);
    assert.deepEqual(warnings, []);
  } finally {
    process.off('warning', onWarning);
    await new Promise((resolve) => server.close(resolve));
  }
});

test('a check ends as aborted when its signal aborts, and leaves no listener', async () => {
  // A listener that accepts nothing: the connect stays pending until the abort.
  const server = net.createServer();
  const port = await listening(server);
  const ac = new AbortController();
  const pending = tcpCheck({ host: '127.0.0.1', port, timeoutMs: 60_000, signal: ac.signal });
  ac.abort();
  assert.deepEqual(await pending, { kind: 'aborted' });
  assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
  assert.deepEqual(await tcpCheck({ host: '127.0.0.1', port, timeoutMs: 1000, signal: ac.signal }), {
    kind: 'aborted',
  });
  await new Promise((resolve) => server.close(resolve));
});
