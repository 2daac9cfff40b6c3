// Fails when any import circle exists under src/, counting type-only imports too
// (eslint's import-x/no-cycle skips those, yet a type circle still ties two files together).
// Usage: node scripts/check-cycles.mjs [root=src]
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import ts from 'typescript';

const root = path.resolve(process.argv[2] ?? 'src');

async function* walk(dir) {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) yield* walk(full);
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) yield full;
  }
}

/** file -> the files under root it imports (relative specifiers only; '.js' names the '.ts'). */
const graph = new Map();
for await (const file of walk(root)) {
  const { importedFiles } = ts.preProcessFile(await readFile(file, 'utf8'), true, true);
  const targets = importedFiles
    .map((f) => f.fileName)
    .filter((name) => name.startsWith('.'))
    .map((name) => path.resolve(path.dirname(file), name.replace(/\.js$/, '.ts')));
  graph.set(file, [...new Set(targets)]);
}

// Depth-first search with colours; a grey target closes a circle, printed from its start.
const colour = new Map();
const stack = [];
const cycles = [];
function visit(file) {
  colour.set(file, 'grey');
  stack.push(file);
  for (const next of graph.get(file) ?? []) {
    if (!graph.has(next)) continue;
    const c = colour.get(next);
    if (c === 'grey') cycles.push([...stack.slice(stack.indexOf(next)), next]);
    else if (c === undefined) visit(next);
  }
  stack.pop();
  colour.set(file, 'black');
}
for (const file of [...graph.keys()].sort()) if (!colour.has(file)) visit(file);

if (cycles.length > 0) {
  for (const cycle of cycles) {
    console.error(`import circle: ${cycle.map((f) => path.relative(process.cwd(), f)).join(' -> ')}`);
  }
  process.exit(1);
}
console.log(`check-cycles: ${graph.size} files under ${path.relative(process.cwd(), root) || '.'}, no import circle`);
