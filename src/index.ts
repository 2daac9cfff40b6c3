/**
 * The quorumkv package entry (`import { connect } from 'quorumkv'`): the TypeScript client,
 * its option and result types, and its typed errors. The server side is the `quorumkv`
 * command (dist/cli/main.js), not part of this API.
 *
 * Must never: export server internals; applications depend only on what client/ exports.
 */

export * from './client/index.js';
