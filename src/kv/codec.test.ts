import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Packr } from 'msgpackr';
import { createPrng, type Prng } from '../stdx/prng.js';
import { KvCodecError, decodeCommand, decodeCommandForApply, decodeResult, encodeCommand, encodeResult, putTextOf } from './codec.js';
import type { KvCommand, KvResult } from './types.js';

/** A plain encoder for hand-made (mostly malformed) payloads. */
const raw = new Packr({ useRecords: false });
const rawPack = (value: unknown): Uint8Array => new Uint8Array(raw.pack(value));

const interestingIndexes = [0, 1, 127, 128, 255, 256, 65_535, 65_536, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1];

function randomIndex(prng: Prng): number {
  if (prng.chance(0.5)) return interestingIndexes[prng.intBetween(0, interestingIndexes.length - 1)] as number;
  return prng.nextU32() * 2 ** 21 + (prng.nextU32() >>> 11); // up to 2^53 - 1
}

/** Strings mixing ASCII, 2- and 3-byte characters, astral characters (surrogate pairs) and NUL. */
function randomString(prng: Prng, lengthMax: number): string {
  const alphabet = ['a', 'Z', '/', '\u0000', '\u007f', 'é', '\u07ff', '€', '\uffff', '😀', '\u{10ffff}'];
  let text = '';
  const length = prng.intBetween(0, lengthMax);
  for (let i = 0; i < length; i++) {
    text += prng.chance(0.5)
      ? String.fromCharCode(prng.intBetween(0x20, 0x7e))
      : (alphabet[prng.intBetween(0, alphabet.length - 1)] as string);
  }
  return text;
}

function randomCommand(prng: Prng): KvCommand {
  const key = `k${randomString(prng, 40)}`;
  const ifVersion = prng.chance(0.5) ? { ifVersion: randomIndex(prng) } : {};
  const requestId = prng.chance(0.5)
    ? { requestId: { clientId: `c${randomString(prng, 20)}`, seq: randomIndex(prng) } }
    : {};
  if (prng.chance(0.3)) return { op: 'delete', key, ...ifVersion, ...requestId };
  const value = prng.chance(0.5)
    ? randomString(prng, prng.chance(0.1) ? 5000 : 50)
    : Uint8Array.from({ length: prng.intBetween(0, prng.chance(0.1) ? 70_000 : 50) }, () => prng.intBetween(0, 255));
  return { op: 'put', key, value, ...ifVersion, ...requestId };
}

test('random commands survive encode and decode exactly, value types included', () => {
  const prng = createPrng(20240601);
  for (let i = 0; i < 2000; i++) {
    const command = randomCommand(prng);
    const decoded = decodeCommand(encodeCommand(command));
    assert.deepEqual(decoded, command, `command ${i} changed in a round trip`);
    if (command.op === 'put' && decoded.op === 'put') {
      // deepEqual is strict about prototypes: a Buffer would not equal a Uint8Array.
      assert.equal(typeof decoded.value, typeof command.value);
    }
  }
});

test("for the state machine, a put's long text value stays as the entry's UTF-8 bytes; the command reads exactly as decodeCommand gives it", () => {
  const texts = ['a'.repeat(1024), 'é€😀'.repeat(300), 'x'.repeat(70_000)]; // str16, non-ASCII, str32
  const commands: KvCommand[] = [
    ...texts.map((value): KvCommand => ({ op: 'put', key: 'k', value })),
    { op: 'put', key: 'ké', value: texts[1] as string, ifVersion: 7, lease: 3, requestId: { clientId: 'c', seq: 9 } },
  ];
  for (const command of commands) {
    const data = encodeCommand(command);
    const decoded = decodeCommandForApply(data);
    assert.deepEqual(decoded, decodeCommand(data));
    assert.deepEqual(decoded, command);
    const text = putTextOf(decoded);
    assert.ok(text !== undefined, 'a long text is kept as bytes');
    assert.equal(Buffer.from(text).toString('utf8'), command.op === 'put' ? command.value : '');
  }
  for (const command of [{ op: 'put', key: 'k', value: 'short' }, { op: 'put', key: 'k', value: new Uint8Array(5000) }, { op: 'delete', key: 'k' }] satisfies KvCommand[]) {
    const decoded = decodeCommandForApply(encodeCommand(command));
    assert.deepEqual(decoded, command);
    assert.equal(putTextOf(decoded), undefined, 'short texts, bytes and other commands decode as usual');
  }
  const truncated = encodeCommand({ op: 'put', key: 'k', value: 'y'.repeat(2000) }).subarray(0, 1500);
  assert.throws(() => decodeCommandForApply(truncated), KvCodecError, 'a value running past the end is refused like any malformed entry');
});

