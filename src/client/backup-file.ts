/**
 * The backup file format and the backup stream records it is made of. Owns: record shapes
 * and their strict validation, the writer (records -> checksummed file, written under a
 * temporary name and renamed only when complete) and the reader that verifies a file
 * before anything is done with it (`quorumkv restore` verifies the whole file first).
 *
 * Format (version 1): UTF-8 text, one JSON record per line, `\n` after every line.
 *   {"type":"header","format":"quorumkv-backup","formatVersion":1,"nodeId":…,"clusterId":…,
 *    "index":I,"term":T,"config":{"members":[…],"writeQuorum":…,"topology":…},"createdAt":…}
 *   {"type":"chunk","seq":0,"items":[[key,value,version],…],"dedup":[[clientId,seq,index,replyBase64],…]}
 *   … more chunks, seq 0, 1, 2, … …
 *   {"type":"end","chunks":C,"items":N,"dedup":D}
 *   {"type":"sha256","sha256":"<hex SHA-256 of every byte before this line>"}
 * A value is one of:
 *   - a JSON string, for a text value;
 *   - {"base64":"…"}, for a byte value;
 *   - a value stored in its value row: {"inRow": true}; the value row is a reserved item of
 *     the same backup (a value of 2 KiB or more lives in a row of its own, kv/value-rows.ts),
 *     and restore writes both back as they were.
 * The state is the state machine at log index I: every key with the version that wrote it
 * (reserved keys, such as value rows, included), and the client dedup table (so idempotent
 * retries stay idempotent across a restore).
 *
 * {"inRow": true} came without a new format version: backups made before value rows never
 * contain it, so every older backup still reads as it did. A reader from before value rows
 * refuses a backup that contains it (its strict check knows only strings and base64), which
 * is acceptable: it fails whole and loudly, and never restores a value as empty.
 *
 * The HTTP route `GET /backup` streams the header (without createdAt), chunk and end records
 * in the same syntax (NDJSON); the gRPC `Backup` call streams the same records as messages.
 *
 * Must never: leave a file under the final name that is not complete and verified, or accept
 * a record that is not exactly of its shape (unknown fields, unsafe integers, bad order).
 */

import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';

export const backupFormat = 'quorumkv-backup';
export const backupFormatVersion = 1;

/** A value as a backup stores it: text, bytes as base64, or "in its value row". */
export type BackupValue = string | { readonly base64: string } | { readonly inRow: true };
/** [key, value, version]. */
export type BackupItem = readonly [string, BackupValue, number];
/** [clientId, seq, index, reply (base64)]. */
export type BackupDedup = readonly [string, number, number, string];

export interface BackupConfig {
  readonly members: readonly string[];
  readonly writeQuorum: 'majority' | 'all' | number;
  readonly topology: 'star' | 'chain';
}

export interface BackupHeader {
  readonly type: 'header';
  readonly format: typeof backupFormat;
  readonly formatVersion: typeof backupFormatVersion;
  readonly nodeId: string;
  readonly clusterId: string;
  readonly index: number;
  readonly term: number;
  readonly config: BackupConfig;
  /** ISO time the file was written (absent in the node's stream). */
  readonly createdAt?: string;
}

export interface BackupChunk {
  readonly type: 'chunk';
  readonly seq: number;
  readonly items: readonly BackupItem[];
  readonly dedup: readonly BackupDedup[];
}

export interface BackupEnd {
  readonly type: 'end';
  readonly chunks: number;
  readonly items: number;
  readonly dedup: number;
}

export type BackupRecord = BackupHeader | BackupChunk | BackupEnd;

/** A backup stream or file that is not well-formed. */
export class BackupFormatError extends Error {
  override name = 'BackupFormatError';
}

// --- validation --------------------------------------------------------------------------

function fail(what: string): never {
  throw new BackupFormatError(what);
}

