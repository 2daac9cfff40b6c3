/**
 * The checks on configuration entries, run on every Ready that carries one: the rules
 * that make single-server membership changes safe (core/membership.ts), checked from the
 * outside: a configuration is in force from its append, a leader appends one only once the
 * previous one is committed and it has committed an entry of its own term, and each one
 * changes the voters so that old and new majorities always meet.
 *
 * Pure: it reads the core (log, term, configuration) and says what is wrong, or null.
 */

import { configInLog, majoritiesOverlap } from '../core/membership.js';
import { decodeConfig } from '../core/config.js';
import type { RaftCore } from '../core/raft.js';
import type { Entry, NodeId } from '../core/types.js';

export interface ConfigProblem {
  readonly property: 'config-on-append' | 'config-one-at-a-time' | 'config-own-term' | 'quorum-overlap';
  readonly details: string;
}

/** `entries`: what `node` is about to persist (a Ready's), some of them configuration entries. */
export function configChangeProblem(node: NodeId, entries: readonly Entry[], core: RaftCore): ConfigProblem | null {
  const configs = entries.filter((e) => e.kind === 'config');
  const last = configs[configs.length - 1];
  if (last === undefined) return null;
  if (core.currentConfigIndex() < last.index) {
    return {
      property: 'config-on-append',
      details: `${node} appended the configuration at ${last.index}/term ${last.term} but still uses the one at ${core.currentConfigIndex()}: a configuration is in force from its append`,
    };
  }
  if (core.currentRole() !== 'leader') return null;
  for (const e of configs) {
    if (e.term !== core.currentTerm()) continue;
    const prev = configInLog(core.log, e.index - 1);
    const commit = core.log.committed;
    if (prev.index > commit) {
      return { property: 'config-one-at-a-time', details: `${node} appended the configuration at ${e.index} while the one at ${prev.index} was not committed (commit ${commit})` };
    }
    if (core.log.term(commit) !== e.term) {
      return {
        property: 'config-own-term',
        details: `${node}, leader of term ${e.term}, appended the configuration at ${e.index} before committing an entry of its term (commit ${commit}/term ${core.log.term(commit) ?? '?'})`,
      };
    }
    const next = decodeConfig(e.data);
    if (!majoritiesOverlap(prev.config.members, next.members)) {
      return {
        property: 'quorum-overlap',
        details: `${node} went from voters [${prev.config.members.join(',')}] to [${next.members.join(',')}] at ${e.index}: two majorities of them can be disjoint`,
      };
    }
  }
  return null;
}
