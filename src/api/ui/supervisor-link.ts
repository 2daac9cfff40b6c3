/**
 * What the dashboard needs from the supervisor that owns the cluster's node processes
 * (`quorumkv up`, cli/supervisor.ts): to restart, pause and resume a member's process, and
 * to know which processes it paused or saw exit. A paused process (SIGSTOP) answers nothing
 * itself, so only the supervisor can tell the page that a silent member is paused rather
 * than dead. The cli layer implements this over HTTP (cli/supervisor-client.ts) and hands it
 * to a node started with --faults and --supervisor; without one the dashboard offers none of
 * these controls and their routes answer 501 no_supervisor.
 *
 * Must never: be called without a deadline (every method is bounded; see the implementation).
 */

/** A member's process as its supervisor knows it: `exited` until someone restarts it. */
export type ProcessState = 'running' | 'paused' | 'exited';

export const supervisorActions = ['restart', 'pause', 'resume'] as const;
export type SupervisorAction = (typeof supervisorActions)[number];

export interface SupervisorLink {
  /**
   * Asks the supervisor to restart, pause or resume member `id`'s process; resolves with its
   * answer. Rejects with a QkvError carrying the supervisor's code (process_running,
   * process_not_running, not_found, timeout, …). A restart answers once the member serves.
   */
  act(action: SupervisorAction, id: string): Promise<object>;
  /** Every process the supervisor owns, by member id; rejects when it does not answer within `timeoutMs`. */
  processes(timeoutMs: number): Promise<ReadonlyMap<string, ProcessState>>;
}