test('the same command always encodes to the same bytes, whatever its property order', () => {
  const a: KvCommand = { op: 'put', key: 'k', value: 'v', ifVersion: 7, requestId: { clientId: 'c', seq: 3 } };
  const b: KvCommand = { requestId: { seq: 3, clientId: 'c' }, ifVersion: 7, value: 'v', key: 'k', op: 'put' };
  assert.deepEqual(encodeCommand(a), encodeCommand(b));
  const prng = createPrng(5);
  for (let i = 0; i < 200; i++) {
    const command = randomCommand(prng);
    assert.deepEqual(encodeCommand(command), encodeCommand(structuredClone(command)));
  }
});

test('indexes up to 2^53 - 1 round-trip exactly', () => {
  for (const n of interestingIndexes) {
    const command: KvCommand = { op: 'delete', key: 'k', ifVersion: n, requestId: { clientId: 'c', seq: n } };
    assert.deepEqual(decodeCommand(encodeCommand(command)), command);
    const result: KvResult = { ok: true, op: 'put', key: 'k', version: n };
    assert.deepEqual(decodeResult(encodeResult(result)), result);
  }
});

test('a decoded byte value owns its bytes: changing the entry afterwards does not change it', () => {
  const data = encodeCommand({ op: 'put', key: 'k', value: new Uint8Array([1, 2, 3]) });
  const decoded = decodeCommand(data);
  // Decoding leaves the entry untouched (msgpackr would otherwise hang a DataView on it).
  assert.deepEqual(data, Uint8Array.from(data));
  data.fill(0);
  assert.ok(decoded.op === 'put' && decoded.value instanceof Uint8Array);
  assert.equal(decoded.value.constructor, Uint8Array);
  assert.deepEqual(decoded.value, new Uint8Array([1, 2, 3]));
});

test('an encoded command owns its bytes: later encodings do not overwrite it, and it shares memory with other commands only', () => {
  const first = encodeCommand({ op: 'put', key: 'first', value: 'one' });
  const copy = Uint8Array.from(first);
  for (let i = 0; i < 1000; i++) encodeCommand({ op: 'put', key: `k${i}`, value: 'x'.repeat(i) });
  assert.deepEqual(first, copy);
  // Not a slice of Node's Buffer pool, which whatever else the process allocates would share
  // (one log entry kept would keep all of that alive).
  assert.notEqual(first.buffer, Buffer.allocUnsafe(1).buffer);
  // A large one is not carved from a shared block at all.
  const large = encodeCommand({ op: 'put', key: 'large', value: 'x'.repeat(64 * 1024) });
  assert.equal(large.byteLength, large.buffer.byteLength);
});

test('every kind of result survives encode and decode exactly', () => {
  const results: KvResult[] = [
    { ok: true, op: 'put', key: 'a', version: 1 },
    { ok: true, op: 'delete', key: 'b', version: 2 ** 53 - 1, deleted: true },
    { ok: true, op: 'delete', key: 'ключ', version: 9, deleted: false },
    { ok: false, error: 'version_conflict', key: '😀', expectedVersion: 0, actualVersion: 12 },
    { ok: false, error: 'stale_request', key: '', lastSeq: 4 },
  ];
  for (const result of results) {
    const bytes = encodeResult(result);
    assert.deepEqual(decodeResult(bytes), result);
    assert.deepEqual(encodeResult(result), bytes);
  }
});

