/**
 * The one command-line parser of every quorumkv command: commander, driven by flag tables.
 * A table names each flag, whether it takes a value, its help, its default and (for node
 * flags) its environment variable; commander prints the help from it (defaults and env vars
 * shown) and refuses what the table does not name: unknown flags, prefixes of known ones
 * (`--topologyX`, `--peer`), missing values, surplus arguments. Values stay strings here;
 * each command checks their meaning and names the flag in its error.
 *
 * Precedence: a flag on the command line, then its environment variable, then its default.
 * Pure: the environment comes in as an argument and help comes back as text, so every layer
 * that has a command line (cli/, bench/, sim/) can use it.
 */

import { Command, CommanderError, Option } from 'commander';

export interface FlagDef {
  /** `value` flags take one (`--x 1` or `--x=1`); `bool` flags none (`--x`; `true`/`false` from the environment). */
  readonly kind: 'value' | 'bool';
  readonly help: string;
  /** Shown in help and used when neither the command line nor the environment gives one. */
  readonly default?: string;
  /** Environment variable read when the flag is not on the command line. */
  readonly env?: string;
}

export interface CommandSpec {
  /** As typed after `quorumkv`, e.g. `bench` or `experiment quorum`. */
  readonly name: string;
  readonly summary: string;
  readonly flags: Readonly<Record<string, FlagDef>>;
  /**
   * Flags this command accepts only to hand on (node flags that `up` and `bench` pass to the
   * nodes they start): listed in help under their own heading, returned in `passed`.
   */
  readonly passThrough?: Readonly<Record<string, FlagDef>>;
  /** Positional arguments, e.g. `<key> <value>` or `[prefix]`; none when absent. */
  readonly args?: string;
  /** Text after the flag list (examples, notes). */
  readonly epilog?: string;
}

export interface ParsedArgs {
  /** Every flag of `flags` with a value (command line, environment or default). */
  readonly values: Map<string, string>;
  /** The flags of `flags` given on the command line (not defaulted). */
  readonly given: ReadonlySet<string>;
  readonly positional: readonly string[];
  /** The pass-through flags given, as arguments to hand on (`--name`, value). */
  readonly passed: readonly string[];
}

/** A usage mistake: the command prints it and exits 2 without doing anything. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** Builds the commander command of `spec` (also used to list it in the top-level help). */
export function commandOf(spec: CommandSpec): Command {
  const cmd = new Command(`quorumkv ${spec.name}`)
    .description(spec.summary)
    .helpOption('-h, --help', 'show this help')
    .allowUnknownOption(false)
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({ writeOut: () => undefined, writeErr: () => undefined, outputError: () => undefined });
  if (spec.args !== undefined) {
    for (const arg of spec.args.split(' ').filter(Boolean)) cmd.argument(arg);
  }
  cmd.allowExcessArguments(false);
  for (const [name, def] of Object.entries(spec.flags)) cmd.addOption(optionOf(name, def));
  const pass = spec.passThrough ?? {};
  for (const [name, def] of Object.entries(pass)) {
    if (spec.flags[name] === undefined) cmd.addOption(optionOf(name, def).helpGroup('Node flags (passed on to every node started):'));
  }
  return cmd;
}

function optionOf(name: string, def: FlagDef): Option {
  const envNote = def.env === undefined ? '' : ` (env: ${def.env})`;
  const option = def.kind === 'bool' ? new Option(`--${name}`, def.help + envNote) : new Option(`--${name} <value>`, def.help + envNote);
  if (def.default !== undefined) option.default(def.default);
  return option;
}

/** What `--help` asked for: the command's help text, to print on stdout. */
export interface HelpRequest {
  readonly help: string;
}

/**
 * Parses `argv` (the arguments after the command name) against `spec`, reading environment
 * variables from `env`. Throws UsageError on any mistake.
 */
export function parseCommand(spec: CommandSpec, argv: readonly string[], env: Readonly<Record<string, string | undefined>>): ParsedArgs | HelpRequest {
  const cmd = commandOf(spec);
  try {
    cmd.parse([...argv], { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.help') return { help: spec.epilog === undefined ? cmd.helpInformation() : `${cmd.helpInformation()}\n${spec.epilog}\n` };
      throw new UsageError(`${error.message.replace(/^error: /, '')} (see quorumkv ${spec.name} --help)`);
    }
    throw error;
  }
  const values = new Map<string, string>();
  const given = new Set<string>();
  const passed: string[] = [];
  const all = { ...(spec.passThrough ?? {}), ...spec.flags };
  for (const option of cmd.options) {
    const name = option.long?.slice(2);
    if (name === undefined) continue;
    const def = all[name];
    if (def === undefined) continue;
    const attribute = option.attributeName();
    const fromCli = cmd.getOptionValueSource(attribute) === 'cli';
    const raw: unknown = cmd.getOptionValue(attribute);
    // commander reads `--no-x` as x = false; the table's flag is `no-x`, given or not.
    const text = name.startsWith('no-') && option.negate ? (fromCli ? 'true' : undefined) : raw === undefined ? undefined : String(raw);
    const fromEnv = def.env === undefined ? undefined : env[def.env];
    const value = fromCli ? text : fromEnv !== undefined && fromEnv !== '' ? fromEnv : text;
    if (spec.flags[name] === undefined) {
      if (fromCli && def.kind === 'bool') passed.push(text === undefined || text === 'true' ? `--${name}` : `--${name}=${text}`);
      else if (fromCli) passed.push(`--${name}`, text ?? '');
      continue;
    }
    if (value !== undefined) values.set(name, value);
    if (fromCli) given.add(name);
  }
  return { values, given, positional: cmd.args, passed };
}

/** The top-level help: every command with its one-line summary. */
export function programHelp(specs: readonly { readonly name: string; readonly summary: string }[], preface: string): string {
  const width = Math.max(...specs.map((s) => s.name.length)) + 2;
  const rows = specs.map((s) => `  ${s.name.padEnd(width)}${s.summary}`);
  return `${preface}\ncommands:\n${rows.join('\n')}\n\nquorumkv <command> --help shows a command's flags, their defaults and environment variables.\n`;
}
