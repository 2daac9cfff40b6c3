/**
 * `quorumkv member list|add|promote|remove` and `quorumkv leader transfer [ID]`: membership
 * and leadership of a running cluster, through the client library (the leader is found and
 * the change retried like a write; client/members.ts says which refusals are retried).
 * Endpoints come from --endpoints or the cluster file, as for `quorumkv status`.
 *
 *   member list                                   voters and learners with role and lag
 *   member add ID --peer HOST:PORT [--http URL] [--grpc HOST:PORT] [--voter --force]
 *   member promote ID                             a caught-up learner becomes a voter
 *   member remove ID                              the leader too (it hands over)
 *   leader transfer [ID]                          to ID, or to the most up-to-date voter
 *
 * Must never: add a voter without --force (a voter that holds nothing counts toward every
 * quorum at once), or report a change whose outcome is unknown as done or as failed.
 */

import { connect } from '../client/index.js';
import type { KvClient, MembershipChangeResponse } from '../client/index.js';
import { clientFlagDefs, connection, parseClientFlags, printError } from './client-commands.js';
import type { ClientFlags } from './client-commands.js';
import { UsageError, programHelp } from './command.js';
import type { CommandSpec } from './command.js';
import { ConfigError } from './config.js';
import { membersTable } from './members-table.js';

const memberSpecs: Readonly<Record<string, CommandSpec>> = {
  list: { name: 'member list', summary: 'voters and learners, with role, lag and the configuration log index', flags: clientFlagDefs },
  add: {
    name: 'member add',
    summary: 'add a member: a learner that catches up without counting, until promoted',
    args: '<id>',
    flags: {
      ...clientFlagDefs,
      peer: { kind: 'value', help: "the new member's peer listener, host:port (required)" },
      http: { kind: 'value', help: 'the HTTP API URL it will advertise, http://host:port' },
      grpc: { kind: 'value', help: 'the gRPC address it will advertise, host:port' },
      voter: { kind: 'bool', help: 'add it as a voter at once (needs --force)' },
      force: { kind: 'bool', help: 'with --voter: accept that it counts toward every quorum before it holds anything' },
    },
    epilog: 'Start the new node first, add it, wait for its lag to fall (quorumkv member list), then promote it.',
  },
  promote: { name: 'member promote', summary: 'make a learner a voter (refused while it lags)', args: '<id>', flags: clientFlagDefs },
  remove: { name: 'member remove', summary: 'remove a member; the leader hands over first when it removes itself', args: '<id>', flags: clientFlagDefs },
};

export const leaderTransferCommand: CommandSpec = {
  name: 'leader transfer',
  summary: 'hand leadership to voter ID, or to the most up-to-date voter',
  args: '[id]',
  flags: clientFlagDefs,
};

/** Listed in the top-level help. */
export const memberCommand = { name: 'member', summary: 'list, add, promote or remove members (quorumkv member --help)' } as const;
export const leaderCommand = { name: 'leader', summary: 'hand leadership over: leader transfer [ID]' } as const;

const memberUsage = programHelp(Object.values(memberSpecs), 'usage: quorumkv member <list|add|promote|remove> [flags]\n');
const leaderUsage = programHelp([leaderTransferCommand], 'usage: quorumkv leader transfer [id] [flags]\n');

export async function runMemberCommand(argv: readonly string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === '--help' || sub === '-h' || sub === 'help') return help(memberUsage, 0);
  const spec = sub === undefined ? undefined : memberSpecs[sub];
  if (spec === undefined) {
    process.stderr.write(sub === undefined ? memberUsage : `quorumkv: unknown member command "${sub}"\n\n${memberUsage}`);
    return 2;
  }
  const flags = parseClientFlags(spec, rest);
  if (flags === null) return 0;
  const [id] = flags.positional;
  const add = sub === 'add' ? addArgs(flags) : null;
  return withClient(flags, async (kv) => {
    if (sub === 'list') {
      const members = await kv.members.list(deadline(flags));
      // Not labelled with a node: the call goes to the leader when it is known, but may be
      // answered by a follower (lag then shows as "?").
      process.stdout.write(flags.json ? `${JSON.stringify(members)}\n` : membersTable(members));
      return 0;
    }
    let answer: MembershipChangeResponse;
    if (add !== null) answer = await kv.members.add({ id: id as string, ...add }, deadline(flags));
    else if (sub === 'promote') answer = await kv.members.promote(id as string, deadline(flags));
    else answer = await kv.members.remove(id as string, deadline(flags));
    const done = sub === 'add' ? `added ${String(id)} as a ${add?.learner === false ? 'voter' : 'learner'}` : `${sub === 'promote' ? 'promoted' : 'removed'} ${String(id)}`;
    process.stdout.write(flags.json ? `${JSON.stringify(answer)}\n` : `${done}\n${membersTable(answer)}`);
    return 0;
  });
}

export async function runLeaderCommand(argv: readonly string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === '--help' || sub === '-h' || sub === 'help') return help(leaderUsage, 0);
  if (sub !== 'transfer') {
    process.stderr.write(sub === undefined ? leaderUsage : `quorumkv: unknown leader command "${sub}"\n\n${leaderUsage}`);
    return 2;
  }
  const flags = parseClientFlags(leaderTransferCommand, rest);
  if (flags === null) return 0;
  const [to] = flags.positional;
  return withClient(flags, async (kv) => {
    const { leader } = await kv.transferLeader(to, deadline(flags));
    process.stdout.write(flags.json ? `${JSON.stringify({ leader })}\n` : `the leader is now ${leader}\n`);
    return 0;
  });
}

/** The fields of `member add` beyond its id, from its flags; a usage mistake exits 2. */
function addArgs(flags: ClientFlags): { peer: string; http?: string; grpc?: string; learner?: boolean; force?: boolean } {
  const peer = flags.extra.get('peer');
  if (peer === undefined) throw new UsageError('member add needs --peer HOST:PORT (see quorumkv member add --help)');
  const voter = flags.extra.get('voter') === 'true';
  const force = flags.extra.get('force') === 'true';
  if (voter && !force) throw new ConfigError('--voter adds a voter that holds nothing yet and counts toward every quorum: add --force to mean it, or add a learner and promote it');
  if (force && !voter) throw new ConfigError('--force only goes with --voter');
  const http = flags.extra.get('http');
  const grpc = flags.extra.get('grpc');
  return {
    peer,
    ...(http === undefined ? {} : { http }),
    ...(grpc === undefined ? {} : { grpc }),
    ...(voter ? { learner: false, force: true } : {}),
  };
}

function deadline(flags: ClientFlags): { deadlineMs?: number } {
  return flags.deadlineMs === null ? {} : { deadlineMs: flags.deadlineMs };
}

async function withClient(flags: ClientFlags, run: (kv: KvClient) => Promise<number>): Promise<number> {
  let kv: KvClient;
  try {
    kv = await connect({ ...(await connection(flags)), ...deadline(flags) });
  } catch (error) {
    return printError(error, flags.json);
  }
  try {
    return await run(kv);
  } catch (error) {
    return printError(error, flags.json);
  } finally {
    await kv.close();
  }
}

function help(text: string, code: number): number {
  process.stdout.write(text);
  return code;
}
