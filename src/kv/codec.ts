/**
 * Byte encodings of state-machine commands (the payload of `normal` log entries) and of
 * results (the replies cached in the dedup table). Owns the layout of both and checks it
 * at both ends: the encoder refuses anything the decoder would refuse, so a command that
 * was accepted into the log always decodes, and a decoder failure means corruption.
 *
 * Must never: depend on state shared between calls (msgpackr record structures), encode
 * the same value two ways, let an integer past 2^53 or a negative one through, or accept
 * what no replica could store (an empty key, an empty or oversized client id, a string
 * with a lone surrogate). Configurable size limits are not its business (limits.ts).
 *
 * Layout: a MessagePack array with a format tag first, fields by position, null for an
 * absent optional field. Positions instead of map keys make the bytes independent of the
 * caller's property order (same command -> same bytes) and keep entries small.
 *   command v1: [1, 'put', key, value, ifVersion|null, clientId|null, seq|null]
 *               [1, 'delete', key, null, ifVersion|null, clientId|null, seq|null]
 *   result v1:  [1, 'put', key, version]
 *               [1, 'delete', key, version, deleted]
 *               [1, 'version_conflict', key, expectedVersion, actualVersion]
 *               [1, 'stale_request', key, lastSeq]   (key '' for a transaction)
 *               [1, 'put', key, value, ifVersion|null, clientId|null, seq|null, lease|null, ttlMs|null]
 *               (a put with a lease: one of the last two set)
 *               [1, 'lease-grant', ttlMs, null, null, clientId|null, seq|null]
 *               [1, 'lease-revoke', id, 'revoked'|'expired', null, clientId|null, seq|null]
 *               [1, 'compact', beforeVersion, null, null, clientId|null, seq|null]
 *   results:    [1, 'put', key, version, lease]   (a put that attached a lease)
 *               [1, 'lease_not_found', key, lease]
 *               [1, 'lease-grant', id, ttlMs, version]
 *               [1, 'lease-revoke', id, found, keysDeleted, version]
 *               [1, 'compact', compactedBelow, removed, version]
 *   txn v1:     [1, 'txn', compare[], success[], failure[], clientId|null, seq|null]
 *   txn result: [1, 'txn', succeeded, version, opResult[]]   (inner layouts: txn-codec.ts)
 * A string value is a MessagePack str, a byte value a bin, so the type survives.
 */

import { FLOAT32_OPTIONS, Packr } from 'msgpackr';
import { ByteArena } from '../stdx/byte-arena.js';
import { checkIndex, checkString, checkValue, copyBytes, describe, errorMessage, KvCodecError, optionalIndex } from './codec-checks.js';
import { validateClientId } from './limits.js';
import { txnFromFields, txnResultFromFields, txnResultToFields, txnToFields } from './txn-codec.js';
import type { Command, CommandResult, CompactCommand, KvCommand, LeaseCommand, RequestId, TxnCommand } from './types.js';
import type { KvValue } from '../storage/types.js';

export { KvCodecError };

const FORMAT_V1 = 1;

// Every option that changes bytes or decoded types is spelled out (STYLE.md habit 14).
const packr = new Packr({
  // Plain MessagePack arrays/maps: no record structures shared between messages.
  useRecords: false,
  sequential: false,
  bundleStrings: false,
  // Only standard types: a Uint8Array is a bin, nothing else gets an extension.
  moreTypes: false,
  structuredClone: false,
  // Non-integers stay float64 (and are then refused). msgpackr writes integers above
  // 2^32 as float64, exact up to 2^53, never as uint64; so a (u)int64 in the input is not
  // ours: it decodes to a bigint and is refused rather than silently rounded to a number.
  useFloat32: FLOAT32_OPTIONS.NEVER,
  int64AsType: 'bigint',
  mapsAsObjects: true,
  encodeUndefinedAsNil: false,
  // Decoded bins are copied below into standalone Uint8Arrays (see copyBytes).
  copyBuffers: false,
});

/**
 * Where encoded commands are copied to: they become log entries, which the leader keeps until
 * compaction frees them oldest first.
 */
const entryBytes = new ByteArena();