function isIndex(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function onlyFields(record: Record<string, unknown>, allowed: readonly string[], what: string): void {
  for (const name of Object.keys(record)) {
    if (!allowed.includes(name)) fail(`${what} has an unknown field ${JSON.stringify(name)}`);
  }
}

function checkConfig(value: unknown): BackupConfig {
  if (typeof value !== 'object' || value === null) fail('header config must be an object');
  const c = value as Record<string, unknown>;
  onlyFields(c, ['members', 'writeQuorum', 'topology'], 'header config');
  const members = c['members'];
  if (!Array.isArray(members) || members.length === 0 || !members.every((m) => typeof m === 'string' && m.length > 0)) {
    fail('header config members must be a non-empty list of node ids');
  }
  const wq = c['writeQuorum'];
  if (wq !== 'majority' && wq !== 'all' && !isIndex(wq)) fail(`header config writeQuorum ${JSON.stringify(wq)} is not majority, all or a count`);
  const topology = c['topology'];
  if (topology !== 'star' && topology !== 'chain') fail(`header config topology ${JSON.stringify(topology)} is not star or chain`);
  return { members: members as string[], writeQuorum: wq, topology };
}

function checkItem(value: unknown, where: string): BackupItem {
  if (!Array.isArray(value) || value.length !== 3) fail(`${where}: an item must be [key, value, version]`);
  const [key, v, version] = value as unknown[];
  if (typeof key !== 'string' || key.length === 0) fail(`${where}: item key must be a non-empty string`);
  if (!isIndex(version) || version === 0) fail(`${where}: item ${JSON.stringify(key)} has version ${String(version)}`);
  if (typeof v === 'string') return [key, v, version];
  if (typeof v === 'object' && v !== null && Object.keys(v).length === 1 && typeof (v as { base64?: unknown }).base64 === 'string') {
    return [key, { base64: (v as { base64: string }).base64 }, version];
  }
  if (typeof v === 'object' && v !== null && Object.keys(v).length === 1 && (v as { inRow?: unknown }).inRow === true) return [key, { inRow: true }, version];
  return fail(`${where}: item ${JSON.stringify(key)} has a value that is neither a string, {"base64": …} nor {"inRow": true}`);
}

function checkDedup(value: unknown, where: string): BackupDedup {
  if (!Array.isArray(value) || value.length !== 4) fail(`${where}: a dedup record must be [clientId, seq, index, reply]`);
  const [clientId, seq, index, reply] = value as unknown[];
  if (typeof clientId !== 'string' || clientId.length === 0) fail(`${where}: dedup client id must be a non-empty string`);
  if (!isIndex(seq) || !isIndex(index) || typeof reply !== 'string') fail(`${where}: dedup record of ${JSON.stringify(clientId)} is malformed`);
  return [clientId, seq, index, reply];
}

/**
 * Checks one parsed record (from a node's stream or a file line) and returns it typed.
 * `createdAt` is allowed in headers read from files.
 */
export function checkRecord(value: unknown): BackupRecord {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail('a backup record must be a JSON object');
  const r = value as Record<string, unknown>;
  switch (r['type']) {
    case 'header': {
      onlyFields(r, ['type', 'format', 'formatVersion', 'nodeId', 'clusterId', 'index', 'term', 'config', 'createdAt'], 'header');
      if (r['format'] !== backupFormat) fail(`not a quorumkv backup (format ${JSON.stringify(r['format'])})`);
      if (r['formatVersion'] !== backupFormatVersion) fail(`backup format version ${String(r['formatVersion'])} is not supported (this version reads ${backupFormatVersion})`);
      const { nodeId, clusterId, index, term, createdAt } = r;
      if (typeof nodeId !== 'string' || typeof clusterId !== 'string') fail('header nodeId and clusterId must be strings');
      if (!isIndex(index) || !isIndex(term)) fail(`header index ${String(index)} / term ${String(term)} must be safe integers >= 0`);
      if (createdAt !== undefined && typeof createdAt !== 'string') fail('header createdAt must be a string');
      const header: BackupHeader = { type: 'header', format: backupFormat, formatVersion: backupFormatVersion, nodeId, clusterId, index, term, config: checkConfig(r['config']) };
      return createdAt === undefined ? header : { ...header, createdAt };
    }
    case 'chunk': {
      onlyFields(r, ['type', 'seq', 'items', 'dedup'], 'chunk');
      const seq = r['seq'];
      if (!isIndex(seq)) fail(`chunk seq ${String(seq)} must be a safe integer >= 0`);
      const items = r['items'];
      const dedup = r['dedup'];
      if (!Array.isArray(items) || !Array.isArray(dedup)) fail(`chunk ${seq}: items and dedup must be lists`);
      const where = `chunk ${seq}`;
      return { type: 'chunk', seq, items: items.map((i) => checkItem(i, where)), dedup: dedup.map((d) => checkDedup(d, where)) };
    }
    case 'end': {
      onlyFields(r, ['type', 'chunks', 'items', 'dedup'], 'end');
      const { chunks, items, dedup } = r;
      if (!isIndex(chunks) || !isIndex(items) || !isIndex(dedup)) fail('end record counts must be safe integers >= 0');
      return { type: 'end', chunks, items, dedup };
    }
    default:
      return fail(`unknown backup record type ${JSON.stringify(r['type'])}`);
  }
}

/**
 * Checks that records come in order: one header, chunks numbered 0, 1, …, one end whose
 * counts match, and nothing after it. Feed every record to `accept`, then call `finish`.
 */
export class RecordSequence {
  header: BackupHeader | null = null;
  private chunks = 0;
  private items = 0;
  /** Items that are client keys (the others are the state machine's reserved records: leases, history). */
  private keys = 0;
  private dedup = 0;
  private ended = false;

  accept(record: BackupRecord): void {
    if (this.ended) fail(`a ${record.type} record follows the end record`);
    if (record.type === 'header') {
      if (this.header !== null) fail('a second header record');
      this.header = record;
      return;
    }
    if (this.header === null) fail(`the backup starts with a ${record.type} record, not a header`);
    if (record.type === 'chunk') {
      if (record.seq !== this.chunks) fail(`chunk ${record.seq} where chunk ${this.chunks} was expected`);
      this.chunks++;
      this.items += record.items.length;
      for (const item of record.items) if (!item[0].startsWith('\u0000')) this.keys++;
      this.dedup += record.dedup.length;
      return;
    }
    if (record.chunks !== this.chunks || record.items !== this.items || record.dedup !== this.dedup) {
      fail(
        `end record counts ${record.chunks} chunks / ${record.items} items / ${record.dedup} dedup, ` +
          `but ${this.chunks} / ${this.items} / ${this.dedup} were received`,
      );
    }
    this.ended = true;
  }

  finish(): { readonly header: BackupHeader; readonly chunks: number; readonly items: number; readonly keys: number; readonly dedup: number } {
    if (this.header === null) fail('the backup is empty: no header record');
    if (!this.ended) fail(`the backup is truncated: no end record after ${this.chunks} chunks`);
    return { header: this.header, chunks: this.chunks, items: this.items, keys: this.keys, dedup: this.dedup };
  }
}

// --- writing -----------------------------------------------------------------------------

const newline = Buffer.from('\n');

/**
 * Writes a backup file from records, computing the checksum as it goes. The file appears
 * under its final name only after `finish()`; `abort()` removes the partial file.
 */
export class BackupFileWriter {
  private readonly hash: Hash = createHash('sha256');
  private readonly sequence = new RecordSequence();
  private bytes = 0;
  private done = false;

  private constructor(
    private readonly file: string,
    private readonly partial: string,
    private readonly handle: FileHandle,
  ) {}

  /** Opens `${file}.partial` for writing (replacing any earlier partial file). */
  static async create(file: string): Promise<BackupFileWriter> {
    const partial = `${file}.partial`;
    const handle = await open(partial, 'w', 0o600);
    return new BackupFileWriter(file, partial, handle);
  }

  /** Validates and appends one record; the header gets `createdAt` now. */
  async write(record: BackupRecord): Promise<void> {
    this.sequence.accept(record);
    const stamped = record.type === 'header' && record.createdAt === undefined ? { ...record, createdAt: new Date().toISOString() } : record;
    await this.append(Buffer.from(JSON.stringify(stamped), 'utf8'));
  }

  /** Writes the checksum trailer, flushes to disk and renames the file into place. */
  async finish(): Promise<{ readonly header: BackupHeader; readonly chunks: number; readonly items: number; readonly keys: number; readonly dedup: number; readonly bytes: number; readonly sha256: string }> {
    const totals = this.sequence.finish();
    const sha256 = this.hash.digest('hex');
    const trailer = Buffer.from(JSON.stringify({ type: 'sha256', sha256 }) + '\n', 'utf8');
    await this.handle.write(trailer);
    this.bytes += trailer.length;
    await this.handle.sync();
    await this.handle.close();
    this.done = true;
    await rename(this.partial, this.file);
    return { ...totals, bytes: this.bytes, sha256 };
  }

  /** Closes and removes the partial file. Idempotent; never throws. */
  async abort(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await this.handle.close().catch(() => undefined);
    await rm(this.partial, { force: true }).catch(() => undefined);
  }

  private async append(line: Buffer): Promise<void> {
    this.hash.update(line);
    this.hash.update(newline);
    await this.handle.writev([line, newline]);
    this.bytes += line.length + 1;
  }
}

// --- reading -----------------------------------------------------------------------------

/** Longest line accepted when reading a file (a chunk line of huge values is the worst). */
const lineBytesMax = 1024 * 1024 * 1024;

/** Splits a byte stream into lines (without the `\n`); the last line must end with `\n`. */
export async function* splitLines(chunks: AsyncIterable<Buffer | Uint8Array | string>, lineBytesLimit = lineBytesMax): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  for await (const raw of chunks) {
    const chunk = typeof raw === 'string' ? Buffer.from(raw, 'utf8') : Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl === -1) break;
      const piece = chunk.subarray(start, nl);
      if (pending.length === 0) yield piece;
      else {
        pending.push(piece);
        yield Buffer.concat(pending, pendingBytes + piece.length);
        pending = [];
        pendingBytes = 0;
      }
      start = nl + 1;
    }
    if (start < chunk.length) {
      pending.push(chunk.subarray(start));
      pendingBytes += chunk.length - start;
      if (pendingBytes > lineBytesLimit) fail(`a line is longer than ${lineBytesLimit} bytes`);
    }
  }
  if (pendingBytes > 0) fail('the last line does not end with a newline (truncated?)');
}

