/**
 * The peer wire format: each message is one frame, a uint32 big-endian body length then
 * a MessagePack body. This module owns encoding a message into one frame buffer and the
 * streaming decoder that turns arbitrary socket chunks (split or coalesced) back into
 * messages. It must never touch sockets, never keep state between frames beyond the one
 * partial frame being assembled, and never allocate for a frame longer than the limit.
 *
 * Codec choices (measured on Node 20 with msgpackr 2.1, see bench.ts for the transport):
 * - `useRecords: false`: plain MessagePack maps. Every frame decodes on its own, so frames
 *   queued while disconnected and sent on a later connection need no shared structure
 *   state. Inline records were 1.6x slower to encode and 2x slower to decode than maps;
 *   per-connection `sequential` structures would make small frames 2.5x smaller but
 *   would tie encoding to the connection a frame ends up on.
 * - Integers: msgpackr writes integers beyond 32 bits as float64, which is exact for
 *   every safe integer (|n| <= 2^53 - 1). A foreign encoder's int64/uint64 is decoded
 *   with `int64AsType: 'auto'`: a number when safe, otherwise a bigint, which the layers
 *   above reject (Number.isSafeInteger) instead of silently rounding.
 * - Binary: bodies are decoded from plain Uint8Array views (2x faster than Buffer views
 *   in msgpackr, and bin fields then come back as Uint8Array, not Buffer).
 *   `copyBinaries` copies each bin field out of the socket chunk: without it one retained
 *   entry payload pins a whole receive chunk (up to 64 KiB) in memory. A frame that spans
 *   chunks is assembled into a buffer of its own, and its bins stay views into that.
 * - Encoding reserves the 4 header bytes in msgpackr's own output buffer
 *   (RESERVE_START_SPACE), so a frame is one buffer and is never copied to add a header.
 */

import { FLOAT32_OPTIONS, Packr, Unpackr, RESERVE_START_SPACE } from 'msgpackr';
import type { Options as MsgpackrOptions } from 'msgpackr';

/** Bytes of the length prefix before every frame body. */
export const frameHeaderBytes = 4;

/** The largest body a uint32 length prefix can describe. */
export const frameBodyBytesLimit = 0xffff_ffff;

export interface FrameCodecOptions {
  /** Largest body accepted or produced, in bytes (header excluded). */
  readonly frameBytesMax: number;
  /** Copy decoded bin fields out of the receive buffer (see module comment). */
  readonly copyBinaries: boolean;
}

function checkFrameBytesMax(frameBytesMax: number): void {
  if (!Number.isSafeInteger(frameBytesMax) || frameBytesMax < 1 || frameBytesMax > frameBodyBytesLimit) {
    throw new RangeError(`frameBytesMax must be an integer in [1, ${frameBodyBytesLimit}], got ${frameBytesMax}`);
  }
}

/**
 * Encodes messages into frames. One instance may serve many connections: with
 * `useRecords: false` msgpackr keeps no per-stream state.
 */
export class FrameEncoder {
  private readonly packr = new Packr({
    useRecords: false,
    moreTypes: false,
    structuredClone: false,
    bundleStrings: false,
    useFloat32: FLOAT32_OPTIONS.NEVER,
    variableMapSize: false,
  });
  readonly frameBytesMax: number;

  constructor(options: { readonly frameBytesMax: number }) {
    checkFrameBytesMax(options.frameBytesMax);
    this.frameBytesMax = options.frameBytesMax;
  }

  /**
   * Returns header + body in one buffer, or null when the body would exceed
   * frameBytesMax (the caller drops the message). The buffer is a view into msgpackr's
   * output arena: it stays valid (msgpackr never rewrites packed bytes) and the caller
   * owns it. Throws only for values MessagePack cannot carry (a programmer error).
   */
  encode(message: unknown): Buffer | null {
    const frame = this.packr.pack(message, RESERVE_START_SPACE | frameHeaderBytes);
    const bodyBytes = frame.length - frameHeaderBytes;
    if (bodyBytes > this.frameBytesMax) return null;
    frame.writeUInt32BE(bodyBytes, 0);
    return frame;
  }
}

/** Why a byte stream can no longer be decoded; the connection must be closed. */
export interface FrameError {
  readonly kind: 'tooLarge' | 'empty' | 'undecodable';
  readonly message: string;
}

/**
 * Turns a byte stream into messages. Frames that lie wholly inside one chunk are decoded
 * in place (no copy); only a frame split across chunks is assembled, into one buffer of
 * exactly its length allocated once its header is known. After an error the decoder is
 * dead: `push` ignores further input.
 */
export class FrameDecoder {
  private readonly unpackr: Unpackr;
  /** Decodes a body this decoder assembled: its bins may be views (the body is nobody else's). */
  private readonly ownBodyUnpackr: Unpackr;
  private readonly onFrame: (message: unknown) => void;
  /** Current body limit; may be lowered, e.g. while a connection is unauthenticated. */
  private bodyBytesMax: number;
  private readonly header = new Uint8Array(frameHeaderBytes);
  private headerFilledBytes = 0;
  private body: Uint8Array | null = null;
  private bodyFilledBytes = 0;
  private stopped = false;

