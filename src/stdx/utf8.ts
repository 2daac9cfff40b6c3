/**
 * UTF-8 facts about JS strings, computed over their UTF-16 code units without encoding
 * them: byte length, byte order and whether a UTF-8 form exists at all. The one definition
 * of each for the whole tree, so that the request path's limits (kv/), the stored key order
 * and the storage size accounting (storage/) cannot disagree about a string.
 *
 * Must never: allocate per character, depend on the platform's encoder (TextEncoder,
 * Buffer), or import anything.
 */

/**
 * Length of `text` encoded as UTF-8. A lone surrogate counts 3 bytes, as encoders
 * (TextEncoder, Buffer) replace it with U+FFFD.
 */
export function utf8Length(text: string): number {
  return utf8LengthUpTo(text, Number.MAX_SAFE_INTEGER);
}

/**
 * Whether `text` is longer than `bytesMax` bytes of UTF-8, scanning only when the answer
 * is not already decided by its length: every UTF-16 code unit takes 1 to 3 bytes (a
 * surrogate pair: 2 units, 4 bytes), so length > bytesMax means too large for sure and
 * length * 3 <= bytesMax means small enough for sure. This keeps the request path cheap.
 */
export function utf8LengthExceeds(text: string, bytesMax: number): boolean {
  if (text.length > bytesMax) return true;
  if (text.length * 3 <= bytesMax) return false;
  return utf8LengthUpTo(text, bytesMax) > bytesMax;
}

/** UTF-8 length of `text`, or some count above `stopAbove` as soon as it passes it. */
function utf8LengthUpTo(text: string, stopAbove: number): number {
  const length = text.length;
  // Every UTF-16 unit takes at least one byte; a long text is measured natively (the same
  // count: a lone surrogate takes 3 bytes, as its replacement character does), not in a loop.
  if (length > stopAbove) return length;
  if (length >= 256) return Buffer.byteLength(text, 'utf8');
  let bytes = 0;
  for (let i = 0; i < length && bytes <= stopAbove; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) {
      bytes += 1;
    } else if (code < 0x800) {
      bytes += 2;
    } else if (code >= 0xd800 && code <= 0xdbff && i + 1 < length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 4;
        i++;
      } else {
        bytes += 3;
      }
    } else {
      bytes += 3;
    }
  }
  return bytes;
}

// With the `u` flag the regex walks code points, so a proper surrogate pair is one astral
// code point and only a lone surrogate can match the Cs (surrogate) category.
const LONE_SURROGATE = /\p{Cs}/u;

/**
 * True when `text` has no lone surrogate, i.e. it is valid Unicode and has a UTF-8
 * encoding (one that decodes back to the same string). Native and linear;
 * String.prototype.isWellFormed is not in this project's TS lib.
 */
export function isWellFormed(text: string): boolean {
  return !LONE_SURROGATE.test(text);
}

/**
 * Orders strings as their UTF-8 encodings compare bytewise (that is, by code point).
 * UTF-16 code unit order agrees except that surrogates (code points >= 0x10000) must sort
 * after U+E000..U+FFFF; remapping the first differing unit fixes exactly that.
 */
export function compareUtf8(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return utf8Rank(x) - utf8Rank(y);
  }
  return a.length - b.length;
}

function utf8Rank(codeUnit: number): number {
  if (codeUnit < 0xd800) return codeUnit;
  return codeUnit >= 0xe000 ? codeUnit - 0x800 : codeUnit + 0x2000;
}
