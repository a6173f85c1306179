import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PillionError } from '../lib/errors.js';
import { errorCode, isOperationalError, operationalErrorAsReason } from './logger.js';

const inUse = Object.assign(new Error('listen EADDRINUSE: address already in use 127.0.0.1:80'), {
  code: 'EADDRINUSE',
});
const wrapped = new PillionError('PILLION_ERR_RUNTIME_MODULE_START', 'module inbound failed to start', {
  cause: new PillionError('PILLION_ERR_PROXY_LISTEN', 'listener cannot listen', { cause: inUse }),
});

test('operational errors are PillionErrors and system errors; anything else is a bug', () => {
  assert.ok(isOperationalError(wrapped));
  assert.ok(isOperationalError(inUse));
  assert.ok(!isOperationalError(new TypeError("Cannot read properties of undefined (reading 'x')")));
  assert.ok(!isOperationalError(Object.assign(new Error('x'), { code: 'ERR_INVALID_ARG_TYPE' })));
  assert.ok(!isOperationalError('a string'));
});

test('an operational error is logged as its reason, without the error object and its stack', () => {
  assert.deepEqual(operationalErrorAsReason({ err: inUse, module: 'admin' }, false), {
    module: 'admin',
    reason: inUse.message,
  });
  assert.deepEqual(operationalErrorAsReason({ err: wrapped }, false), {
    reason: 'module inbound failed to start',
    code: 'PILLION_ERR_RUNTIME_MODULE_START',
  });
  assert.deepEqual(operationalErrorAsReason({ err: inUse, reason: 'SIGTERM' }, false), {
    reason: 'SIGTERM',
    errorReason: inUse.message,
  });
});

test('a bug keeps its error object (and stack), and so does everything at debug level', () => {
  const bug = { err: new TypeError('x is not a function') };
  assert.equal(operationalErrorAsReason(bug, false), bug);
  const op = { err: inUse };
  assert.equal(operationalErrorAsReason(op, true), op);
});

test('the code of a wrapped error is its most specific one', () => {
  assert.equal(errorCode(wrapped), 'PILLION_ERR_PROXY_LISTEN');
  assert.equal(errorCode(inUse), undefined);
});
