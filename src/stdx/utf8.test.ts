import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPrng } from './prng.js';
import { compareUtf8, isWellFormed, utf8Length, utf8LengthExceeds } from './utf8.js';

test('utf8Length agrees with a real UTF-8 encoder on random text', () => {
  const prng = createPrng(11);
  const pieces = ['a', '\u0000', '\u007f', '\u0080', 'é', '\u07ff', '\u0800', '€', '\uffff', '😀', '\u{10ffff}', '\ud800', '\udfff'];
  const encoder = new TextEncoder();
  for (let i = 0; i < 500; i++) {
    let text = '';
    for (let j = prng.intBetween(0, 30); j > 0; j--) text += pieces[prng.intBetween(0, pieces.length - 1)];
    assert.equal(utf8Length(text), encoder.encode(text).byteLength, JSON.stringify(text));
  }
});

test('isWellFormed accepts surrogate pairs and refuses lone surrogates anywhere', () => {
  assert.equal(isWellFormed(''), true);
  assert.equal(isWellFormed('a😀b\u{10ffff}'), true);
  assert.equal(isWellFormed('\ud800'), false);
  assert.equal(isWellFormed('a\udc00'), false);
  assert.equal(isWellFormed('\ude00\ud83d'), false);
});

test('utf8LengthExceeds agrees with utf8Length at, below and above the limit', () => {
  for (const text of ['', 'abc', 'é', 'é中😀', '\ud800x', '中'.repeat(10)]) {
    const bytes = utf8Length(text);
    assert.equal(utf8LengthExceeds(text, bytes), false, JSON.stringify(text));
    if (bytes > 0) assert.equal(utf8LengthExceeds(text, bytes - 1), true, JSON.stringify(text));
    assert.equal(utf8LengthExceeds(text, bytes + 1), false, JSON.stringify(text));
  }
});

test('compareUtf8 orders strings as their UTF-8 bytes compare', () => {
  const prng = createPrng(12);
  const pieces = ['a', 'z', '\u0000', 'é', '\u07ff', '中', '\ue000', '\uffff', '😀', '\u{10ffff}'];
  const encoder = new TextEncoder();
  const sign = (n: number): number => Math.sign(n);
  for (let i = 0; i < 500; i++) {
    const make = (): string => {
      let text = '';
      for (let j = prng.intBetween(0, 6); j > 0; j--) text += pieces[prng.intBetween(0, pieces.length - 1)];
      return text;
    };
    const a = make();
    const b = make();
    const bytewise = Buffer.compare(Buffer.from(encoder.encode(a)), Buffer.from(encoder.encode(b)));
    assert.equal(sign(compareUtf8(a, b)), bytewise, `${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
  }
});