function parseLine(line: Buffer, lineNumber: number): unknown {
  try {
    return JSON.parse(line.toString('utf8'));
  } catch (error) {
    return fail(`line ${lineNumber} is not JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
}

export interface VerifiedBackup {
  readonly header: BackupHeader;
  readonly chunks: number;
  /** Records in the file: client keys and the state machine's reserved records (leases, history). */
  readonly items: number;
  /** Client keys among them. */
  readonly keys: number;
  readonly dedup: number;
  readonly sha256: string;
}

/**
 * Reads a whole backup file, checking every record and the trailing checksum. Throws
 * BackupFormatError on any problem; nothing is kept in memory beyond one line.
 */
export async function verifyBackupFile(file: string): Promise<VerifiedBackup> {
  const hash = createHash('sha256');
  const sequence = new RecordSequence();
  let expected: string | null = null;
  let lineNumber = 0;
  for await (const line of splitLines(createReadStream(file))) {
    lineNumber++;
    if (expected !== null) fail(`line ${lineNumber} follows the sha256 trailer`);
    const parsed = parseLine(line, lineNumber);
    if (typeof parsed === 'object' && parsed !== null && (parsed as { type?: unknown }).type === 'sha256') {
      const sha = (parsed as { sha256?: unknown }).sha256;
      if (typeof sha !== 'string' || !/^[0-9a-f]{64}$/.test(sha)) fail('the sha256 trailer is malformed');
      expected = sha;
      continue;
    }
    hash.update(line);
    hash.update(newline);
    sequence.accept(checkRecord(parsed));
  }
  if (expected === null) fail('the backup has no sha256 trailer (truncated?)');
  const actual = hash.digest('hex');
  if (actual !== expected) fail(`checksum mismatch: the file's content hashes to ${actual}, its trailer says ${expected}`);
  return { ...sequence.finish(), sha256: actual };
}

/**
 * Yields the records of a backup file in order (header, chunks, end). Call only on a file
 * `verifyBackupFile` accepted; the checks here guard against it changing in between.
 */
export async function* readBackupRecords(file: string): AsyncGenerator<BackupRecord> {
  let lineNumber = 0;
  for await (const line of splitLines(createReadStream(file))) {
    lineNumber++;
    const parsed = parseLine(line, lineNumber);
    if ((parsed as { type?: unknown }).type === 'sha256') return;
    yield checkRecord(parsed);
  }
  fail('the backup ended without its sha256 trailer');
}

/** A backup value as stored: text, the bytes of a base64 value, or null for a value in its value row. */
export function decodeBackupValue(value: BackupValue): string | Uint8Array | null {
  if (typeof value === 'string') return value;
  if ('inRow' in value) return null;
  const bytes = Buffer.from(value.base64, 'base64');
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
