/**
 * The leader's view of one follower's log (etcd-io/raft's Progress): how far it matches,
 * what to send next, and the flow-control state:
 *  - probe: we do not know where the logs match; one append in flight at a time.
 *  - replicate: the follower is caught up on our last known position; appends are sent
 *    optimistically, bounded by `inflightMessagesMax` unacknowledged messages.
 *  - snapshot: the follower is behind our log's start; the driver streams a snapshot and
 *    nothing else is sent until the follower acknowledges it (or `snapshotTimeoutTicks`).
 */

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

export class Progress {
  match = 0;
  next: number;
  state: ProgressState = 'probe';
  /** Probe: an append is outstanding; wait for a response (or the next heartbeat). */
  probeSent = false;
  /** Replicate: last index of each append in flight, oldest first. */
  inflight: number[] = [];
  /** Heard from the follower since the last check-quorum round. */
  recentActive = false;
  /** Ticks spent waiting for a snapshot to be acknowledged. */
  snapshotTicks = 0;
  /** Leader ticks since this follower last answered anything. */
  silentTicks = 0;
  /** Match at the previous heartbeat answer: unchanged while lagging means relaying stalled. */
  matchAtLastHeartbeat = -1;

  constructor(
    next: number,
    private readonly inflightMessagesMax: number,
  ) {
    this.next = next;
  }

  becomeProbe(): void {
    this.state = 'probe';
    this.probeSent = false;
    this.inflight = [];
    this.next = Math.max(this.next, this.match + 1);
  }

  becomeReplicate(): void {
    this.state = 'replicate';
    this.next = this.match + 1;
    this.inflight = [];
  }

  becomeSnapshot(): void {
    this.state = 'snapshot';
    this.inflight = [];
    this.snapshotTicks = 0;
  }

  /** Whether another append may be sent now. */
  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return this.inflight.length >= this.inflightMessagesMax;
      case 'snapshot':
        return true;
    }
  }

  /** Records that an append ending at `lastIndex` was sent. */
  sentAppend(lastIndex: number, entryCount: number): void {
    if (this.state === 'replicate') {
      if (entryCount > 0) {
        this.next = lastIndex + 1;
        this.inflight.push(lastIndex);
      }
    } else if (this.state === 'probe') {
      this.probeSent = true;
    }
  }

  /** A successful append response up to `index`. Returns true if match advanced. */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (index > this.match) {
      this.match = index;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, index + 1);
    while (this.inflight.length > 0 && (this.inflight[0] as number) <= index) this.inflight.shift();
    return updated;
  }

  /**
   * A rejection of the append at `rejectedIndex`, with the follower's hint. Returns false
   * if the rejection is stale (a response to an older message).
   */
  maybeDecrTo(rejectedIndex: number, hintIndex: number): boolean {
    if (this.state === 'replicate') {
      if (rejectedIndex <= this.match) return false;
      this.becomeProbe();
      this.next = Math.max(this.match + 1, Math.min(rejectedIndex, hintIndex + 1));
      return true;
    }
    if (this.next - 1 !== rejectedIndex) return false;
    this.next = Math.max(this.match + 1, Math.min(rejectedIndex, hintIndex + 1));
    this.probeSent = false;
    return true;
  }
}
