import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { FakeClock } from '../lib/clock.js';
import { ConfigWatcher } from './config-watcher.js';

const dir = mkdtempSync(join(tmpdir(), 'pillion-watch-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('regression: a file caught between its truncation and its write (empty) is not a change', async () => {
  const file = join(dir, 'pillion.yaml');
  writeFileSync(file, 'app:\n  port: 8080\n');
  let changes = 0;
  // The fake clock never moves: events and polls stay queued, and the test checks by hand.
  const w = new ConfigWatcher(file, () => changes++, { clock: new FakeClock() });
  w.start('app:\n  port: 8080\n');
  try {
    writeFileSync(file, ''); // truncated, not yet written
    await w.check();
    assert.equal(changes, 0, 'an empty file would stop every module');
    writeFileSync(file, 'app:\n  port: 9090\n');
    await w.check();
    assert.equal(changes, 1);
    await w.check();
    assert.equal(changes, 1, 'the same content again is no change');
  } finally {
    w.stop();
  }
});
