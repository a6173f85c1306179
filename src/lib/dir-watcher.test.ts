import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { DirWatcher } from './dir-watcher.js';
import { waitFor } from './wait-for.js';

let root: string;
before(() => {
  root = mkdtempSync(join(tmpdir(), 'pillion-dir-watcher-'));
});
after(() => rmSync(root, { recursive: true, force: true }));

test('reports files created, renamed and written in a watched directory, by name', async () => {
  const dir = join(root, 'a');
  mkdirSync(dir);
  const events: string[] = [];
  const w = new DirWatcher({ onEvent: (d, name, kind) => events.push(`${kind} ${name} in ${d}`) });
  try {
    w.sync([dir]);
    assert.ok(w.watching(dir));
    writeFileSync(join(dir, 'app.log'), 'x\n');
    await waitFor(() => events.includes(`rename app.log in ${dir}`), { what: 'the create' });
    appendFileSync(join(dir, 'app.log'), 'y\n');
    await waitFor(() => events.includes(`change app.log in ${dir}`), { what: 'the write' });
    renameSync(join(dir, 'app.log'), join(dir, 'app.log.1'));
    await waitFor(() => events.includes(`rename app.log.1 in ${dir}`), { what: 'the rename' });
  } finally {
    w.close();
  }
});

test('a directory that does not exist yet is watched once it does; one left out is closed', async () => {
  const dir = join(root, 'later');
  const other = join(root, 'other');
  mkdirSync(other);
  const names: string[] = [];
  const unwatchable: string[] = [];
  const w = new DirWatcher({
    onEvent: (_d, name) => names.push(name ?? '?'),
    onUnwatchable: (d) => unwatchable.push(d),
  });
  try {
    w.sync([dir, other]);
    assert.equal(w.size, 1, 'only the directory that exists');
    assert.deepEqual(unwatchable, [], 'a missing directory is not an error');
    mkdirSync(dir);
    w.sync([dir]);
    assert.ok(w.watching(dir));
    assert.ok(!w.watching(other), 'left out: closed');
    writeFileSync(join(dir, 'new.log'), '');
    await waitFor(() => names.includes('new.log'), { what: 'an event from the new watch' });
  } finally {
    w.close();
  }
  assert.equal(w.size, 0);
});

test('a directory deleted and made again is watched anew', async () => {
  const dir = join(root, 'again');
  mkdirSync(dir);
  const names: string[] = [];
  const w = new DirWatcher({ onEvent: (_d, name) => names.push(name ?? '?') });
  try {
    w.sync([dir]);
    rmSync(dir, { recursive: true });
    mkdirSync(dir);
    w.sync([dir]);
    writeFileSync(join(dir, 'after.log'), '');
    await waitFor(() => names.includes('after.log'), { what: 'an event from the directory made again' });
  } finally {
    w.close();
  }
});

test('past its bound, directories are reported unwatchable once each and left to polling', () => {
  const dirs = [join(root, 'm1'), join(root, 'm2'), join(root, 'm3')];
  for (const d of dirs) mkdirSync(d);
  const unwatchable: string[] = [];
  const w = new DirWatcher({ onEvent: () => {}, onUnwatchable: (d) => unwatchable.push(d), max: 2 });
  try {
    w.sync(dirs);
    w.sync(dirs);
    assert.equal(w.size, 2);
    assert.deepEqual(unwatchable, [dirs[2]]);
  } finally {
    w.close();
  }
});
