/**
 * The deployment package azd builds: every file of the project tree that .funcignore does not exclude
 * (gitignore rules, as azd applies them). With `remoteBuild: true` Flex Consumption installs and builds
 * it itself, so it must hold the sources and the build script, and nothing local.
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import ignore from 'ignore';
import { ROOT, read } from './bicep';

const rules = ignore().add(read('.funcignore'));

/** Every file under the project root, relative, with `/` separators (skipping .git). */
function tree(dir = ROOT): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    const rel = path.relative(ROOT, full).split(path.sep).join('/');
    if (entry.name === '.git') return [];
    if (entry.isDirectory()) return rules.ignores(`${rel}/`) ? [`${rel}/`] : tree(full);
    return [rel];
  });
}

/** The files azd would put in the package, given the tree plus what a developer's machine also has. */
export function deploymentPackage(extra: string[] = []): string[] {
  return [...tree(), ...extra].filter((file) => !rules.ignores(file)).sort();
}

// What every developer's tree holds besides the repository, whether or not it exists here right now.
const LOCAL_ONLY = [
  'node_modules/@azure/keyvault-secrets/package.json',
  'dist/main.js',
  'dist/main.js.map',
  'dist/handlers.js',
  'dist/handlers.js.map',
  '.local/certs/ca.key',
  '.local/azurite/__queuestorage__/x',
  '.local/bicep/main.json',
  'local.settings.json',
  'coverage/lcov.info',
  '__azurite_db_queue__.json',
  'npm-debug.log',
];

describe('.funcignore', () => {
  const files = deploymentPackage(LOCAL_ONLY);

  test('excludes node_modules, as azd ≥ 1.23.12 requires with remoteBuild', () => {
    expect(read('azure.yaml')).toMatch(/remoteBuild: true/);
    expect(rules.ignores('node_modules/')).toBe(true);
    expect(files.filter((f) => f.startsWith('node_modules/'))).toEqual([]);
  });

  test('ships no build output, source map, local tooling, infra, tests, docs or local data', () => {
    const shipped = files.filter((f) =>
      /^(dist|local|\.local|infra|tests|docs|coverage|\.ci|\.vscode)\/|\.map$|\.log$|^local\.settings|^__azurite/.test(
        f,
      ),
    );
    expect(shipped).toEqual(['local/build.mjs']);
  });

  test('ships what the remote build and the host need', () => {
    for (const needed of [
      'package.json',
      'package-lock.json',
      'host.json',
      'tsconfig.json',
      'local/build.mjs',
      'functions/index.ts',
    ]) {
      expect(files).toContain(needed);
    }
    expect(files.some((f) => f.startsWith('shared/'))).toBe(true);
    // Every top-level entry of the package, so a new one is a decision.
    expect([...new Set(files.map((f) => f.split('/')[0]))].sort()).toEqual(
      expect.arrayContaining([
        'functions',
        'host.json',
        'local',
        'package-lock.json',
        'package.json',
        'shared',
      ]),
    );
    const topLevel = [...new Set(files.map((f) => f.split('/')[0]))];
    expect(topLevel.filter((t) => !ALLOWED_TOP_LEVEL.has(t ?? ''))).toEqual([]);
  });
});

/** The top-level entries a package may have; anything else is a new decision (add it here or to .funcignore). */
const ALLOWED_TOP_LEVEL = new Set([
  'README.md',
  'cli',
  'functions',
  'host.json',
  'local',
  'package-lock.json',
  'package.json',
  'shared',
  'tsconfig.json',
]);
