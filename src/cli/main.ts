#!/usr/bin/env node
/**
 * The quorumkv command: one subcommand per job, each with its own flags and `--help`
 * (stdx/command-line.ts parses them all). A usage mistake exits 2 before anything starts.
 */

import { backupCommand, restoreCommand, runBackup, runRestore } from './backup.js';
import { dashboardCommand, runDashboardCommand } from './dashboard.js';
import { clientCommandSpecs, clientCommands, runClientCommand } from './client-commands.js';
import { UsageError, parseArgs, programHelp } from './command.js';
import { ConfigError, nodeCommand, nodeConfigOf } from './config.js';
import { leaderCommand, memberCommand, runLeaderCommand, runMemberCommand } from './member.js';
import { modeCommand, runModeCommand } from './mode.js';
import { compactCommand, runCompactCommand } from './compact.js';
import { certsCommand, runCertsCommand } from './certs.js';
import { authCommand, roleCommand, runAuthCommand, runRoleCommand, runUserCommand, userCommand } from './auth.js';
import { NodeStartError, startNode } from './node.js';
import { faultCommand, runFaultCommand } from './fault.js';
import { rollbacksCommand, runRollbacksCommand } from './rollbacks.js';
import { runUp, upCommand } from './up.js';
import { runSimCommand, simCommand } from '../sim/main.js';

/** Commands listed in the top-level help, in the order a newcomer meets them. */
const commandList: readonly { readonly name: string; readonly summary: string }[] = [
  upCommand,
  nodeCommand,
  ...clientCommandSpecs,
  memberCommand,
  leaderCommand,
  modeCommand,
  compactCommand,
  authCommand,
  userCommand,
  roleCommand,
  certsCommand,
  faultCommand,
  dashboardCommand,
  { name: 'bench', summary: 'load test with latency/throughput plots, optionally against etcd' },
  { name: 'bench-watch', summary: 'watch fan-out: one writer, N watchers on one node (events/s, delivery delay), optionally against etcd' },
  { name: 'experiment', summary: "the seeds' experiments (quorum, modes, matrix) with reports" },
  { name: 'check', summary: "compare every node's store with the leader's (exit 1 on divergence)" },
  rollbacksCommand,
  backupCommand,
  restoreCommand,
  simCommand,
];

const usage = programHelp(commandList, 'usage: quorumkv <command> [flags]\n');

async function runNode(argv: string[]): Promise<number> {
  const parsed = parseArgs(nodeCommand, argv);
  if (parsed === null) return 0;
  const node = await startNode(nodeConfigOf(parsed.values));
  let signals = 0;
  const onSignal = (signal: string): void => {
    if (++signals > 1) process.exit(1);
    node.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`error while stopping on ${signal}: ${String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
  return new Promise<number>(() => undefined); // runs until a signal
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(usage);
    return command === undefined ? 2 : 0;
  }
  if (command === 'node') return runNode(rest);
  if (command === 'up') return runUp(rest);
  if (command === 'sim') return runSimCommand(rest);
  if (command === 'mode') return runModeCommand(rest);
  if (command === 'compact') return runCompactCommand(rest);
  if (command === 'auth') return runAuthCommand(rest);
  if (command === 'user') return runUserCommand(rest);
  if (command === 'role') return runRoleCommand(rest);
  if (command === 'certs') return runCertsCommand(rest);
  if (command === 'member') return runMemberCommand(rest);
  if (command === 'leader') return runLeaderCommand(rest);
  if (clientCommands.includes(command)) return runClientCommand(command, rest);
  if (command === 'rollbacks') return runRollbacksCommand(rest);
  if (command === 'fault') return runFaultCommand(rest);
  if (command === 'dashboard') return runDashboardCommand(rest);
  if (command === 'backup') return runBackup(rest);
  if (command === 'restore') return runRestore(rest);
  // Benchmarks load their heavier dependencies only when used.
  if (command === 'bench') return (await import('./bench.js')).runBenchCommand(rest);
  if (command === 'bench-watch') return (await import('../bench/watch-fanout.js')).runWatchBench(rest);
  if (command === 'experiment') return (await import('./experiment.js')).runExperimentCommand(rest);
  if (command === 'check') return (await import('./check.js')).runCheckCommand(rest);
  process.stderr.write(`quorumkv: unknown command "${command}"\n\n${usage}`);
  return 2;
}

/**
 * grpc-js names the server in TLS (SNI) by the target's host even when it is an IP address,
 * as `quorumkv up` writes them, and Node then warns on every gRPC-over-TLS command
 * (DEP0123). The address is still what the certificate is checked against (its IP SAN);
 * only the SNI is moot. Only that warning is dropped, in this program; every other is
 * printed as Node prints it. The client library leaves the process's warnings alone.
 */
function quietIpServerNameWarning(): void {
  process.removeAllListeners('warning');
  process.on('warning', (warning: Error & { code?: string }) => {
    if (warning.code === 'DEP0123') return;
    process.stderr.write(`(node:${process.pid}) ${warning.code === undefined ? '' : `[${warning.code}] `}${warning.name}: ${warning.message}\n`);
  });
}

// Node installs its printing listener unless --no-warnings was given; then there is nothing to filter.
if (process.listenerCount('warning') > 0) quietIpServerNameWarning();

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof ConfigError || err instanceof UsageError) {
      process.stderr.write(`quorumkv: ${err.message}\n`);
      process.exit(2);
    }
    if (err instanceof NodeStartError) {
      process.stderr.write(`quorumkv: ${err.message}\n`);
      process.exit(1);
    }
    process.stderr.write(`quorumkv: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
