import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPrng } from '../stdx/prng.js';
import { FrameDecoder, FrameEncoder, frameHeaderBytes } from './frame.js';
import type { FrameError } from './frame.js';

function decoderInto(out: unknown[], frameBytesMax = 1 << 20, copyBinaries = true): FrameDecoder {
  return new FrameDecoder({ frameBytesMax, copyBinaries, onFrame: (m) => out.push(m) });
}

function encodeAll(messages: readonly unknown[], frameBytesMax = 1 << 20): Uint8Array {
  const encoder = new FrameEncoder({ frameBytesMax });
  return Buffer.concat(
    messages.map((m) => {
      const frame = encoder.encode(m);
      assert.ok(frame, 'frame fits');
      return frame;
    }),
  );
}

const sampleMessages: readonly unknown[] = [
  { type: 'append', from: 'n1', to: 'n2', term: 7, entries: [{ index: 2 ** 53 - 1, data: new Uint8Array([1, 2, 3]) }] },
  { type: 'heartbeat', commit: -(2 ** 53 - 1), big: 2 ** 40 + 3, small: -5, ratio: 0.25, ok: true, none: null },
  'a string with ünïcödé',
  [1, [2, [3]], { nested: { deeper: 'yes' } }],
  { empty: new Uint8Array(0), text: '' },
];

test('a frame is a big-endian length followed by the MessagePack body', () => {
  const frame = new FrameEncoder({ frameBytesMax: 100 }).encode({ a: 1 });
  assert.ok(frame);
  assert.equal(frame.readUInt32BE(0), frame.length - frameHeaderBytes);
  // map16 with one entry, "a" => 1: plain MessagePack any decoder reads.
  assert.deepEqual([...frame.subarray(frameHeaderBytes)], [0xde, 0x00, 0x01, 0xa1, 0x61, 0x01]);
});

test('messages round-trip exactly: byte arrays as Uint8Array, integers up to 2^53 unchanged', () => {
  const out: unknown[] = [];
  assert.equal(decoderInto(out).push(encodeAll(sampleMessages)), null);
  assert.deepEqual(out, sampleMessages);
  const first = out[0] as { entries: Array<{ data: unknown }> };
  assert.equal(first.entries[0]?.data?.constructor, Uint8Array);
});

test('frames delivered one byte at a time decode to the same messages', () => {
  const stream = encodeAll(sampleMessages);
  const out: unknown[] = [];
  const decoder = decoderInto(out);
  for (let i = 0; i < stream.length; i++) assert.equal(decoder.push(stream.subarray(i, i + 1)), null);
  assert.deepEqual(out, sampleMessages);
  assert.equal(decoder.bufferedBytes, 0);
});

test('many frames in one chunk and frames split at random points all decode in order', () => {
  const messages = Array.from({ length: 2000 }, (_, i) => ({ seq: i, pad: 'x'.repeat(i % 300), bytes: new Uint8Array(i % 50) }));
  const stream = encodeAll(messages);
  const whole: unknown[] = [];
  assert.equal(decoderInto(whole).push(stream), null);
  assert.deepEqual(whole, messages);

  const prng = createPrng(11);
  const pieces: unknown[] = [];
  const decoder = decoderInto(pieces);
  for (let offset = 0; offset < stream.length; ) {
    const take = prng.intBetween(1, 700);
    assert.equal(decoder.push(stream.subarray(offset, offset + take)), null);
    offset += take;
  }
  assert.deepEqual(pieces, messages);
});

test('a frame announcing more than frameBytesMax is refused before its body arrives', () => {
  const out: unknown[] = [];
  const decoder = decoderInto(out, 64);
  const header = Buffer.alloc(4);
  header.writeUInt32BE(65, 0);
  const error = decoder.push(header) as FrameError;
  assert.equal(error.kind, 'tooLarge');
  assert.match(error.message, /65 bytes exceeds the limit of 64/);
  assert.equal(decoder.isStopped, true);
  assert.equal(decoder.push(encodeAll([{ a: 1 }])), null, 'a stopped decoder ignores input');
  assert.deepEqual(out, []);
});

test('the encoder refuses a message whose body exceeds frameBytesMax', () => {
  const encoder = new FrameEncoder({ frameBytesMax: 32 });
  assert.equal(encoder.encode({ data: new Uint8Array(64) }), null);
  assert.ok(encoder.encode({ data: new Uint8Array(8) }));
});

test('an empty or undecodable body kills the stream with a reason', () => {
  const empty = decoderInto([]).push(new Uint8Array([0, 0, 0, 0]));
  assert.equal(empty?.kind, 'empty');
  const truncatedArray = decoderInto([]).push(new Uint8Array([0, 0, 0, 2, 0x92, 0x01]));
  assert.equal(truncatedArray?.kind, 'undecodable');
});

test('the limit can be lowered for frames not yet started', () => {
  const out: unknown[] = [];
  const decoder = decoderInto(out, 1000);
  decoder.setFrameBytesMax(8);
  assert.equal(decoder.push(encodeAll([{ a: 1 }])), null);
  assert.equal(decoder.push(encodeAll([{ long: 'more than eight bytes' }]))?.kind, 'tooLarge');
  assert.deepEqual(out, [{ a: 1 }]);
});

test('a foreign 64-bit integer decodes to a number when safe and to a bigint otherwise', () => {
  // fixarray(2), uint64 2^53 - 1, uint64 2^60
  const body = Buffer.from([0x92, 0xcf, 0, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xcf, 0x10, 0, 0, 0, 0, 0, 0, 0]);
  const frame = Buffer.concat([Buffer.from([0, 0, 0, body.length]), body]);
  const out: unknown[] = [];
  assert.equal(decoderInto(out).push(frame), null);
  assert.deepEqual(out, [[Number.MAX_SAFE_INTEGER, 2n ** 60n]]);
});

test('with copyBinaries a decoded payload does not keep the receive chunk alive', () => {
  const chunk = encodeAll([{ data: new Uint8Array([9, 9, 9]) }]);
  for (const copyBinaries of [true, false]) {
    const out: Array<{ data: Uint8Array }> = [];
    new FrameDecoder({ frameBytesMax: 100, copyBinaries, onFrame: (m) => out.push(m as { data: Uint8Array }) }).push(chunk);
    assert.deepEqual(out[0]?.data, new Uint8Array([9, 9, 9]));
    assert.equal(out[0]?.data.buffer === chunk.buffer, !copyBinaries);
  }
});

test('a frame split over several chunks is decoded from a copy of its own: reusing the chunks changes nothing', () => {
  const payload = new Uint8Array(10_000).map((_, i) => i % 251);
  const stream = encodeAll([{ data: payload }, { data: new Uint8Array([1, 2, 3]) }]);
  const out: Array<{ data: Uint8Array }> = [];
  const decoder = new FrameDecoder({ frameBytesMax: 1 << 20, copyBinaries: true, onFrame: (m) => out.push(m as { data: Uint8Array }) });
  // The socket hands out chunks that it may reuse afterwards: push 1 KiB at a time through one buffer.
  const reused = new Uint8Array(1024);
  for (let offset = 0; offset < stream.length; offset += reused.length) {
    const piece = stream.subarray(offset, offset + reused.length);
    reused.set(piece);
    assert.equal(decoder.push(reused.subarray(0, piece.length)), null);
    reused.fill(0xee);
  }
  assert.equal(out.length, 2);
  assert.deepEqual(out[0]?.data, payload);
  assert.deepEqual(out[1]?.data, new Uint8Array([1, 2, 3]));
});
