import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkPositiveSafeInt, isPositiveSafeInt } from './safe-int.js';

test('a positive safe integer is a whole number from 1 to 2^53 - 1', () => {
  for (const ok of [1, 2, 4096, Number.MAX_SAFE_INTEGER]) assert.equal(isPositiveSafeInt(ok), true, String(ok));
  for (const bad of [0, -1, 1.5, Number.MAX_SAFE_INTEGER + 1, NaN, Infinity, '1', null, undefined]) {
    assert.equal(isPositiveSafeInt(bad), false, String(bad));
  }
});

test('checkPositiveSafeInt gives back a good value and refuses a bad one with its name and value', () => {
  assert.equal(checkPositiveSafeInt(7, 'queueMessagesMax'), 7);
  assert.throws(() => checkPositiveSafeInt(0, 'queueMessagesMax'), {
    name: 'RangeError',
    message: 'queueMessagesMax must be a positive safe integer, got 0',
  });
  assert.throws(() => checkPositiveSafeInt(2.5, 'HttpLimits.bodyBytesMax'), {
    name: 'RangeError',
    message: 'HttpLimits.bodyBytesMax must be a positive safe integer, got 2.5',
  });
  assert.throws(() => checkPositiveSafeInt(undefined, 'x'), { name: 'RangeError', message: 'x must be a positive safe integer, got undefined' });
});
