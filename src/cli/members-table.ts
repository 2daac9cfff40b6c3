/**
 * The members as the CLI prints them (`quorumkv member list`, after a change, and under
 * `quorumkv status`): one line per member with its role, whether it leads, and its lag as
 * the leader sees it, under the configuration's log index.
 */

import type { MembersResponse } from '../client/index.js';

/** `from`: the node whose view this is (followers know no lag). */
export function membersTable(r: MembersResponse, from?: string): string {
  const width = Math.max(2, ...r.members.map((m) => m.id.length));
  const rows = r.members.map((m) => {
    const lag = m.lag === null ? 'lag ?' : `lag ${m.lag}`;
    const address = m.http ?? m.peer ?? '';
    return `  ${m.id.padEnd(width)}  ${m.role.padEnd(7)}  ${(m.isLeader ? 'leader' : '').padEnd(6)}  ${lag.padEnd(10)}  ${address}`.trimEnd();
  });
  const view = from === undefined ? '' : `, as ${from} sees it`;
  return `members (configuration at log index ${r.configIndex}${view}):\n${rows.join('\n')}\n`;
}
