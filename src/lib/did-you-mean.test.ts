import assert from 'node:assert/strict';
import { test } from 'node:test';
import { didYouMean, editDistance } from './did-you-mean.js';

test('suggests the closest key for typos, including swapped letters', () => {
  assert.equal(didYouMean('tsl', ['tls', 'routes', 'listen']), 'tls');
  assert.equal(didYouMean('prot', ['host', 'port', 'health']), 'port');
  assert.equal(didYouMean('lisen', ['listen', 'allowRemote']), 'listen');
  assert.equal(didYouMean('drainTimout', ['drainTimeout', 'log']), 'drainTimeout');
  assert.equal(didYouMean('ALLOWREMOTE', ['allowRemote']), 'allowRemote');
});

test('does not suggest unrelated words', () => {
  assert.equal(didYouMean('banana', ['listen', 'allowRemote']), undefined);
  assert.equal(didYouMean('xy', ['tls']), undefined);
});

test('edit distance counts a transposition as one edit', () => {
  assert.equal(editDistance('ab', 'ba'), 1);
  assert.equal(editDistance('kitten', 'sitting'), 3);
  assert.equal(editDistance('', 'abc'), 3);
});
