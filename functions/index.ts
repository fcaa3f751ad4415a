/**
 * The entry the Functions host loads (package.json `main` → dist/main.js, bundled from here).
 * Each function lives in its own file in this folder and registers itself when imported.
 */
export {};