export function encodeCommand(cmd: Command): Uint8Array {
  const requestId = cmd.requestId;
  const ids = [requestId?.clientId ?? null, requestId?.seq ?? null];
  let tuple: unknown[];
  switch (cmd.op) {
    case 'txn':
      tuple = [FORMAT_V1, 'txn', ...txnToFields(cmd), ...ids];
      break;
    case 'lease-grant':
      tuple = [FORMAT_V1, 'lease-grant', cmd.ttlMs, null, null, ...ids];
      break;
    case 'lease-revoke':
      tuple = [FORMAT_V1, 'lease-revoke', cmd.id, cmd.reason, null, ...ids];
      break;
    case 'compact':
      tuple = [FORMAT_V1, 'compact', cmd.beforeVersion, null, null, ...ids];
      break;
    case 'put':
      tuple = [FORMAT_V1, 'put', cmd.key, cmd.value, cmd.ifVersion ?? null, ...ids];
      // Only a put with a lease has the two extra fields: every other put keeps its bytes.
      if (cmd.lease !== undefined || cmd.ttlMs !== undefined) tuple.push(cmd.lease ?? null, cmd.ttlMs ?? null);
      break;
    case 'delete':
      tuple = [FORMAT_V1, 'delete', cmd.key, null, cmd.ifVersion ?? null, ...ids];
      break;
  }
  // Check the same shape the decoder checks, so a bad command fails its proposer instead
  // of crashing every replica that applies it.
  commandFromTuple(tuple, 'encode command', false);
  return packTuple(tuple, 'command', entryBytes);
}

export function decodeCommand(data: Uint8Array): Command {
  return commandFromTuple(unpackTuple(data, 'command'), 'decode command', true);
}

/** Text values at least this long are kept as their UTF-8 bytes by `decodeCommandForApply`. */
const lazyTextBytesMin = 1024;
/** The UTF-8 bytes of a put's text value, for commands from `decodeCommandForApply`. */
const putTexts = new WeakMap<Command, Uint8Array>();

/**
 * `decodeCommand` for the state machine: a put's long text value is not turned into a string
 * (a V8 large object past 128 KiB: fresh pages each time) but kept as the entry's UTF-8 bytes
 * (`putTextOf`), which become the stored record as they are. `value` still reads as the
 * string, decoded on first use exactly as `decodeCommand` would.
 */
export function decodeCommandForApply(data: Uint8Array): Command {
  const text = putTextSpan(data);
  if (text === null) return decodeCommand(data);
  // The same bytes with an empty text in the value's place: every other field decodes and
  // is checked as usual.
  const shell = new Uint8Array(data.byteLength - (text.end - text.headerStart) + 1);
  shell.set(data.subarray(0, text.headerStart), 0);
  shell[text.headerStart] = 0xa0;
  shell.set(data.subarray(text.end), text.headerStart + 1);
  const command = decodeCommand(shell);
  let value: KvValue | undefined;
  Object.defineProperty(command, 'value', {
    enumerable: true,
    // The whole entry, decoded (and checked) as decodeCommand always does.
    get: (): KvValue => (value ??= (decodeCommand(data) as KvCommand & { op: 'put' }).value),
  });
  putTexts.set(command, data.subarray(text.start, text.end));
  return command;
}

/** The UTF-8 bytes of the text value of a put that `decodeCommandForApply` decoded, or undefined. */
export function putTextOf(command: Command): Uint8Array | undefined {
  return putTexts.get(command);
}

/** Where a put's text value lies in its encoding ([1, 'put', key, value, …]), when it is long enough to keep as bytes. */
function putTextSpan(data: Uint8Array): { headerStart: number; start: number; end: number } | null {
  // fixarray of 7 or 9, format 1, fixstr "put"
  if ((data[0] !== 0x97 && data[0] !== 0x99) || data[1] !== 0x01 || data[2] !== 0xa3 || data[3] !== 0x70 || data[4] !== 0x75 || data[5] !== 0x74) return null;
  const key = strSpan(data, 6);
  if (key === null) return null;
  const value = strSpan(data, key.end);
  if (value === null || value.end - value.start < lazyTextBytesMin) return null;
  return { headerStart: key.end, start: value.start, end: value.end };
}