test('a compact command and its result survive encode and decode; a beforeVersion of 0 is refused', () => {
  const command = { op: 'compact', beforeVersion: 2 ** 40, requestId: { clientId: 'ops', seq: 3 } } as const;
  assert.deepEqual(decodeCommand(encodeCommand(command)), command);
  const result = { ok: true, op: 'compact', compactedBelow: 17, removed: 16, version: 40 } as const;
  assert.deepEqual(decodeResult(encodeResult(result)), result);
  assert.throws(() => encodeCommand({ op: 'compact', beforeVersion: 0 }), /beforeVersion must be at least 1/);
});

test('random bytes and truncated or extended commands are refused with a KvCodecError', () => {
  const prng = createPrng(99);
  for (let i = 0; i < 2000; i++) {
    const garbage = Uint8Array.from({ length: prng.intBetween(0, 64) }, () => prng.intBetween(0, 255));
    assert.throws(() => decodeCommand(garbage), KvCodecError, `garbage ${i} was accepted`);
    assert.throws(() => decodeResult(garbage), KvCodecError, `garbage ${i} was accepted as a result`);
  }
  for (let i = 0; i < 100; i++) {
    const data = encodeCommand(randomCommand(prng));
    const cut = prng.intBetween(0, data.byteLength - 1);
    assert.throws(() => decodeCommand(data.subarray(0, cut)), KvCodecError, `a command cut at ${cut} was accepted`);
    const extended = new Uint8Array(data.byteLength + 1);
    extended.set(data);
    assert.throws(() => decodeCommand(extended), /end of buffer not reached/);
  }
});

test('commands of the wrong shape are refused, naming the field at fault', () => {
  const cases: [unknown, RegExp][] = [
    [{ op: 'put', key: 'k', value: 'v' }, /expected an array/],
    [[1, 'put', 'k', 'v', null, null], /expected 7 or 9 fields, got 6/],
    [[2, 'put', 'k', 'v', null, null, null], /unknown format 2/],
    [[1, 'get', 'k', null, null, null, null], /op must be 'put' or 'delete', got "get"/],
    [[1, 'put', 5, 'v', null, null, null], /key must be a string, got 5/],
    [[1, 'put', '', 'v', null, null, null], /key must not be empty/],
    [[1, 'put', 'k', 'v', null, '', 1], /requestId.clientId: Client id must not be empty/],
    [[1, 'put', 'k', 'v', null, 'c'.repeat(129), 1], /requestId.clientId: Client id is larger than 128 bytes/],
    [[1, 'put', 'k', null, null, null, null], /value must be a string or a Uint8Array, got null/],
    [[1, 'put', 'k', 12, null, null, null], /value must be a string or a Uint8Array, got 12/],
    [[1, 'delete', 'k', 'v', null, null, null], /a delete carries no value/],
    [[1, 'put', 'k', 'v', -1, null, null], /ifVersion must be a non-negative safe integer, got -1/],
    [[1, 'put', 'k', 'v', 1.5, null, null], /ifVersion must be a non-negative safe integer, got 1.5/],
    [[1, 'put', 'k', 'v', 2 ** 53, null, null], /ifVersion must be a non-negative safe integer, got 9007199254740992/],
    [[1, 'put', 'k', 'v', 2n ** 60n, null, null], /ifVersion must be a non-negative safe integer, got 1152921504606846976n/],
    [[1, 'put', 'k', 'v', '3', null, null], /ifVersion must be a non-negative safe integer, got "3"/],
    [[1, 'put', 'k', 'v', null, 'c', null], /requestId needs both clientId and seq/],
    [[1, 'put', 'k', 'v', null, null, 3], /requestId needs both clientId and seq/],
    [[1, 'put', 'k', 'v', null, 7, 3], /requestId.clientId must be a string, got 7/],
    [[1, 'put', 'k', 'v', null, 'c', -3], /requestId.seq must be a non-negative safe integer, got -3/],
  ];
  for (const [payload, message] of cases) {
    assert.throws(() => decodeCommand(rawPack(payload)), (error: unknown) => {
      assert.ok(error instanceof KvCodecError, `expected a KvCodecError for ${String(message)}`);
      assert.match(error.message, /^Cannot decode command: /);
      assert.match(error.message, message);
      return true;
    });
  }
  // A (u)int64 is not something this codec writes; even a small one is refused, not rounded.
  const uint64 = Uint8Array.from([0x97, 0x01, 0xa3, 0x70, 0x75, 0x74, 0xa1, 0x6b, 0xa1, 0x76, 0xcf, 0, 0, 0, 0, 0, 0, 0, 5, 0xc0, 0xc0]);
  assert.throws(() => decodeCommand(uint64), /ifVersion must be a non-negative safe integer, got 5n/);
});

