import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', 'coverage/', '.local/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', ignoreRestSiblings: true },
      ],
      // Core code logs through shared/telemetry, which redacts; a stray console call would not.
      'no-console': ['error', { allow: ['warn', 'error'] }],
    },
  },
  { files: ['local/**', 'tests/**', '*.mjs', '*.js'], rules: { 'no-console': 'off' } },
  { files: ['*.js'], rules: { '@typescript-eslint/no-require-imports': 'off' } },
);
