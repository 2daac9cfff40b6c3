/**
 * `quorumkv backup` and `quorumkv restore`.
 *
 * backup: streams a consistent snapshot of one node (default: the leader) through the client
 * library into a checksummed file (format: client/backup-file.ts).
 *
 * restore: seeds the data directories of a NEW cluster from a backup file, so that
 * `quorumkv up --nodes N --data-dir DIR` starts it with every key at its original version.
 * For each node n1..nN it opens fresh LMDB storage, stages the backup's chunks as an
 * incoming snapshot, installs it (snapshot meta: the backup's index and term, the new
 * cluster's members; hard state: that term, no vote, commit = index), and records the node
 * and cluster ids. DIR/cluster.json gets the new cluster id for `up` to use.
 *
 * Must never: write anything before the whole file has been verified (records, counts and
 * SHA-256), or touch a directory that already holds a node or a cluster.
 */

import { randomBytes } from 'node:crypto';
import { mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import { connect } from '../client/index.js';
import { BackupFormatError, decodeBackupValue, readBackupRecords, verifyBackupFile } from '../client/backup-file.js';
import type { ClusterConfig, SnapshotMeta } from '../core/types.js';
import { openLmdbStorage, type LmdbStorage } from '../storage/lmdb.js';
import { packItems } from '../storage/snapshot-records.js';
import { valueInRow } from '../storage/types.js';
import type { SnapshotChunk } from '../storage/types.js';
import { ConfigError } from './config.js';
import { exists } from './files.js';
import { clientFlagDefs, connection, parseClientFlags } from './client-commands.js';
import { parseArgs } from './command.js';
import type { CommandSpec } from './command.js';
import { writeClusterFile } from './cluster-file.js';

export const backupCommand: CommandSpec = {
  name: 'backup',
  summary: 'write a consistent, checksummed snapshot of one node (default: the leader) to a file',
  flags: {
    ...clientFlagDefs,
    out: { kind: 'value', help: 'the backup file (written as FILE.partial, renamed when complete)' },
    node: { kind: 'value', help: 'back up this node instead of the leader' },
  },
};

export const restoreCommand: CommandSpec = {
  name: 'restore',
  summary: 'create the data directories of a new cluster from a backup file',
  flags: {
    from: { kind: 'value', help: 'the backup file (verified whole before anything is written)' },
    'data-dir': { kind: 'value', help: 'where DIR/n1 … DIR/nN are created (must be new or empty)' },
    nodes: { kind: 'value', help: "how many nodes (1..15; default: the backup's member count)" },
  },
  epilog: 'Then start it with:  quorumkv up --nodes N --data-dir DIR',
};

/** Largest staged snapshot per node (the LMDB map grows to fit). */
const snapshotBytesMax = 4 * 1024 * 1024 * 1024;

export async function runBackup(argv: string[]): Promise<number> {
  const flags = parseClientFlags(backupCommand, argv);
  if (flags === null) return 0;
  const out = flags.extra.get('out');
  if (out === undefined || out === '') throw new ConfigError('--out FILE is required (see quorumkv backup --help)');
  const kv = await connect(await connection(flags));
  try {
    const nodeId = flags.extra.get('node');
    const result = await kv.backup(out, nodeId === undefined ? {} : { nodeId });
    if (flags.json) process.stdout.write(JSON.stringify(result) + '\n');
    else {
      process.stdout.write(
        `backup of node ${result.nodeId} (cluster ${result.clusterId}) at index ${result.index}, term ${result.term}: ` +
          `${result.items} keys, ${result.dedupRecords} client sessions, ${result.bytes} bytes\n` +
          `written to ${result.file} (sha256 ${result.sha256})\n`,
      );
    }
    return 0;
  } finally {
    await kv.close();
  }
}

interface RestoreFlags {
  readonly from: string;
  readonly dataDir: string;
  readonly nodes: number | null;
}

function parseRestoreFlags(argv: readonly string[]): RestoreFlags | null {
  const parsed = parseArgs(restoreCommand, argv);
  if (parsed === null) return null;
  const from = parsed.values.get('from');
  const dataDir = parsed.values.get('data-dir');
  if (from === undefined || from === '' || dataDir === undefined || dataDir === '') {
    throw new ConfigError('--from FILE and --data-dir DIR are required (see quorumkv restore --help)');
  }
  const raw = parsed.values.get('nodes');
  const nodes = raw === undefined ? null : Number(raw);
  if (nodes !== null && (!Number.isInteger(nodes) || nodes < 1 || nodes > 15)) throw new ConfigError(`--nodes must be 1..15, got ${raw ?? ''}`);
  return { from, dataDir, nodes };
}

async function isEmptyOrMissing(dir: string): Promise<boolean> {
  try {
    return (await readdir(dir)).length === 0;
  } catch (error) {
    if ((error as { code?: string }).code === 'ENOENT') return true;
    throw error;
  }
}

function durable(run: (done: (error: Error | null) => void) => void): Promise<void> {
  return new Promise((resolve, reject) => run((error) => (error === null ? resolve() : reject(error))));
}

export async function runRestore(argv: string[]): Promise<number> {
  const flags = parseRestoreFlags(argv);
  if (flags === null) return 0;
  let verified;
  try {
    verified = await verifyBackupFile(flags.from);
  } catch (error) {
    if (error instanceof BackupFormatError || (error as { code?: string }).code === 'ENOENT') {
      process.stderr.write(`quorumkv restore: ${flags.from} cannot be restored: ${(error as Error).message}. Nothing was written.\n`);
      return 1;
    }
    throw error;
  }
  const header = verified.header;
  const count = flags.nodes ?? header.config.members.length;
  const ids = Array.from({ length: count }, (_, i) => `n${i + 1}`);
  if (await exists(path.join(flags.dataDir, 'cluster.json'))) {
    throw new ConfigError(`${flags.dataDir} already holds a cluster (cluster.json exists): restore only into a new directory`);
  }
  for (const id of ids) {
    if (!(await isEmptyOrMissing(path.join(flags.dataDir, id)))) {
      throw new ConfigError(`${path.join(flags.dataDir, id)} is not empty: restore only into a new directory`);
    }
  }

  // The restored cluster runs in the default mode, whatever the backed-up one used.
  const config: ClusterConfig = { members: ids, writeQuorum: 'majority', topology: 'star' };
  const clusterId = randomBytes(8).toString('hex');
  await mkdir(flags.dataDir, { recursive: true });
  const storages: LmdbStorage[] = [];
  try {
    for (const id of ids) storages.push(await openLmdbStorage({ dataDir: path.join(flags.dataDir, id), initialConfig: config, snapshotBytesMax }));
    let staged = 0;
    for await (const record of readBackupRecords(flags.from)) {
      if (record.type !== 'chunk') continue;
      const chunk: SnapshotChunk = {
        seq: record.seq,
        records: packItems(record.items.map(([key, value, version]) => ({ key, value: decodeBackupValue(value) ?? valueInRow, version }))),
        dedup: record.dedup.map(([clientId, seq, index, reply]) => {
          const bytes = Buffer.from(reply, 'base64');
          return { clientId, seq, index, reply: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) };
        }),
        last: record.seq === verified.chunks - 1,
      };
      for (const storage of storages) storage.stageSnapshotChunk(chunk);
      staged++;
      // Let LMDB commit what was staged before reading on (bounds the in-memory overlay).
      await new Promise((resolve) => setImmediate(resolve));
    }
    if (staged !== verified.chunks) throw new BackupFormatError(`${flags.from} changed while it was restored (${staged} of ${verified.chunks} chunks read)`);
    if (staged === 0) for (const storage of storages) storage.stageSnapshotChunk({ seq: 0, records: new Uint8Array(0), dedup: [], last: true });
    const meta: SnapshotMeta = { index: header.index, term: header.term, config };
    await Promise.all(
      storages.map((storage) => durable((done) => storage.persist({ snapshot: meta, entries: [], hardState: { term: header.term, vote: null, commit: header.index } }, done))),
    );
    await Promise.all(storages.map((storage, i) => durable((done) => storage.setIdentity({ nodeId: ids[i] as string, clusterId }, done))));
  } finally {
    await Promise.all(storages.map((storage) => storage.close()));
  }
  await writeClusterFile(flags.dataDir, { clusterId, nodes: [] });
  process.stdout.write(
    `restored ${verified.keys} keys (${verified.items} records; index ${header.index}, term ${header.term}, from node ${header.nodeId} of cluster ${header.clusterId}) ` +
      `into ${count} nodes under ${flags.dataDir} (new cluster ${clusterId}).\n` +
      `start it with:  quorumkv up --nodes ${count} --data-dir ${flags.dataDir}\n`,
  );
  return 0;
}
