import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  checkKvLimits,
  clientIdBytesMax,
  defaultKvLimits,
  validateClientId,
  validateKey,
  validateValue,
} from './limits.js';

const limits = { keyBytesMax: 12, valueBytesMax: 30 };

test('the default limits are 1 KiB keys and 1 MiB values', () => {
  assert.deepEqual(defaultKvLimits, { keyBytesMax: 1024, valueBytesMax: 1_048_576 });
  assert.equal(checkKvLimits(defaultKvLimits), defaultKvLimits);
});

test('limits that are not positive integers are refused at start-up', () => {
  assert.throws(() => checkKvLimits({ keyBytesMax: 0, valueBytesMax: 1 }), /keyBytesMax must be a positive safe integer, got 0/);
  assert.throws(() => checkKvLimits({ keyBytesMax: 1, valueBytesMax: 1.5 }), /valueBytesMax must be a positive safe integer, got 1.5/);
});

test('a key exactly at the byte limit is accepted and one byte more is refused', () => {
  assert.equal(validateKey('k'.repeat(12), limits), null);
  assert.deepEqual(validateKey('k'.repeat(13), limits)?.code, 'key_too_large');
  assert.match(validateKey('k'.repeat(13), limits)?.message ?? '', /larger than 12 bytes of UTF-8 \(13 bytes\)/);
});

test('multi-byte characters count in UTF-8 bytes, not in characters', () => {
  // 'é' is 2 bytes, '€' 3, '😀' 4 (two UTF-16 code units).
  assert.equal(validateKey('é'.repeat(6), limits), null);
  assert.equal(validateKey('é'.repeat(6) + 'a', limits)?.code, 'key_too_large');
  assert.equal(validateKey('€'.repeat(4), limits), null);
  assert.equal(validateKey('€'.repeat(4) + 'a', limits)?.code, 'key_too_large');
  assert.equal(validateKey('😀'.repeat(3), limits), null);
  assert.equal(validateKey('😀'.repeat(3) + 'a', limits)?.code, 'key_too_large');
  assert.equal(validateValue('€'.repeat(10), limits), null);
  assert.equal(validateValue('€'.repeat(10) + 'a', limits)?.code, 'value_too_large');
});

test('empty keys, keys with a lone surrogate and keys with NUL are invalid; other characters are fine', () => {
  assert.deepEqual(validateKey('', limits), { code: 'invalid_key', message: 'Key must not be empty' });
  for (const key of ['a\ud800', '\udc00b', '\udbff\ud800', 'x\udfff\ud800']) {
    assert.equal(validateKey(key, limits)?.code, 'invalid_key', JSON.stringify(key));
    assert.match(validateKey(key, limits)?.message ?? '', /lone surrogate/);
  }
  assert.match(validateKey('a\u0000b', limits)?.message ?? '', /NUL character \(U\+0000\) at position 1/);
  for (const key of ['a', '/a/b', ' ', '\t\n\u001f\u007f', '😀', '\ud83d\ude00', 'ключ']) {
    assert.equal(validateKey(key, limits), null, JSON.stringify(key));
  }
});

test('byte values are measured by length and may hold anything', () => {
  assert.equal(validateValue(new Uint8Array(30), limits), null);
  assert.deepEqual(validateValue(new Uint8Array(31), limits), {
    code: 'value_too_large',
    message: 'Value is 31 bytes, larger than the limit of 30 bytes',
  });
  assert.equal(validateValue(Uint8Array.from([0xed, 0xa0, 0x80, 0]), limits), null);
});

test('string values exactly at the limit pass, over it are refused, and lone surrogates are invalid', () => {
  assert.equal(validateValue('', limits), null);
  assert.equal(validateValue('v'.repeat(30), limits), null);
  assert.equal(validateValue('v'.repeat(31), limits)?.code, 'value_too_large');
  assert.equal(validateValue('\u0000', limits), null);
  assert.equal(validateValue('ok \ud800', limits)?.code, 'invalid_value');
});

test('a huge key or value is refused without being scanned to the end', () => {
  const huge = 'x'.repeat(10_000_000);
  assert.equal(validateKey(huge, defaultKvLimits)?.code, 'key_too_large');
  assert.match(validateKey(huge, defaultKvLimits)?.message ?? '', /at least 10000000 bytes/);
  assert.equal(validateValue(huge, defaultKvLimits)?.code, 'value_too_large');
  assert.equal(validateValue('€'.repeat(400_000), defaultKvLimits)?.code, 'value_too_large');
  assert.equal(validateValue('€'.repeat(349_525), defaultKvLimits), null);
});

test('client ids must be non-empty, well-formed and at most 128 bytes of UTF-8', () => {
  assert.equal(clientIdBytesMax, 128);
  assert.equal(validateClientId('c'.repeat(128)), null);
  assert.equal(validateClientId('é'.repeat(64)), null);
  assert.match(validateClientId('é'.repeat(64) + 'c')?.message ?? '', /larger than 128 bytes/);
  assert.deepEqual(validateClientId(''), { code: 'bad_request', message: 'Client id must not be empty' });
  assert.match(validateClientId('c\ud800')?.message ?? '', /lone surrogate/);
});