/** The bytes of the MessagePack str at `at` (null if none is there, or it runs past the end). */
function strSpan(data: Uint8Array, at: number): { start: number; end: number } | null {
  const b = data[at];
  // The length follows the type byte in 0 (fixstr: in the type byte), 1, 2 or 4 bytes, big-endian.
  const lengthBytes = b === undefined ? -1 : b >= 0xa0 && b <= 0xbf ? 0 : b === 0xd9 ? 1 : b === 0xda ? 2 : b === 0xdb ? 4 : -1;
  const start = at + 1 + lengthBytes;
  if (lengthBytes < 0 || start > data.length) return null;
  let length = lengthBytes === 0 ? (b as number) & 0x1f : 0;
  for (let i = at + 1; i < start; i++) length = length * 256 + (data[i] as number);
  return start + length <= data.length ? { start, end: start + length } : null;
}

export function encodeResult(result: CommandResult): Uint8Array {
  let tuple: unknown[];
  if (result.ok) {
    switch (result.op) {
      case 'txn':
        tuple = [FORMAT_V1, 'txn', ...txnResultToFields(result.succeeded, result.version, result.results)];
        break;
      case 'put':
        tuple = result.lease === undefined ? [FORMAT_V1, 'put', result.key, result.version] : [FORMAT_V1, 'put', result.key, result.version, result.lease];
        break;
      case 'delete':
        tuple = [FORMAT_V1, 'delete', result.key, result.version, result.deleted];
        break;
      case 'lease-grant':
        tuple = [FORMAT_V1, 'lease-grant', result.id, result.ttlMs, result.version];
        break;
      case 'lease-revoke':
        tuple = [FORMAT_V1, 'lease-revoke', result.id, result.found, result.keysDeleted, result.version];
        break;
      case 'compact':
        tuple = [FORMAT_V1, 'compact', result.compactedBelow, result.removed, result.version];
        break;
    }
  } else if (result.error === 'version_conflict') {
    tuple = [FORMAT_V1, 'version_conflict', result.key, result.expectedVersion, result.actualVersion];
  } else if (result.error === 'lease_not_found') {
    tuple = [FORMAT_V1, 'lease_not_found', result.key, result.lease];
  } else {
    tuple = [FORMAT_V1, 'stale_request', result.key, result.lastSeq];
  }
  resultFromTuple(tuple, 'encode result');
  return packTuple(tuple, 'result');
}

export function decodeResult(data: Uint8Array): CommandResult {
  return resultFromTuple(unpackTuple(data, 'result'), 'decode result');
}

/**
 * MessagePack with this codec's options (history.ts stores its records with it). Bytes that
 * die in about the order they are made may be copied out of `arena` (stdx/byte-arena.ts);
 * the rest get memory of their own.
 */
export function packTuple(tuple: unknown[], what: string, arena?: ByteArena): Uint8Array {
  let packed: Uint8Array;
  try {
    packed = packr.pack(tuple);
  } catch (cause) {
    throw new KvCodecError(`Cannot encode ${what}: ${errorMessage(cause)}`, { cause });
  }
  // msgpackr returns a view into its reusable output buffer, so the bytes are copied out:
  // never into Node's 8 KiB Buffer pool, which one stored entry or reply would keep alive.
  return arena === undefined ? copyBytes(packed) : arena.copy(packed);
}