  constructor(options: FrameCodecOptions & { readonly onFrame: (message: unknown) => void }) {
    checkFrameBytesMax(options.frameBytesMax);
    this.bodyBytesMax = options.frameBytesMax;
    this.onFrame = options.onFrame;
    const unpackrOptions: MsgpackrOptions = {
      useRecords: false,
      mapsAsObjects: true,
      moreTypes: false,
      structuredClone: false,
      bundleStrings: false,
      // 'auto' is supported at run time but missing from msgpackr's typings.
      int64AsType: 'auto' as NonNullable<MsgpackrOptions['int64AsType']>,
    };
    this.unpackr = new Unpackr({ ...unpackrOptions, copyBuffers: options.copyBinaries });
    // A frame longer than the socket chunk it began in is assembled into a buffer of its own
    // (a snapshot chunk, a large batch): a view into that pins only the frame, so its bins are
    // not copied a second time (a 256 KiB snapshot chunk was, at 0.3 µs per KiB).
    this.ownBodyUnpackr = new Unpackr({ ...unpackrOptions, copyBuffers: false });
  }

  /** Changes the body limit for frames whose header has not been read yet. */
  setFrameBytesMax(frameBytesMax: number): void {
    checkFrameBytesMax(frameBytesMax);
    this.bodyBytesMax = frameBytesMax;
  }

  /** Stops decoding, e.g. from inside onFrame after a rejected handshake. */
  stop(): void {
    this.stopped = true;
    this.body = null;
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** Bytes held for a partial frame (header or body). */
  get bufferedBytes(): number {
    return this.body === null ? this.headerFilledBytes : frameHeaderBytes + this.bodyFilledBytes;
  }

  /**
   * Feeds the next chunk of the stream; calls onFrame for every complete message, in
   * order. Returns null, or the error that killed the stream (the caller closes the
   * connection). The chunk is not retained unless `copyBinaries` is false, in which case
   * decoded bin fields are views into it. A frame assembled from several chunks is copied
   * once into a buffer of its own, and its bin fields are views into that. Exceptions thrown by onFrame propagate: they
   * are the receiver's bugs, not stream errors.
   */
  push(chunk: Uint8Array): FrameError | null {
    if (this.stopped) return null;
    // A plain Uint8Array view: msgpackr then decodes faster and returns Uint8Array bins.
    const bytes =
      chunk.constructor === Uint8Array ? chunk : new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const end = bytes.length;
    let offset = 0;
    while (offset < end && !this.stopped) {
      if (this.body !== null) {
        // Continue assembling a frame that started in an earlier chunk.
        const needed = this.body.length - this.bodyFilledBytes;
        const taken = Math.min(needed, end - offset);
        this.body.set(bytes.subarray(offset, offset + taken), this.bodyFilledBytes);
        this.bodyFilledBytes += taken;
        offset += taken;
        if (this.bodyFilledBytes < this.body.length) return null;
        const body = this.body;
        this.body = null;
        this.bodyFilledBytes = 0;
        const error = this.decode(body, this.ownBodyUnpackr);
        if (error !== null) return error;
        continue;
      }

      let bodyBytes: number;
      if (this.headerFilledBytes === 0 && end - offset >= frameHeaderBytes) {
        bodyBytes = readUint32(bytes, offset);
        offset += frameHeaderBytes;
      } else {
        const taken = Math.min(frameHeaderBytes - this.headerFilledBytes, end - offset);
        this.header.set(bytes.subarray(offset, offset + taken), this.headerFilledBytes);
        this.headerFilledBytes += taken;
        offset += taken;
        if (this.headerFilledBytes < frameHeaderBytes) return null;
        this.headerFilledBytes = 0;
        bodyBytes = readUint32(this.header, 0);
      }

      if (bodyBytes > this.bodyBytesMax) {
        return this.fail('tooLarge', `frame body of ${bodyBytes} bytes exceeds the limit of ${this.bodyBytesMax} bytes`);
      }
      if (bodyBytes === 0) return this.fail('empty', 'frame with an empty body (a MessagePack value is at least 1 byte)');

      if (end - offset >= bodyBytes) {
        // The whole body is in this chunk: decode it in place.
        const error = this.decode(bytes.subarray(offset, offset + bodyBytes), this.unpackr);
        offset += bodyBytes;
        if (error !== null) return error;
      } else {
        // Not zero-filled: every byte is written before the body is decoded.
        const owned = Buffer.allocUnsafeSlow(bodyBytes);
        this.body = new Uint8Array(owned.buffer, owned.byteOffset, bodyBytes);
        this.body.set(bytes.subarray(offset), 0);
        this.bodyFilledBytes = end - offset;
        offset = end;
      }
    }
    return null;
  }

  private decode(body: Uint8Array, unpackr: Unpackr): FrameError | null {
    let message: unknown;
    try {
      message = unpackr.unpack(body);
    } catch (error) {
      return this.fail('undecodable', `undecodable frame body of ${body.length} bytes: ${String(error)}`);
    }
    this.onFrame(message);
    return null;
  }

  private fail(kind: FrameError['kind'], message: string): FrameError {
    this.stop();
    return { kind, message };
  }
}

function readUint32(bytes: Uint8Array, offset: number): number {
  return (
    ((bytes[offset] as number) * 0x100_0000 +
      (((bytes[offset + 1] as number) << 16) | ((bytes[offset + 2] as number) << 8) | (bytes[offset + 3] as number))) >>>
    0
  );
}
