/**
 * Which member a peer message comes from. A node's name (n1) can be reused: a wiped node
 * re-added under the same name is a new member with a new member id, and an old
 * incarnation may still be running after its replacement. Votes, acknowledgements and
 * read confirmations are counted only from the member the configuration in force holds
 * under that name; what a leader sends is heard from any member id (a node catching up
 * may hold an old configuration that names an earlier member under the leader's name).
 */
import type { ClusterConfig, NodeId } from '../core/types.js';
import { isReplica } from '../core/membership.js';
import type { PeerMessage } from './messages.js';

/** Derived ids are remembered for at most this many names (bounds the cache). */
const bootstrapMemberIdsMax = 1024;

/** Messages whose sender is counted (a vote, an ack, a read confirmation) or answered as a member. */
const countedMessageTypes: ReadonlySet<PeerMessage['type']> = new Set(['preVote', 'preVoteResp', 'vote', 'voteResp', 'appendResp', 'heartbeatResp', 'readIndex', 'readIndexResp']);

export class MemberIds {
  /** Member ids derived for members the configuration records none for (the bootstrap members). */
  private readonly derived = new Map<NodeId, string>();

  constructor(private readonly derive: (id: NodeId) => string) {}

  /** The member id `id` has in `config`. */
  of(config: ClusterConfig, id: NodeId): string {
    const recorded = config.directory?.[id]?.memberId;
    if (recorded !== undefined) return recorded;
    // Derived ids cost a hash: once per peer, not once per message.
    let derived = this.derived.get(id);
    if (derived === undefined) {
      if (this.derived.size >= bootstrapMemberIdsMax) this.derived.clear();
      this.derived.set(id, (derived = this.derive(id)));
    }
    return derived;
  }

  /**
   * Whether a counted message must be dropped: `config` holds its sender under another
   * member id. A sender the configuration does not hold at all is heard: its votes and
   * acks are not counted (it is no voter here), and it may be a member added by entries
   * this node has not received yet, whose vote request must be answered (seed 328363765).
   */
  fromAnother(config: ClusterConfig, type: PeerMessage['type'], from: NodeId, fromMemberId: string): boolean {
    return countedMessageTypes.has(type) && isReplica(config, from) && fromMemberId !== this.of(config, from);
  }
}
