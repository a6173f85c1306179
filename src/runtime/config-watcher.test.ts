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
  const clock = new FakeClock();
  const file = join(dir, 'pillion.yaml');
  writeFileSync(file, 'app:\n  port: 8080\n');
  let changes = 0;
  const w = new ConfigWatcher(file, () => changes++, { clock, debounceMs: 100, pollMs: 1000 });
  w.start('app:\n  port: 8080\n');
  try {
    writeFileSync(file, ''); // truncated, not yet written
    await clock.advance(1000); // the poll reads it
    await clock.advance(0);
    assert.equal(changes, 0, 'an empty file would stop every module');
    writeFileSync(file, 'app:\n  port: 9090\n');
    await clock.advance(1000);
    await clock.advance(0);
    assert.equal(changes, 1);
  } finally {
    w.stop();
  }
});
