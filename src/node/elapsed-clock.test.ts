import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createElapsedClockMs } from './elapsed-clock.js';

function clocks(): { mono: number; wall: number; read: () => number } {
  const c = { mono: 1000, wall: 1_700_000_000_000, read: () => 0 };
  c.read = createElapsedClockMs(() => c.mono, () => c.wall);
  return c;
}

test('it follows real time while both clocks agree', () => {
  const c = clocks();
  c.mono += 50;
  c.wall += 50;
  assert.equal(c.read(), 50);
  c.mono += 25;
  c.wall += 25;
  assert.equal(c.read(), 75);
});

test('a sleep that stops the monotonic clock is counted through the wall clock, so a lease ends', () => {
  const c = clocks();
  c.wall += 60_000;
  c.mono += 3;
  assert.equal(c.read(), 60_000);
});

test('a wall clock stepped back is ignored; one stepped forward only moves it on', () => {
  const c = clocks();
  c.wall -= 3_600_000;
  c.mono += 10;
  assert.equal(c.read(), 10);
  c.mono += 10;
  c.wall += 10;
  assert.equal(c.read(), 20, 'after the step, both advance together again');
  c.wall += 5_000;
  c.mono += 10;
  assert.equal(c.read(), 5_020);
});

test('it never goes backwards', () => {
  const c = clocks();
  let last = 0;
  for (let i = 0; i < 100; i++) {
    c.mono += (i % 7) - 2;
    c.wall += (i % 5) - 3;
    const now = c.read();
    assert.ok(now >= last);
    last = now;
  }
});
