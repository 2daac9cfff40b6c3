import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RecentRecords, RECENT_VALUE_BYTES_MAX } from './recent-records.js';

const record = (value: string | Uint8Array, version = 1) => ({ value, version });
/** Sets `key` to `r` counted at its value's length (as if stored with a 0-byte header). */
const put = (recent: RecentRecords, key: string, r: ReturnType<typeof record> | null): void => recent.set(key, r, r === null ? 0 : r.value.length);

test('a record set is read back; null says the key holds nothing; an unknown key is undefined', () => {
  const recent = new RecentRecords();
  put(recent, 'a', record('x', 3));
  put(recent, 'b', null);
  assert.deepEqual(recent.get('a'), record('x', 3));
  assert.equal(recent.get('b'), null);
  assert.equal(recent.get('c'), undefined);
  put(recent, 'a', record('y', 4));
  assert.deepEqual(recent.get('a'), record('y', 4));
  recent.delete('a');
  assert.equal(recent.get('a'), undefined);
});

test('past the record bound the oldest set goes first, and setting a key again makes it the newest', () => {
  const recent = new RecentRecords({ recordsMax: 3, bytesMax: 1 << 20 });
  for (const key of ['a', 'b', 'c']) put(recent, key, record(key));
  put(recent, 'a', record('a2'));
  put(recent, 'd', record('d'));
  assert.equal(recent.size, 3);
  assert.equal(recent.get('b'), undefined, 'b was the oldest');
  assert.deepEqual(recent.get('a'), record('a2'));
  assert.deepEqual(recent.get('d'), record('d'));
});

test('the byte bound holds, and a record too large is not kept (nor an older record of its key), its value never read', () => {
  const recent = new RecentRecords({ recordsMax: 1000, bytesMax: 4096 });
  for (let i = 0; i < 100; i++) put(recent, `k${i}`, record(new Uint8Array(100)));
  assert.ok(recent.bytesHeld <= 4096, `${recent.bytesHeld} bytes held`);
  assert.ok(recent.size < 100 && recent.size > 0);
  assert.deepEqual(recent.get('k99'), record(new Uint8Array(100)));

  put(recent, 'big', record(new Uint8Array(10)));
  // Measured by what it was stored as: its value is never read to find out (it may be lazy).
  const lazy = {
    get value(): Uint8Array {
      throw new Error('read the value');
    },
    version: 2,
  };
  recent.set('big', lazy, RECENT_VALUE_BYTES_MAX + 1);
  assert.equal(recent.get('big'), undefined);
  recent.clear();
  assert.equal(recent.size, 0);
  assert.equal(recent.bytesHeld, 0);
});
