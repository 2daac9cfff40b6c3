/**
 * The command line as a user meets it: every command answers --help with its own flags
 * (defaults and, for node flags, environment variables shown), and a mistyped or unknown
 * flag is refused with exit status 2 and a message naming it, before anything starts.
 * Runs the built CLI as a child process; no cluster is started.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const mainPath = fileURLToPath(new URL('./main.js', import.meta.url));

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function run(args: readonly string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [mainPath, ...args], { timeout: 20_000, cwd: '/' }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

/** A flag each command's help must show: proof that it prints its own flags, not the global usage. */
const ownFlag: Readonly<Record<string, string>> = {
  node: '--peers',
  up: '--base-port',
  mode: '--write-quorum',
  put: '--if-version',
  get: '--consistency',
  del: '--if-version',
  ls: '--consistency',
  status: '--endpoints',
  backup: '--out',
  restore: '--from',
  sim: '--planted',
  bench: '--workload',
  check: '--wait',
  experiment: '--writes',
  rollbacks: '--json',
  fault: 'partition',
};

for (const [command, flag] of Object.entries(ownFlag)) {
  test(`quorumkv ${command} --help prints its own flags and exits 0`, async () => {
    const r = await run([command, '--help']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.includes(flag), `${command} --help mentions ${flag}:\n${r.stdout}`);
  });
}

test('node --help shows each flag default and environment variable', async () => {
  const r = await run(['node', '--help']);
  assert.match(r.stdout, /--tick-ms <value>[\s\S]*?\(env:\s+QKV_TICK_MS\)\s+\(default:\s+"50"\)/);
  assert.match(r.stdout, /\(env:\s+QKV_PEERS\)/);
});

test('the top-level help lists every command', async () => {
  const r = await run(['--help']);
  assert.equal(r.code, 0);
  for (const command of Object.keys(ownFlag)) assert.match(r.stdout, new RegExp(`^  ${command} `, 'm'));
});

const refusals: readonly (readonly [string, readonly string[], RegExp])[] = [
  ['an unknown flag', ['mode', '--colour', 'red'], /unknown option '--colour'/],
  ['a flag with a suffix', ['mode', '--topologyX', 'chain'], /unknown option '--topologyX'[\s\S]*Did you mean --topology/],
  ['a prefix of a flag', ['node', '--peer', 'n1=127.0.0.1:1'], /unknown option '--peer'/],
  ['a prefix of an up flag', ['up', '--node', '3'], /unknown option '--node'/],
  ['a flag without its value', ['sim', '--seeds'], /option '--seeds <value>' argument missing/],
  ['an unknown bench flag', ['bench', '--wrokload', 'write'], /unknown option '--wrokload'/],
  ['a missing argument', ['get'], /missing required argument 'key'/],
  ['a surplus argument', ['put', 'k', 'v', 'w'], /too many arguments/],
  ['an unknown command', ['frobnicate'], /unknown command "frobnicate"/],
  ['a bad value', ['node', '--id', 'n1', '--data-dir', '/tmp/x', '--peers', 'n1=127.0.0.1:1', '--tick-ms', 'fast'], /--tick-ms .*integer/],
];

for (const [what, args, pattern] of refusals) {
  test(`${what} exits 2 with an error naming it: quorumkv ${args.join(' ')}`, async () => {
    const r = await run(args);
    assert.equal(r.code, 2, `exit status 2, got ${r.code}: ${r.stderr}`);
    assert.match(r.stderr, pattern);
    assert.equal(r.stdout, '', 'nothing ran');
  });
}
