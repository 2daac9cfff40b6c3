import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RecentRecords, RECENT_VALUE_BYTES_MAX } from './recent-records.js';

const record = (value: string | Uint8Array, version = 1) => ({ value, version });

test('a record set is read back; null says the key holds nothing; an unknown key is undefined', () => {
  const recent = new RecentRecords();
  recent.set('a', record('x', 3));
  recent.set('b', null);
  assert.deepEqual(recent.get('a'), record('x', 3));
  assert.equal(recent.get('b'), null);
  assert.equal(recent.get('c'), undefined);
  recent.set('a', record('y', 4));
  assert.deepEqual(recent.get('a'), record('y', 4));
  recent.delete('a');
  assert.equal(recent.get('a'), undefined);
});

test('past the record bound the oldest set goes first, and setting a key again makes it the newest', () => {
  const recent = new RecentRecords({ recordsMax: 3, bytesMax: 1 << 20 });
  for (const key of ['a', 'b', 'c']) recent.set(key, record(key));
  recent.set('a', record('a2'));
  recent.set('d', record('d'));
  assert.equal(recent.size, 3);
  assert.equal(recent.get('b'), undefined, 'b was the oldest');
  assert.deepEqual(recent.get('a'), record('a2'));
  assert.deepEqual(recent.get('d'), record('d'));
});

test('the byte bound holds, and a value too large is not kept (nor an older record of its key)', () => {
  const recent = new RecentRecords({ recordsMax: 1000, bytesMax: 4096 });
  for (let i = 0; i < 100; i++) recent.set(`k${i}`, record(new Uint8Array(100)));
  assert.ok(recent.bytesHeld <= 4096, `${recent.bytesHeld} bytes held`);
  assert.ok(recent.size < 100 && recent.size > 0);
  assert.deepEqual(recent.get('k99'), record(new Uint8Array(100)));

  recent.set('big', record(new Uint8Array(10)));
  recent.set('big', record(new Uint8Array(RECENT_VALUE_BYTES_MAX + 1)));
  assert.equal(recent.get('big'), undefined);
  recent.clear();
  assert.equal(recent.size, 0);
  assert.equal(recent.bytesHeld, 0);
});
