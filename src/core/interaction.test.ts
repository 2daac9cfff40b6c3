/**
 * Scenario tests as scripts with expected output (testdata/*.txt): each `> command`
 * line is run by the Interaction harness and followed by what it printed. A behaviour
 * change shows up as a readable diff. Regenerate with `REWRITE=1 npm run test:unit`,
 * then read the diff before committing it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Interaction } from './testing/interaction.js';

const dir = fileURLToPath(new URL('../../src/core/testdata/', import.meta.url));

for (const file of readdirSync(dir).filter((f) => f.endsWith('.txt')).sort()) {
  test(`core scenario ${file} produces its recorded output`, () => {
    const expected = readFileSync(dir + file, 'utf8');
    const script = expected
      .split('\n')
      .filter((l) => l.startsWith('> ') || l.startsWith('#'))
      .map((l) => (l.startsWith('> ') ? l.slice(2) : l))
      .join('\n');
    const header = expected.split('\n').filter((l, i, all) => l.startsWith('#') && all.slice(0, i).every((p) => p.startsWith('#'))).join('\n');
    const actual = (header ? header + '\n' : '') + new Interaction().run(script);
    if (process.env['REWRITE'] === '1') {
      writeFileSync(dir + file, actual);
      return;
    }
    assert.equal(actual, expected);
  });
}
