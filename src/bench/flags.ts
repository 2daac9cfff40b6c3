/**
 * Command-line flag reading for the bench, experiment and check commands: `--name value`
 * and `--name=value` pairs, durations (`2s`, `500ms`, `1m`), byte sizes (`128`, `4k`),
 * comma lists (`5,10,20`) and ranges (`1..5`). Every malformed value is an error that names
 * the flag and what was expected.
 *
 * Must never: accept an unknown flag silently (a typo would fall back to a default and
 * measure the wrong thing).
 */

import { UsageError, parseCommand } from '../stdx/command-line.js';
import type { FlagDef } from '../stdx/command-line.js';
import { isTo, toChoices } from './node-choice.js';
import type { To } from './node-choice.js';

export class FlagError extends Error {
  override readonly name = 'FlagError';
}

export type { FlagDef } from '../stdx/command-line.js';

export interface ParsedFlags {
  readonly values: ReadonlyMap<string, string>;
  /** The pass-through flags given, as arguments to hand on (e.g. node flags). */
  readonly rest: string[];
  readonly positional: readonly string[];
}

/**
 * Reads `argv` against `defs` with the one command-line parser (stdx/command-line.ts):
 * unknown flags and prefixes of known ones are refused; flags in `passThrough` are handed
 * back in `rest`. The caller answers `--help` before calling this.
 */
export function parseFlags(
  argv: readonly string[],
  defs: Readonly<Record<string, FlagDef>>,
  passThrough: Readonly<Record<string, FlagDef>> = {},
  name = 'bench',
): ParsedFlags {
  let parsed;
  try {
    parsed = parseCommand({ name, summary: '', flags: defs, passThrough, args: '[arguments...]' }, argv, {});
  } catch (error) {
    if (error instanceof UsageError) throw new FlagError(error.message);
    throw error;
  }
  if ('help' in parsed) throw new FlagError(`see quorumkv ${name} --help`);
  return { values: parsed.values, rest: [...parsed.passed], positional: parsed.positional };
}

/** `2s`, `1.5s`, `500ms`, `1m`, or a bare number of seconds, in milliseconds. */
export function parseDurationMs(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (m === null) throw new FlagError(`--${flag} must be a duration like 10s, 500ms or 1m, got "${text}"`);
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  return Math.round(unit === 'ms' ? n : unit === 'm' ? n * 60_000 : n * 1000);
}

/** A whole number within [min, max]; `1k` = 1,000 and `1m` = 1,000,000 are accepted. */
export function parseCount(text: string, flag: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const m = /^(\d+)(k|m)?$/i.exec(text.trim());
  const n = m === null ? NaN : Number(m[1]) * (m[2] === undefined ? 1 : m[2].toLowerCase() === 'k' ? 1000 : 1_000_000);
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new FlagError(`--${flag} must be a whole number in [${min}, ${max}], got "${text}"`);
  return n;
}

/** A size in bytes: `128`, `4k` (4,096), `1m` (1,048,576). */
export function parseBytes(text: string, flag: string, min = 1, max = 64 * 1024 * 1024): number {
  const m = /^(\d+)(b|k|kb|kib|m|mb|mib)?$/i.exec(text.trim());
  const unit = (m?.[2] ?? 'b').toLowerCase();
  const n = m === null ? NaN : Number(m[1]) * (unit.startsWith('k') ? 1024 : unit.startsWith('m') ? 1024 * 1024 : 1);
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new FlagError(`--${flag} must be a size in bytes in [${min}, ${max}] (e.g. 128, 4k), got "${text}"`);
  return n;
}

/** `5,10,20` or `1..5` (inclusive) or a mix (`1..3,8`), as whole numbers. */
export function parseCountList(text: string, flag: string, min = 0, max = Number.MAX_SAFE_INTEGER): number[] {
  const out: number[] = [];
  for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    const range = /^(\d+)\.\.(\d+)$/.exec(part);
    if (range !== null) {
      const lo = parseCount(range[1] as string, flag, min, max);
      const hi = parseCount(range[2] as string, flag, min, max);
      if (hi < lo || hi - lo > 10_000) throw new FlagError(`--${flag}: bad range "${part}"`);
      for (let n = lo; n <= hi; n++) out.push(n);
    } else out.push(parseCount(part, flag, min, max));
  }
  if (out.length === 0) throw new FlagError(`--${flag} needs at least one number`);
  return out;
}

