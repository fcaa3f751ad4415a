// Bundles the function app into dist/main.js, the file package.json `main` points the Functions host at.
import { build } from 'esbuild';

await build({
  entryPoints: ['functions/index.ts'],
  outfile: 'dist/main.js',
  bundle: true,
  platform: 'node',
  target: 'node22',
  format: 'cjs',
  sourcemap: true,
  minify: true,
  keepNames: true,
  // The Functions library must be the host's own copy: the worker injects @azure/functions-core into it.
  // applicationinsights (with its OpenTelemetry tree) is required on the first telemetry flush, in Azure.
  external: ['@azure/functions', '@azure/functions-core', 'applicationinsights'],
  logLevel: 'warning',
  // ESM builds of some dependencies (@azure/storage-common's crc64.js) call createRequire(import.meta.url)
  // at load time; in a CommonJS bundle import.meta is empty and the bundle would not load at all.
  define: { 'import.meta.url': '__bundleUrl' },
  banner: { js: "var __bundleUrl = require('node:url').pathToFileURL(__filename).href;" },
});