export function unpackTuple(data: Uint8Array, what: string): unknown {
  if (!(data instanceof Uint8Array)) {
    throw new KvCodecError(`Cannot decode ${what}: expected a Uint8Array, got ${describe(data)}`);
  }
  try {
    // Throws on truncated input and on trailing bytes after the first value. msgpackr
    // caches a DataView as a property of the array it reads, so it reads a fresh view:
    // the caller's array (a log entry's data) is left exactly as it was.
    return packr.unpack(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  } catch (cause) {
    throw new KvCodecError(`Cannot decode ${what} (${data.byteLength} bytes): ${errorMessage(cause)}`, { cause });
  }
}

/** `copyValue`: give a byte value its own buffer (decode) rather than check it only (encode). */
function commandFromTuple(tuple: unknown, context: string, copyValue: boolean): Command {
  const fields = checkTuple(tuple, [7, 9], context);
  const op = fields[1];
  if (fields.length === 9 && op !== 'put') throw new KvCodecError(`Cannot ${context}: only a put has 9 fields`);
  if (op === 'txn' || op === 'lease-grant' || op === 'lease-revoke' || op === 'compact') {
    const requestId = requestIdFrom(fields[5], fields[6], context);
    const command =
      op === 'txn' ? ({ op, ...txnFromFields(fields.slice(2, 5), context, copyValue) } satisfies TxnCommand) : op === 'compact' ? compactCommandFrom(fields, context) : leaseCommandFrom(op, fields, context);
    return requestId === null ? command : { ...command, requestId };
  }
  const key = checkString(fields[2], 'key', context);
  if (key.length === 0) throw new KvCodecError(`Cannot ${context}: key must not be empty`);
  const ifVersion = optionalIndex(fields[4], 'ifVersion', context);
  const requestId = requestIdFrom(fields[5], fields[6], context);
  if (op === 'put') {
    const checked = checkValue(fields[3], context);
    // A bin decodes as a Buffer viewing the entry's bytes; a stored value gets a plain
    // Uint8Array of its own, so it neither aliases a (reusable) log buffer nor differs in
    // prototype from the value that was proposed.
    const value = copyValue && typeof checked !== 'string' ? copyBytes(checked) : checked;
    const lease = fields.length === 9 ? optionalIndex(fields[7], 'lease', context) : null;
    const ttlMs = fields.length === 9 ? optionalIndex(fields[8], 'ttlMs', context) : null;
    if (fields.length === 9 && (lease === null) === (ttlMs === null)) throw new KvCodecError(`Cannot ${context}: a put takes a lease or a ttlMs, not both or neither`);
    if (ttlMs !== null && ttlMs < 1) throw new KvCodecError(`Cannot ${context}: ttlMs must be at least 1`);
    return {
      op,
      key,
      value,
      ...(ifVersion === null ? {} : { ifVersion }),
      ...(lease === null ? {} : { lease }),
      ...(ttlMs === null ? {} : { ttlMs }),
      ...(requestId === null ? {} : { requestId }),
    };
  }
  if (op === 'delete') {
    if (fields[3] !== null) {
      throw new KvCodecError(`Cannot ${context}: a delete carries no value, got ${describe(fields[3])}`);
    }
    return {
      op,
      key,
      ...(ifVersion === null ? {} : { ifVersion }),
      ...(requestId === null ? {} : { requestId }),
    };
  }
  throw new KvCodecError(`Cannot ${context}: op must be 'put' or 'delete', got ${describe(op)}`);
}

function resultFromTuple(tuple: unknown, context: string): CommandResult {
  const fields = checkTuple(tuple, [4, 5, 6], context);
  const kind = fields[1];
  const lengthIs = (length: number): void => {
    if (fields.length !== length) throw new KvCodecError(`Cannot ${context}: a '${String(kind)}' result has ${length} fields, got ${fields.length}`);
  };
  switch (kind) {
    case 'txn':
      lengthIs(5);
      return { ok: true, op: 'txn', ...txnResultFromFields(fields.slice(2), context) };
    case 'lease-grant':
      lengthIs(5);
      return { ok: true, op: kind, id: checkIndex(fields[2], 'id', context), ttlMs: checkIndex(fields[3], 'ttlMs', context), version: checkIndex(fields[4], 'version', context) };
    case 'compact':
      lengthIs(5);
      return { ok: true, op: kind, compactedBelow: checkIndex(fields[2], 'compactedBelow', context), removed: checkIndex(fields[3], 'removed', context), version: checkIndex(fields[4], 'version', context) };
    case 'lease-revoke': {
      lengthIs(6);
      const found = fields[3];
      if (typeof found !== 'boolean') throw new KvCodecError(`Cannot ${context}: found must be a boolean, got ${describe(found)}`);
      return { ok: true, op: kind, id: checkIndex(fields[2], 'id', context), found, keysDeleted: checkIndex(fields[4], 'keysDeleted', context), version: checkIndex(fields[5], 'version', context) };
    }
    default:
      break;
  }
  const key = checkString(fields[2], 'key', context);
  const expectLength = (length: number): void => {
    if (fields.length !== length) {
      throw new KvCodecError(`Cannot ${context}: a '${String(kind)}' result has ${length} fields, got ${fields.length}`);
    }
  };
  switch (kind) {
    case 'put': {
      if (fields.length > 5) throw new KvCodecError(`Cannot ${context}: a 'put' result has 4 or 5 fields, got ${fields.length}`);
      const version = checkIndex(fields[3], 'version', context);
      return fields.length === 4 ? { ok: true, op: 'put', key, version } : { ok: true, op: 'put', key, version, lease: checkIndex(fields[4], 'lease', context) };
    }
    case 'lease_not_found':
      expectLength(4);
      return { ok: false, error: 'lease_not_found', key, lease: checkIndex(fields[3], 'lease', context) };
    case 'delete': {
      expectLength(5);
      const deleted = fields[4];
      if (typeof deleted !== 'boolean') {
        throw new KvCodecError(`Cannot ${context}: deleted must be a boolean, got ${describe(deleted)}`);
      }
      return { ok: true, op: 'delete', key, version: checkIndex(fields[3], 'version', context), deleted };
    }
    case 'version_conflict':
      expectLength(5);
      return {
        ok: false,
        error: 'version_conflict',
        key,
        expectedVersion: checkIndex(fields[3], 'expectedVersion', context),
        actualVersion: checkIndex(fields[4], 'actualVersion', context),
      };
    case 'stale_request':
      expectLength(4);
      return { ok: false, error: 'stale_request', key, lastSeq: checkIndex(fields[3], 'lastSeq', context) };
    default:
      throw new KvCodecError(
        `Cannot ${context}: kind must be put, delete, version_conflict or stale_request, got ${describe(kind)}`,
      );
  }
}

function checkTuple(tuple: unknown, lengths: readonly number[], context: string): unknown[] {
  if (!Array.isArray(tuple)) {
    throw new KvCodecError(`Cannot ${context}: expected an array, got ${describe(tuple)}`);
  }
  const fields = tuple as unknown[];
  if (!lengths.includes(fields.length)) {
    throw new KvCodecError(`Cannot ${context}: expected ${lengths.join(' or ')} fields, got ${fields.length}`);
  }
  if (fields[0] !== FORMAT_V1) {
    throw new KvCodecError(`Cannot ${context}: unknown format ${describe(fields[0])}, expected ${FORMAT_V1}`);
  }
  return fields;
}

function requestIdFrom(clientId: unknown, seq: unknown, context: string): RequestId | null {
  if (clientId === null && seq === null) return null;
  if (clientId === null || seq === null) {
    throw new KvCodecError(`Cannot ${context}: requestId needs both clientId and seq, got ${describe(clientId)} and ${describe(seq)}`);
  }
  const id = checkString(clientId, 'requestId.clientId', context);
  // Bounded so every replica can store it as a dedup-table key (see clientIdBytesMax).
  const problem = validateClientId(id);
  if (problem !== null) throw new KvCodecError(`Cannot ${context}: requestId.clientId: ${problem.message}`);
  return { clientId: id, seq: checkIndex(seq, 'requestId.seq', context) };
}

function leaseCommandFrom(op: 'lease-grant' | 'lease-revoke', fields: readonly unknown[], context: string): LeaseCommand {
  if (fields[4] !== null) throw new KvCodecError(`Cannot ${context}: a ${op} has no field 4, got ${describe(fields[4])}`);
  if (op === 'lease-grant') {
    if (fields[3] !== null) throw new KvCodecError(`Cannot ${context}: a lease-grant has no field 3, got ${describe(fields[3])}`);
    const ttlMs = checkIndex(fields[2], 'ttlMs', context);
    if (ttlMs < 1) throw new KvCodecError(`Cannot ${context}: ttlMs must be at least 1`);
    return { op, ttlMs };
  }
  const reason = fields[3];
  if (reason !== 'revoked' && reason !== 'expired') throw new KvCodecError(`Cannot ${context}: reason must be 'revoked' or 'expired', got ${describe(reason)}`);
  return { op, id: checkIndex(fields[2], 'id', context), reason };
}

function compactCommandFrom(fields: readonly unknown[], context: string): CompactCommand {
  if (fields[3] !== null || fields[4] !== null) throw new KvCodecError(`Cannot ${context}: a compact has no fields 3 and 4`);
  const beforeVersion = checkIndex(fields[2], 'beforeVersion', context);
  if (beforeVersion < 1) throw new KvCodecError(`Cannot ${context}: beforeVersion must be at least 1`);
  return { op: 'compact', beforeVersion };
}
