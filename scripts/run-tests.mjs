// Runs every compiled test file under dist/ with node's test runner.
// Usage: node scripts/run-tests.mjs [--unit] [filter...]
//   --unit     skip integration tests (files under dist/test/ that start real processes)
//   filter     only files whose path contains one of the given substrings
import { readdir } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import path from 'node:path';

const args = process.argv.slice(2);
const unitOnly = args.includes('--unit');
const filters = args.filter((a) => !a.startsWith('--'));

async function* walk(dir) {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) yield* walk(full);
    else if (entry.name.endsWith('.test.js')) yield full;
  }
}

const files = [];
for await (const file of walk('dist')) {
  if (unitOnly && file.includes(`${path.sep}integration${path.sep}`)) continue;
  if (filters.length && !filters.some((f) => file.includes(f))) continue;
  files.push(file);
}
files.sort();
if (files.length === 0) {
  console.error('run-tests: no test files found under dist/ (did the build run?)');
  process.exit(1);
}

const child = spawn(
  process.execPath,
  ['--test', '--test-concurrency=2', '--test-reporter=spec', ...files],
  { stdio: 'inherit' },
);
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
