/**
 * The command line as a user meets it: every command answers --help with its own flags
 * (defaults and, for node flags, environment variables shown), and a mistyped or unknown
 * flag is refused with exit status 2 and a message naming it, before anything starts.
 * Runs the built CLI as a child process; no cluster is started (the member commands run
 * against one FakeKvNode behind the real HTTP server, in this process).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import { FakeKvNode } from '../api/fake-node.js';
import { startHttpServer } from '../api/http.js';

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

test('member add --help lists its own flags with the shared ones and their defaults', async () => {
  const r = await run(['member', 'add', '--help']);
  assert.equal(r.code, 0, r.stderr);
  for (const flag of ['--peer', '--http', '--grpc', '--voter', '--force', '--endpoints', '--cluster-file', '--json']) assert.ok(r.stdout.includes(flag), `mentions ${flag}`);
  assert.match(r.stdout, /--deadline-ms <value>[\s\S]*?\(default:\s+"10000"\)/);
  assert.match(r.stdout, /Usage: quorumkv member add \[options\] <id>/);
});

test('member --help and leader --help list their subcommands; leader transfer --help its flags', async () => {
  const member = await run(['member', '--help']);
  assert.equal(member.code, 0);
  for (const sub of ['list', 'add', 'promote', 'remove']) assert.match(member.stdout, new RegExp(`^  member ${sub} `, 'm'));
  const leader = await run(['leader', '--help']);
  assert.match(leader.stdout, /^ {2}leader transfer /m);
  const transfer = await run(['leader', 'transfer', '--help']);
  assert.equal(transfer.code, 0);
  assert.match(transfer.stdout, /Usage: quorumkv leader transfer \[options\] \[id\]/);
  assert.ok(transfer.stdout.includes('--endpoints'));
  const top = await run(['--help']);
  assert.match(top.stdout, /^ {2}member /m);
  assert.match(top.stdout, /^ {2}leader /m);
});

const memberRefusals: readonly (readonly [string, readonly string[], RegExp])[] = [
  ['an unknown member flag', ['member', 'promote', 'n2', '--colour', 'red'], /unknown option '--colour'/],
  ['member add without --peer', ['member', 'add', 'n4', '--endpoints', 'http://127.0.0.1:1'], /member add needs --peer/],
  ['a voter without --force', ['member', 'add', 'n4', '--peer', 'n4:7104', '--voter', '--endpoints', 'http://127.0.0.1:1'], /add --force to mean it/],
  ['member remove without an id', ['member', 'remove'], /missing required argument 'id'/],
  ['an unknown member command', ['member', 'rename'], /unknown member command "rename"/],
  ['an unknown leader command', ['leader', 'elect'], /unknown leader command "elect"/],
  ['leader transfer with two ids', ['leader', 'transfer', 'n2', 'n3'], /too many arguments/],
];

for (const [what, args, pattern] of memberRefusals) {
  test(`${what} exits 2 with an error naming it: quorumkv ${args.join(' ')}`, async () => {
    const r = await run(args);
    assert.equal(r.code, 2, `exit status 2, got ${r.code}: ${r.stderr}`);
    assert.match(r.stderr, pattern);
    assert.equal(r.stdout, '', 'nothing ran');
  });
}

test('member and leader commands change a node behind HTTP, and status shows the members with role and lag', async (t) => {
  const node = new FakeKvNode({ id: 'n1' });
  const server = await startHttpServer({
    node,
    listen: { host: '127.0.0.1', port: 0 },
    limits: { bodyBytesMax: 4096, headerBytesMax: 8192, listLimitMax: 50, requestTimeoutMs: 2_000, leaderWaitMs: 200 },
    validate: { key: () => null, value: () => null },
    registry: new Registry(),
    logger: false,
  });
  t.after(() => server.close());
  node.setLeader({ id: 'n1', http: server.url, grpc: null });
  const at = ['--endpoints', server.url];

  const added = await run(['member', 'add', 'n4', '--peer', '127.0.0.1:7104', '--http', 'http://127.0.0.1:7004', ...at]);
  assert.equal(added.code, 0, added.stderr);
  assert.match(added.stdout, /^added n4 as a learner$/m);
  assert.match(added.stdout, /^ {2}n4 +learner +lag \? +http:\/\/127\.0\.0\.1:7004$/m);
  assert.deepEqual(node.members().members.map((m) => [m.id, m.role]), [['n1', 'voter'], ['n4', 'learner']]);

  const again = await run(['member', 'add', 'n4', '--peer', '127.0.0.1:7104', '--json', ...at]);
  assert.equal(again.code, 1);
  assert.equal(JSON.parse(again.stderr).error, 'member_exists');

  const promoted = await run(['member', 'promote', 'n4', '--json', ...at]);
  assert.equal(promoted.code, 0, promoted.stderr);
  assert.deepEqual(JSON.parse(promoted.stdout).config.members, ['n1', 'n4']);

  const listed = await run(['member', 'list', ...at]);
  assert.match(listed.stdout, /^members \(configuration at log index 2\):$/m);
  assert.match(listed.stdout, /^ {2}n1 +voter +leader +lag \?$/m);

  const status = await run(['status', ...at]);
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, /^members \(configuration at log index 2, as n1 sees it\):$/m);
  assert.match(status.stdout, /^ {2}n4 +voter +lag \? /m);

  const removed = await run(['member', 'remove', 'n9', ...at]);
  assert.equal(removed.code, 1);
  assert.match(removed.stderr, /NotFoundError \(not_found\)/);

  const transfer = await run(['leader', 'transfer', 'n4', ...at]);
  assert.equal(transfer.code, 0, transfer.stderr);
  assert.equal(transfer.stdout, 'the leader is now n4\n');
  assert.deepEqual(node.transfers, ['n4']);
});
