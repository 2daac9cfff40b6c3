#!/usr/bin/env node
/**
 * The quorumkv command. Subcommands:
 *   node     run one node            up       run a local cluster of N nodes
 *   put/get/del/ls/status            talk to a cluster (default endpoints: ./data/cluster.json)
 */

import { ConfigError, helpText, parseNodeConfig } from './config.js';
import { runClientCommand, clientCommands } from './client-commands.js';
import { backupHelp, runBackup, runRestore } from './backup.js';
import { startNode } from './node.js';
import { runUp, upHelp } from './up.js';
import { runModeCommand } from './mode.js';
import { runSimCommand } from '../sim/main.js';

const usage = `usage: quorumkv <command> [flags]

commands:
  node     run one node:  quorumkv node --id n1 --data-dir d1 --listen-http 127.0.0.1:7001 \\
                            --listen-peer 127.0.0.1:7101 --peers n1=127.0.0.1:7101,n2=…
  up       run a local cluster:  quorumkv up --nodes 3 --data-dir ./data [--base-port 7001] [node flags]
  mode     switch the replication mode live: quorumkv mode --write-quorum 2 --topology chain
  sim      deterministic simulator: quorumkv sim --seeds 200 [--seed S] [--nodes 5] [--mode …]
  bench    load test: quorumkv bench --workload mixed --concurrency 5,10,20 --duration 5s [--compare etcd]
  experiment  quorumkv experiment quorum|modes|matrix: the seeds' experiments with reports
  check    quorumkv check: compare every node's store with the leader's (exit 1 on divergence)
  put KEY VALUE | get KEY | del KEY | ls [PREFIX] | status
           client commands; --endpoints URL,… (default: ./data/cluster.json), --transport http|grpc, --json
  backup   quorumkv backup --out FILE [--endpoints URL,…]: a consistent, checksummed snapshot
  restore  quorumkv restore --from FILE --data-dir DIR [--nodes N]: seed a new cluster from a backup

node flags (each also an environment variable):
${helpText()}
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(usage);
    return command === undefined ? 2 : 0;
  }
  if (command === 'node') {
    if (rest.includes('--help')) {
      process.stdout.write(usage);
      return 0;
    }
    const config = parseNodeConfig(rest, process.env);
    const node = await startNode(config);
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
  if (command === 'up') {
    if (rest.includes('--help')) {
      process.stdout.write(upHelp);
      return 0;
    }
    return runUp(rest);
  }
  if (command === 'sim') return runSimCommand(rest);
  if (command === 'mode') return runModeCommand(rest);
  if (clientCommands.includes(command)) return runClientCommand(command, rest);
  if ((command === 'backup' || command === 'restore') && rest.includes('--help')) {
    process.stdout.write(backupHelp);
    return 0;
  }
  if (command === 'backup') return runBackup(rest);
  if (command === 'restore') return runRestore(rest);
  // Benchmarks load their heavier dependencies only when used.
  if (command === 'bench') return (await import('./bench.js')).runBenchCommand(rest);
  if (command === 'experiment') return (await import('./experiment.js')).runExperimentCommand(rest);
  if (command === 'check') return (await import('./check.js')).runCheckCommand(rest);
  process.stderr.write(`unknown command "${command}"\n\n${usage}`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof ConfigError) {
      process.stderr.write(`quorumkv: ${err.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`quorumkv: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