/** A comma list of names, each checked against `allowed`. */
export function parseNameList<T extends string>(text: string, flag: string, allowed: readonly T[]): T[] {
  const out: T[] = [];
  for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    if (!(allowed as readonly string[]).includes(part)) throw new FlagError(`--${flag}: "${part}" is not one of ${allowed.join(', ')}`);
    out.push(part as T);
  }
  if (out.length === 0) throw new FlagError(`--${flag} needs at least one of ${allowed.join(', ')}`);
  return out;
}

/** Help lines for a flag table, aligned. */
export function flagHelp(defs: Readonly<Record<string, FlagDef>>): string {
  const names = Object.keys(defs).map((n) => `--${n}${defs[n]?.kind === 'value' ? ' V' : ''}`);
  const width = Math.max(...names.map((n) => n.length)) + 2;
  return Object.entries(defs)
    .map(([, def], i) => `  ${(names[i] as string).padEnd(width)}${def.help}`)
    .join('\n');
}

/**
 * `--plain leader|follower|any` (the older spelling, kept working) as `--plain --to …`:
 * `--plain` is now a switch and `--to` says where operations go.
 */
export function legacyPlainArgs(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const inline = arg.startsWith('--plain=') ? arg.slice('--plain='.length) : undefined;
    const next = argv[i + 1];
    if (isTo(inline)) out.push('--plain', '--to', inline);
    else if (arg === '--plain' && isTo(next)) {
      out.push('--plain', '--to', next);
      i++;
    } else out.push(arg);
  }
  return out;
}

/** How the bench's operations travel: the flags `--plain`, `--to`, `--transport`, `--reads-from`, checked together. */
export interface PathChoice {
  readonly plain: boolean;
  /** null: each side's default (quorumkv: the leader; etcd: every member). */
  readonly to: To | null;
  readonly transport: 'http' | 'grpc';
  readonly linearizableReadsFrom: 'leader' | 'any';
}

/**
 * Reads the path flags from parsed `values` (after legacyPlainArgs) and refuses the
 * combinations that cannot mean what they say.
 */
export function pathChoice(values: ReadonlyMap<string, string>): PathChoice {
  const plain = values.has('plain') && values.get('plain') !== 'false';
  if (values.get('to')?.includes(',') === true) throw new FlagError('--to takes one of leader, follower, any');
  const to = values.has('to') ? (parseNameList(values.get('to') as string, 'to', toChoices)[0] ?? null) : null;
  const transport = parseNameList(values.get('transport') ?? 'http', 'transport', ['http', 'grpc'] as const)[0] ?? 'http';
  if (plain && values.has('transport') && transport === 'grpc') throw new FlagError('--plain sends plain HTTP requests; --transport grpc chooses the client library\'s transport: give one of them');
  if (!plain && to === 'follower') throw new FlagError('--to follower needs --plain: the client library sends writes to the leader it finds (--to any spreads its linearizable reads over every node)');
  const readsFromFlag = values.get('reads-from');
  if (readsFromFlag !== undefined && readsFromFlag !== 'leader' && readsFromFlag !== 'any') throw new FlagError(`--reads-from must be leader or any, got "${readsFromFlag}"`);
  if (readsFromFlag !== undefined && to !== null && !plain && readsFromFlag !== to) throw new FlagError(`--to ${to} and --reads-from ${readsFromFlag} disagree: give one of them`);
  if (plain && readsFromFlag !== undefined) throw new FlagError('--reads-from applies to the client library; with --plain, --to says where every operation goes');
  const linearizableReadsFrom = readsFromFlag ?? (to === 'any' && !plain ? 'any' : 'leader');
  return { plain, to, transport, linearizableReadsFrom: linearizableReadsFrom as 'leader' | 'any' };
}
