// Lint rules enforce the layering (dependencies point down only) and the determinism of the
// core (time and randomness are inputs): a boundary a reviewer has to remember erodes.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';

/** Which sibling folders under src/ each layer may import from. */
const layers = {
  stdx: [],
  wire: ['stdx'],
  core: ['stdx'],
  storage: ['stdx', 'core'],
  transport: ['stdx', 'core'],
  kv: ['stdx', 'core', 'storage/types', 'storage/record-codec'],
  node: ['stdx', 'core', 'kv', 'wire', 'storage/types', 'transport/types'],
  sim: ['stdx', 'core', 'kv', 'node', 'storage', 'transport', 'wire'],
  api: ['stdx', 'core/types', 'kv/types', 'storage/types', 'node', 'wire'],
  client: ['stdx', 'wire'],
  bench: ['stdx', 'wire', 'client'],
  cli: null, // the one place that wires real implementations: may import anything
};

const importSettings = {
  'import-x/resolver': { typescript: { project: './tsconfig.json' } },
  'import-x/extensions': ['.ts'],
  'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
};

/** One no-restricted-paths zone per layer: everything under src/ except what it may use. */
function boundaryZones() {
  return Object.entries(layers)
    .filter(([, allowed]) => allowed !== null)
    .map(([layer, allowed]) => ({
      target: `./src/${layer}`,
      from: './src',
      except: [`./${layer}`, ...allowed.map((a) => (a.includes('/') ? `./${a}.ts` : `./${a}`))],
      message: `${layer}/ may import only from: ${allowed.join(', ') || 'nothing'} (layers depend downward only; see docs/architecture.md).`,
    }));
}

const pureLayerRules = {
  files: ['src/core/**/*.ts', 'src/kv/**/*.ts', 'src/stdx/**/*.ts'],
  ignores: ['src/**/*.test.ts'],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: [
          { regex: '^node:', message: 'core/, kv/ and stdx/ do no I/O: no node:* imports.' },
          { regex: '^(fs|net|os|child_process|timers|crypto|path|process|worker_threads)$', message: 'No I/O modules here.' },
        ],
      },
    ],
    'no-restricted-globals': [
      'error',
      { name: 'Date', message: 'Time is an input: count tick()s.' },
      { name: 'performance', message: 'Time is an input: count tick()s.' },
      { name: 'setTimeout', message: 'No timers in the deterministic core.' },
      { name: 'setInterval', message: 'No timers in the deterministic core.' },
      { name: 'setImmediate', message: 'No timers in the deterministic core.' },
      { name: 'queueMicrotask', message: 'The core runs to completion.' },
      { name: 'process', message: 'No process access in the deterministic core.' },
      { name: 'crypto', message: 'Randomness is an input: use the injected Prng.' },
      { name: 'Promise', message: 'The core runs to completion: no promises.' },
    ],
    'no-restricted-syntax': [
      'error',
      { selector: 'FunctionDeclaration[async=true]', message: 'No async in the deterministic core.' },
      { selector: 'FunctionExpression[async=true]', message: 'No async in the deterministic core.' },
      { selector: 'ArrowFunctionExpression[async=true]', message: 'No async in the deterministic core.' },
      { selector: 'AwaitExpression', message: 'No await in the deterministic core.' },
      { selector: "MemberExpression[object.name='Math'][property.name='random']", message: 'Randomness is an input: use the injected Prng.' },
    ],
  },
};

const noAmbientRandomness = {
  files: ['src/**/*.ts'],
  ignores: ['src/cli/**', 'src/bench/**', 'src/client/**', 'src/**/*.test.ts'],
  rules: {
    'no-restricted-properties': [
      'error',
      { object: 'Math', property: 'random', message: 'Randomness is an input: pass a seeded Prng (stdx/prng.ts).' },
      { object: 'crypto', property: 'randomUUID', message: 'Randomness is an input: pass a seeded Prng (stdx/prng.ts).' },
    ],
  },
};

/**
 * Past ~1,000 lines a file, or ~120 a function, is where the next feature goes wrong: split it
 * into named parts first. Tests are exempt.
 */
const sizeLimits = {
  files: ['src/**/*.ts'],
  ignores: ['src/**/*.test.ts'],
  rules: {
    'max-lines': ['error', { max: 1000, skipBlankLines: false, skipComments: false }],
    'max-lines-per-function': ['error', { max: 120, skipBlankLines: false, skipComments: false }],
  },
};

export default tseslint.config(
  // src/wire/gen is generated from proto/quorumkv.proto (npm run proto): not written by hand.
  { ignores: ['dist/**', 'node_modules/**', 'data/**', 'coverage/**', 'src/wire/gen/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['src/**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { 'import-x': importX },
    settings: importSettings,
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['test', 'it', 'describe', 'suite', 'before', 'after', 'beforeEach', 'afterEach'] },
          ],
        },
      ],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      eqeqeq: ['error', 'always'],
    },
  },
  {
    files: ['src/**/*.ts'],
    ignores: ['src/**/*.test.ts'],
    plugins: { 'import-x': importX },
    settings: importSettings,
    rules: { 'import-x/no-restricted-paths': ['error', { zones: boundaryZones() }] },
  },
  pureLayerRules,
  noAmbientRandomness,
  sizeLimits,
  {
    files: ['scripts/**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
  },
);
