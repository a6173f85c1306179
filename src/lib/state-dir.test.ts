import assert from 'node:assert/strict';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { chooseStateDir, defaultStateDir } from './state-dir.js';

test('the state directory: --state-dir, else $PILLION_STATE_DIR, else $XDG_STATE_HOME/pillion, else ~/.local/state/pillion', () => {
  assert.deepEqual(chooseStateDir('/tmp/x', { PILLION_STATE_DIR: '/e' }), { dir: '/tmp/x', source: 'flag' });
  assert.deepEqual(chooseStateDir(undefined, { PILLION_STATE_DIR: '/e' }), { dir: '/e', source: 'env' });
  assert.deepEqual(chooseStateDir(undefined, { XDG_STATE_HOME: '/x', HOME: '/h' }), {
    dir: '/x/pillion',
    source: 'default',
  });
  assert.equal(defaultStateDir({ HOME: '/h' }), '/h/.local/state/pillion');
  assert.equal(defaultStateDir({ XDG_STATE_HOME: '' }), join(homedir(), '.local', 'state', 'pillion'));
  assert.equal(chooseStateDir('rel', {}).dir, join(process.cwd(), 'rel'), 'always absolute');
});

test('regression: an empty PILLION_STATE_DIR (or --state-dir "") is an error, not the current directory', () => {
  for (const [flag, env] of [
    [undefined, { PILLION_STATE_DIR: '' }],
    [undefined, { PILLION_STATE_DIR: '  ' }],
    ['', {}],
  ] as const) {
    assert.throws(
      () => chooseStateDir(flag, env),
      (err: Error & { code?: string }) =>
        err.code === 'PILLION_ERR_STATE_DIR_EMPTY' && /that names no directory/.test(err.message),
    );
  }
  assert.throws(() => defaultStateDir({ PILLION_STATE_DIR: '' }), /PILLION_STATE_DIR is set but empty/);
});
