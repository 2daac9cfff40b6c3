/**
 * The rules a membership request's fields follow, written once for every API end: the HTTP
 * schemas compile the patterns, the gRPC service and the client call the functions, so a
 * node id or an address means the same thing wherever it is typed.
 *
 * Two id rules, on purpose. A member being added gets a strict id (letters, digits, `.`,
 * `_`, `-`): it ends up in URLs, file names and metric labels. An id that names a member
 * already there (promote, remove, transfer) only has to be what the peer protocol carries
 * (1 to 256 characters; node/messages.ts), so a member bootstrapped by --peers with an odd
 * id can still be removed.
 */

/** Longest node id; the peer protocol refuses longer ones. */
export const nodeIdCharsMax = 256;
/** Longest member id (the random id a member gets when added; the simulator's look like `n4#2`). */
export const memberIdCharsMax = 64;

/** An id for a new member: starts with a letter or digit, then letters, digits, `.`, `_`, `-`. */
export const newNodeIdPattern = `^[A-Za-z0-9][A-Za-z0-9._-]{0,${nodeIdCharsMax - 1}}$`;
/** An id naming an existing member: 1 to 256 characters, no control characters. */
export const nodeIdPattern = `^[^\\u0000-\\u001f\\u007f]{1,${nodeIdCharsMax}}$`;
/** A member id: 1 to 64 visible ASCII characters. */
export const memberIdPattern = `^[\\x21-\\x7e]{1,${memberIdCharsMax}}$`;

/** A port 1..65535, without leading zeros. */
const port = '(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])';
/** A DNS name or IPv4 address, or an IPv6 address in brackets. */
const host = '(?:\\[[0-9A-Fa-f:.]{2,45}\\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}))';

/** `host:port` (peer and gRPC addresses): a name, IPv4 or [IPv6], and a port 1..65535. */
export const hostPortPattern = `^${host}:${port}$`;
/** An HTTP API origin: `http://` or `https://`, a host, an optional port, no path. */
export const httpOriginPattern = `^https?://${host}(?::${port})?/?$`;

const newNodeId = new RegExp(newNodeIdPattern, 'u');
const nodeId = new RegExp(nodeIdPattern, 'u');
const memberId = new RegExp(memberIdPattern, 'u');
const hostPort = new RegExp(hostPortPattern, 'u');
const httpOrigin = new RegExp(httpOriginPattern, 'u');

export function isNewNodeId(text: unknown): text is string {
  return typeof text === 'string' && newNodeId.test(text);
}

export function isNodeId(text: unknown): text is string {
  return typeof text === 'string' && nodeId.test(text);
}

export function isMemberId(text: unknown): text is string {
  return typeof text === 'string' && memberId.test(text);
}

export function isHostPort(text: unknown): text is string {
  return typeof text === 'string' && hostPort.test(text);
}

export function isHttpOrigin(text: unknown): text is string {
  return typeof text === 'string' && httpOrigin.test(text);
}

/** What each rule asks for, as error messages say it. */
export const memberRuleText = {
  newNodeId: `1 to ${nodeIdCharsMax} letters, digits, '.', '_' or '-', starting with a letter or digit`,
  nodeId: `1 to ${nodeIdCharsMax} characters, none a control character`,
  memberId: `1 to ${memberIdCharsMax} visible ASCII characters`,
  hostPort: 'host:port (a name, IPv4 or [IPv6] and a port 1..65535)',
  httpOrigin: 'an http:// or https:// URL with a host, an optional port and no path',
} as const;

/** The body of POST /members as a client sends it, checked field by field; null when it is fine. */
export function addMemberProblem(body: {
  readonly id: unknown;
  readonly peer: unknown;
  readonly http?: unknown;
  readonly grpc?: unknown;
  readonly memberId?: unknown;
}): string | null {
  if (!isNewNodeId(body.id)) return `id must be ${memberRuleText.newNodeId}, got ${JSON.stringify(body.id)}`;
  if (!isHostPort(body.peer)) return `peer must be ${memberRuleText.hostPort}, got ${JSON.stringify(body.peer)}`;
  if (body.http !== undefined && !isHttpOrigin(body.http)) return `http must be ${memberRuleText.httpOrigin}, got ${JSON.stringify(body.http)}`;
  if (body.grpc !== undefined && !isHostPort(body.grpc)) return `grpc must be ${memberRuleText.hostPort}, got ${JSON.stringify(body.grpc)}`;
  if (body.memberId !== undefined && !isMemberId(body.memberId)) return `memberId must be ${memberRuleText.memberId}, got ${JSON.stringify(body.memberId)}`;
  return null;
}
