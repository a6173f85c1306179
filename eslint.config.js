// Lint rules. Each rule beyond the recommended sets says why it is here.
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'docs/**', '.build-*/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      // Reading the environment is the CLI's job; everything else is handed the values it needs,
      // so tests can pass their own environment (DESIGN.md, convention 3).
      'no-restricted-properties': [
        'error',
        {
          object: 'process',
          property: 'env',
          message: 'take values as parameters; only src/cli reads process.env',
        },
      ],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // A module never ends the process: the runtime and the CLI own shutdown.
      'no-restricted-syntax': [
        'error',
        {
          selector: "CallExpression[callee.object.name='process'][callee.property.name='exit']",
          message: 'only src/cli and scripts end the process',
        },
      ],
    },
  },
  {
    files: ['src/cli/**', 'scripts/**', 'examples/**', 'bench/**', 'test/**', '**/*.test.ts'],
    rules: { 'no-restricted-properties': 'off', 'no-restricted-syntax': 'off' },
  },
  {
    files: ['**/*.test.ts', 'test/**'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
);