test('the encoder refuses what the decoder would refuse, so a bad command never enters the log', () => {
  const bad: unknown[] = [
    { op: 'put', key: 'lone \ud800 surrogate', value: 'v' },
    { op: 'put', key: 'k', value: 'lone \udc00 surrogate' },
    { op: 'put', key: 'k', value: 'v', requestId: { clientId: '\ud800', seq: 1 } },
    { op: 'put', key: '', value: 'v' },
    { op: 'delete', key: 'k', requestId: { clientId: '', seq: 1 } },
    { op: 'delete', key: 'k', requestId: { clientId: 'é'.repeat(65), seq: 1 } },
    { op: 'put', key: 'k', value: 'v', ifVersion: -1 },
    { op: 'put', key: 'k', value: 'v', ifVersion: 2 ** 53 },
    { op: 'put', key: 'k', value: 'v', requestId: { clientId: 'c', seq: 0.5 } },
    { op: 'put', key: 'k', value: new Uint16Array(2) },
    { op: 'put', key: 'k' },
    { op: 'erase', key: 'k' },
  ];
  for (const command of bad) {
    assert.throws(() => encodeCommand(command as KvCommand), /^KvCodecError: Cannot encode command: /, JSON.stringify(command));
  }
});

test('results of the wrong shape are refused', () => {
  const cases: [unknown, RegExp][] = [
    [[1, 'put', 'k'], /expected 4 or 5 or 6 fields, got 3/],
    [[1, 'put', 'k', 1, true], /lease must be a non-negative safe integer, got true/],
    [[1, 'put', 'k', 1, 2, 3], /a 'put' result has 4 or 5 fields, got 6/],
    [[1, 'lease-grant', 3, 100], /a 'lease-grant' result has 5 fields, got 4/],
    [[1, 'lease-revoke', 3, 'yes', 0, 4], /found must be a boolean/],
    [[1, 'delete', 'k', 1], /a 'delete' result has 5 fields, got 4/],
    [[1, 'delete', 'k', 1, 1], /deleted must be a boolean, got 1/],
    [[1, 'version_conflict', 'k', 1, -2], /actualVersion must be a non-negative safe integer, got -2/],
    [[1, 'stale_request', 'k', null], /lastSeq must be a non-negative safe integer, got null/],
    [[1, 'not_found', 'k', 1], /kind must be put, delete, version_conflict or stale_request, got "not_found"/],
    [[0, 'put', 'k', 1], /unknown format 0/],
  ];
  for (const [payload, message] of cases) {
    assert.throws(() => decodeResult(rawPack(payload)), (error: unknown) => {
      assert.ok(error instanceof KvCodecError);
      assert.match(error.message, /^Cannot decode result: /);
      assert.match(error.message, message);
      return true;
    });
  }
});
