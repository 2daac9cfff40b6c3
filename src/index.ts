/**
 * The quorumkv package entry (`import { connect } from 'quorumkv'`): the TypeScript client,
 * its option and result types, and its typed errors. The server side is the `quorumkv`
 * command (dist/cli/main.js), not part of this API.
 *
 * Must never: export server internals; applications depend only on what client/ exports.
 */

export {
  connect,
  KvClient,
  QuorumKvError,
  InvalidArgumentError,
  NotFoundError,
  VersionConflictError,
  UnavailableError,
  DeadlineExceededError,
  OutcomeUnknownError,
  QuorumTimeoutError,
  ClientClosedError,
  BackupFormatError,
  verifyBackupFile,
} from './client/index.js';
export type {
  BackupHeader,
  BackupOptions,
  BackupResult,
  CallOptions,
  ClientErrorCode,
  ClusterStatus,
  ConnectOptions,
  Consistency,
  DeleteOptions,
  DeleteResult,
  DieOptions,
  EndpointStatus,
  Entry,
  GetOptions,
  ListOptions,
  ListPage,
  NodeStatus,
  PutOptions,
  PutResult,
  TransportKind,
  VerifiedBackup,
} from './client/index.js';
