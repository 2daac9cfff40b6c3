/**
 * Which node(s) of a cluster a benchmark sends its operations to (`--to`): the leader, one
 * follower, or every node in turn, found from each node's own account of its role
 * (quorumkv's GET /status, etcd's maintenance status). Shared by the plain quorumkv target
 * and the etcd targets, so `--to follower` means the same thing on both sides of a
 * comparison.
 *
 * Must never: wait without a deadline for a leader to appear.
 */

/** Where `--to` sends operations; the one list the flag parser and the targets share. */
export const toChoices = ['leader', 'follower', 'any'] as const;
export type To = (typeof toChoices)[number];

/** Whether `text` names one of toChoices. */
export function isTo(text: string | undefined): text is To {
  return (toChoices as readonly (string | undefined)[]).includes(text);
}

/** `the leader`, `a follower`, `every node in turn`: where `to` sends operations, in words. */
export function toText(to: To): string {
  return to === 'any' ? 'every node in turn' : to === 'leader' ? 'the leader' : 'a follower';
}

/** A node's role as it says it, or `unreachable`. */
export type RoleOf = (url: string) => Promise<string>;

/**
 * The URLs `to` asks for, given each node's role (`roleOf`: quorumkv's /status, etcd's
 * maintenance status): the leader, one follower, or all of them. Waits (polling every 200
 * ms, up to `timeoutMs`) while there is no leader, e.g. during an election.
 */
export async function chooseNodes(endpoints: readonly string[], to: To, timeoutMs: number, roleOf: RoleOf = quorumKvRole): Promise<string[]> {
  if (to === 'any') return [...endpoints];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const roles = await Promise.all(endpoints.map(async (url) => ({ url, role: await roleOf(url).catch(() => 'unreachable') })));
    const leader = roles.find((r) => r.role === 'leader');
    const follower = roles.find((r) => r.role === 'follower');
    if (leader !== undefined && (to === 'leader' || follower !== undefined)) return [to === 'leader' ? leader.url : (follower as { url: string }).url];
    if (Date.now() > deadline) throw new Error(`no ${to} among ${endpoints.join(', ')} within ${timeoutMs} ms (roles: ${roles.map((r) => `${r.url} ${r.role}`).join(', ')})`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function quorumKvRole(url: string): Promise<string> {
  const res = await fetch(`${url}/status`, { signal: AbortSignal.timeout(2_000) });
  return ((await res.json()) as { role?: string }).role ?? 'unknown';
}
