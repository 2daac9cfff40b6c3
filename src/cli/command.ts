/**
 * The CLI's side of the one command-line parser (stdx/command-line.ts): reads the process's
 * environment and prints help on stdout.
 */

import { parseCommand } from '../stdx/command-line.js';
import type { CommandSpec, ParsedArgs } from '../stdx/command-line.js';

export { UsageError, programHelp } from '../stdx/command-line.js';
export type { CommandSpec, FlagDef, ParsedArgs } from '../stdx/command-line.js';

/** Parses a command's arguments; null when help was asked for (and printed). */
export function parseArgs(spec: CommandSpec, argv: readonly string[], env: Readonly<Record<string, string | undefined>> = process.env): ParsedArgs | null {
  const parsed = parseCommand(spec, argv, env);
  if ('help' in parsed) {
    process.stdout.write(parsed.help);
    return null;
  }
  return parsed;
}
