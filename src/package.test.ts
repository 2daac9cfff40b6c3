/**
 * The published package holds the product only: no test file, no test helper (they live
 * in `testing/` folders and under `integration/`), and nothing the product imports is
 * left out of it. Asks npm itself what `npm pack` would ship.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const npmCli = process.env['npm_execpath'];

async function packedFiles(): Promise<string[]> {
  // --ignore-scripts: `prepare` would rebuild; the test runs on the build it is part of.
  const args = ['pack', '--dry-run', '--json', '--ignore-scripts'];
  const { stdout } = npmCli?.endsWith('.js')
    ? await promisify(execFile)(process.execPath, [npmCli, ...args], { cwd: projectRoot, maxBuffer: 16 << 20 })
    : await promisify(execFile)('npm', args, { cwd: projectRoot, maxBuffer: 16 << 20 });
  const report = JSON.parse(stdout) as Array<{ files: Array<{ path: string }> }>;
  const first = report[0];
  assert.ok(first, `npm pack printed no package: ${stdout.slice(0, 200)}`);
  return first.files.map((f) => f.path);
}

test('npm pack ships the product and no test file or test helper', async () => {
  const files = await packedFiles();
  for (const needed of ['dist/cli/main.js', 'dist/index.js', 'dist/index.d.ts', 'proto/quorumkv.proto', 'README.md']) {
    assert.ok(files.includes(needed), `${needed} missing from the package`);
  }
  const testish = files.filter((f) => /\.test\.|\/testing\/|^dist\/integration\/|tsbuildinfo/.test(f));
  assert.deepEqual(testish, [], `test files or helpers in the package: ${testish.join(', ')}`);
});

test('every module a shipped module imports is shipped too', async () => {
  const files = new Set(await packedFiles());
  const missing: string[] = [];
  for (const file of files) {
    if (!file.endsWith('.js')) continue;
    const text = await readFile(path.join(projectRoot, file), 'utf8');
    for (const match of text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
      const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), match[1] ?? ''));
      if (!files.has(target)) missing.push(`${file} -> ${target}`);
    }
  }
  assert.deepEqual(missing, [], `shipped modules import files the package leaves out: ${missing.join(', ')}`);
});

test('every dependency with an install script has a reviewed allowScripts entry, so npm install does not ask the user to act', async () => {
  const manifest = JSON.parse(await readFile(path.join(projectRoot, 'package.json'), 'utf8')) as { allowScripts?: Record<string, boolean> };
  const lock = JSON.parse(await readFile(path.join(projectRoot, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { hasInstallScript?: boolean; optional?: boolean }>;
  };
  const reviewed = manifest.allowScripts ?? {};
  const unreviewed = Object.entries(lock.packages)
    .filter(([where, entry]) => where !== '' && entry.hasInstallScript === true)
    .map(([where]) => where.slice(where.lastIndexOf('node_modules/') + 'node_modules/'.length))
    .filter((name) => !(name in reviewed));
  assert.deepEqual(unreviewed, [], 'add them to allowScripts (npm install-scripts approve|deny)');
});
