// Bundles the function app into dist/: main.js (the registrations, the file package.json `main` points
// the Functions host at) and handlers.js (the handlers with everything behind them), which main.js
// requires on the first invocation. Indexing the app loads main.js only.
import { build } from 'esbuild';

const common = {
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
};

// The registrations' one way to the handlers: the other bundle, required at the first invocation (a
// require, not an import(), so the local host can load a fresh copy of both, as it does of main.js).
const handlersApart = {
  name: 'handlers-apart',
  setup(b) {
    b.onResolve({ filter: /^\.\/handlers$/ }, () => ({ path: 'handlers', namespace: 'handlers-apart' }));
    b.onLoad({ filter: /.*/, namespace: 'handlers-apart' }, () => ({
      contents: "module.exports = require('./handlers.js');",
      loader: 'js',
    }));
  },
};

await Promise.all([
  build({
    ...common,
    entryPoints: ['functions/index.ts'],
    outfile: 'dist/main.js',
    external: [...common.external, './handlers.js'],
    plugins: [handlersApart],
  }),
  build({ ...common, entryPoints: ['functions/handlers.ts'], outfile: 'dist/handlers.js' }),
]);
