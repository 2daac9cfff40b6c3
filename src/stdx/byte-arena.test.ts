import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ByteArena } from './byte-arena.js';

test('each copy holds exactly its bytes, and changing the source or another copy changes nothing', () => {
  const arena = new ByteArena(64, 16);
  const source = new Uint8Array([1, 2, 3, 4, 5]);
  const copies = [arena.copy(source), arena.copy(new Uint8Array([9, 9])), arena.copy(new Uint8Array(0)), arena.copy(source)];
  source.fill(0);
  (copies[3] as Uint8Array).fill(7);
  assert.deepEqual(copies.map((c) => [...c]), [[1, 2, 3, 4, 5], [9, 9], [], [7, 7, 7, 7, 7]]);
});

test('small copies share a block, one that does not fit starts the next, large ones get memory of their own', () => {
  const arena = new ByteArena(32, 16);
  const a = arena.copy(new Uint8Array(10));
  const b = arena.copy(new Uint8Array(10));
  const c = arena.copy(new Uint8Array(16));
  assert.equal(a.buffer, b.buffer, 'two small copies in one block');
  assert.notEqual(c.buffer, a.buffer, 'the third did not fit: a new block');
  assert.equal(b.byteOffset % 8, 0, 'copies start aligned');
  const large = arena.copy(new Uint8Array(17));
  assert.equal(large.buffer.byteLength, 17, 'a copy over copyBytesMax has a buffer of its own');
});
