// Compiles and lints infra/main.bicep with the real Bicep compiler: `npm run bicep` (CI runs it).
//
// The compiler is `bicep` on PATH, else `az bicep`, else the NuGet package Azure.Bicep.CommandLine.{rid}
// restored with the .NET SDK into ~/.cache/kv-rotator. No compiler is a failure, never a skip. Every
// error and every warning fails the run; a rule turned off in bicepconfig.json says why beside it.
//
//   node local/bicep.mjs            build + lint, print the diagnostics and their counts
//   node local/bicep.mjs --json     also print the path of the compiled ARM template (for tests/infra)
//   node local/bicep.mjs --which    only print the compiler's command line as JSON (for tests/infra)
//   node local/bicep.mjs --file F   build + lint another file (tests/infra/fixtures), nothing cached
//
// The compiled template is kept in .local/bicep/main.json with a hash of infra/ and bicepconfig.json, so
// repeated runs (one per infra test file) compile once.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  writeFileSync,
} from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';

export const BICEP_VERSION = '0.49.2';
const ROOT = path.resolve(import.meta.dirname, '..');
const MAIN = path.join(ROOT, 'infra', 'main.bicep');
const OUT_DIR = path.join(ROOT, '.local', 'bicep');
const OUT = path.join(OUT_DIR, 'main.json');
const STAMP = path.join(OUT_DIR, 'main.hash');

function runs(command, args) {
  const r = spawnSync(command, args, { encoding: 'utf8' });
  return r.status === 0;
}

function nugetRid() {
  const os = { linux: 'linux', darwin: 'osx', win32: 'win' }[process.platform];
  const arch = { x64: 'x64', arm64: 'arm64' }[process.arch];
  return os && arch ? `${os}-${arch}` : undefined;
}

/** Restores Azure.Bicep.CommandLine.{rid} with `dotnet restore` into the cache; the binary's path. */
function restoreFromNuget() {
  const rid = nugetRid();
  if (!rid || !runs('dotnet', ['--version'])) return undefined;
  const cache = path.join(
    process.env.XDG_CACHE_HOME ?? path.join(homedir(), '.cache'),
    'kv-rotator',
    `bicep-${BICEP_VERSION}`,
  );
  const id = `Azure.Bicep.CommandLine.${rid}`;
  const exe = process.platform === 'win32' ? 'bicep.exe' : 'bicep';
  const binary = path.join(cache, 'packages', id.toLowerCase(), BICEP_VERSION, 'tools', exe);
  if (!existsSync(binary)) {
    console.error(`bicep: restoring ${id} ${BICEP_VERSION} with dotnet into ${cache}`);
    mkdirSync(cache, { recursive: true });
    // A project that only downloads the package: nothing is built, nothing is referenced.
    writeFileSync(
      path.join(cache, 'restore.csproj'),
      `<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup><TargetFramework>netstandard2.0</TargetFramework></PropertyGroup>
  <ItemGroup><PackageDownload Include="${id}" Version="[${BICEP_VERSION}]" /></ItemGroup>
</Project>
`,
    );
    const r = spawnSync(
      'dotnet',
      ['restore', path.join(cache, 'restore.csproj'), '--packages', path.join(cache, 'packages')],
      { encoding: 'utf8', env: { ...process.env, DOTNET_CLI_TELEMETRY_OPTOUT: '1', DOTNET_NOLOGO: '1' } },
    );
    if (r.status !== 0 || !existsSync(binary)) {
      console.error(`bicep: dotnet restore of ${id} failed:\n${r.stdout}${r.stderr}`);
      return undefined;
    }
  }
  if (process.platform !== 'win32') chmodSync(binary, 0o755);
  return binary;
}

/** How to call the compiler: [command, ...leading args], and where it came from. */
export function findBicep() {
  if (runs('bicep', ['--version'])) return { command: ['bicep'], source: 'bicep on PATH' };
  if (runs('az', ['bicep', 'version'])) {
    // az bicep runs the binary it installed; call it directly where it is (for `bicep console`).
    const installed = path.join(
      homedir(),
      '.azure',
      'bin',
      process.platform === 'win32' ? 'bicep.exe' : 'bicep',
    );
    return { command: existsSync(installed) ? [installed] : ['az', 'bicep'], source: 'az bicep' };
  }
  const restored = restoreFromNuget();
  if (restored) return { command: [restored], source: `NuGet package (${restored})` };
  return undefined;
}

/**
 * `file(line,col) : Error|Warning|Info CODE: message` lines of a compiler run, and its general
 * `WARNING: …` / `ERROR: …` lines (such as the one for an enabled experimental feature).
 */
export function diagnostics(output) {
  return output.split('\n').flatMap((raw) => {
    const line = raw.trim();
    const d = /^(.*)\((\d+),(\d+)\)\s*:\s*(Error|Warning|Info)\s+([\w-]+):\s*(.*)$/.exec(line);
    if (d) {
      const [, file, row, col, level, code, message] = d;
      return [
        { line: `${path.relative(ROOT, file)}(${row},${col}) : ${level} ${code}: ${message}`, level, code },
      ];
    }
    const general = /^(WARNING|ERROR):\s*(.*)$/.exec(line);
    if (general) {
      const level = general[1] === 'ERROR' ? 'Error' : 'Warning';
      return [{ line: `${level}: ${general[2]}`, level, code: 'general' }];
    }
    return [];
  });
}

function infraHash(bicep) {
  const hash = createHash('sha256').update(bicep.command.join(' '));
  const walk = (dir) =>
    readdirSync(dir, { withFileTypes: true })
      .sort((a, b) => a.name.localeCompare(b.name))
      .forEach((entry) => {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) walk(full);
        else hash.update(path.relative(ROOT, full)).update(readFileSync(full));
      });
  walk(path.join(ROOT, 'infra'));
  hash.update(readFileSync(path.join(ROOT, 'bicepconfig.json')));
  return hash.digest('hex');
}

function run(bicep, args) {
  const [command, ...lead] = bicep.command;
  const r = spawnSync(command, [...lead, ...args], { encoding: 'utf8', cwd: ROOT });
  return { status: r.status ?? 1, output: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

/**
 * Build and lint `file` (infra/main.bicep unless given); the diagnostics of both. Only main.bicep's
 * template is kept and reused while infra/ is unchanged.
 */
export function check(file = MAIN) {
  const bicep = findBicep();
  if (!bicep) {
    throw new Error(
      'no Bicep compiler: install the Bicep CLI (bicep on PATH) or the Azure CLI (az bicep install), ' +
        `or the .NET SDK so the NuGet package Azure.Bicep.CommandLine ${BICEP_VERSION} can be restored`,
    );
  }
  const main = path.resolve(file) === MAIN;
  const out = main ? OUT : path.join(OUT_DIR, `${path.basename(file, '.bicep')}.json`);
  const hash = main ? infraHash(bicep) : undefined;
  if (main && existsSync(OUT) && existsSync(STAMP) && readFileSync(STAMP, 'utf8') === hash) {
    return { bicep, cached: true, failed: false, build: [], lint: [], template: OUT };
  }
  mkdirSync(OUT_DIR, { recursive: true });
  // Written aside, then renamed: test workers compiling at the same time never read half a file.
  const partial = `${out}.${process.pid}`;
  const build = run(bicep, ['build', path.resolve(file), '--outfile', partial]);
  if (existsSync(partial)) renameSync(partial, out);
  const lint = run(bicep, ['lint', path.resolve(file)]);
  const found = { build: diagnostics(build.output), lint: diagnostics(lint.output) };
  const counted = [...found.build, ...found.lint].filter((d) => d.level !== 'Info');
  const failed = build.status !== 0 || lint.status !== 0 || counted.length > 0;
  if (main && !failed) writeFileSync(STAMP, hash);
  return {
    bicep,
    cached: false,
    failed,
    ...found,
    raw: failed ? `${build.output}${lint.output}` : '',
    template: out,
  };
}

function count(list, level) {
  return list.filter((d) => d.level === level).length;
}

if (process.argv[1] === import.meta.filename && process.argv.includes('--which')) {
  const bicep = findBicep();
  if (!bicep) {
    console.error('bicep: no Bicep compiler (bicep on PATH, az bicep, or dotnet for the NuGet package)');
    process.exit(1);
  }
  console.log(JSON.stringify(bicep.command));
} else if (process.argv[1] === import.meta.filename) {
  let result;
  try {
    const at = process.argv.indexOf('--file');
    result = check(at > 0 ? process.argv[at + 1] : undefined);
  } catch (error) {
    console.error(`bicep: ${error.message}`);
    process.exit(1);
  }
  const version = execFileSync(result.bicep.command[0], [...result.bicep.command.slice(1), '--version'], {
    encoding: 'utf8',
  }).trim();
  console.error(`bicep: ${version.split('\n')[0]} (${result.bicep.source})`);
  if (result.cached) {
    console.error('bicep: infra/ unchanged since the last clean build and lint');
  } else {
    for (const [step, list] of [
      ['build', result.build],
      ['lint', result.lint],
    ]) {
      for (const d of list) console.error(d.line);
      console.error(`bicep ${step}: ${count(list, 'Error')} error(s), ${count(list, 'Warning')} warning(s)`);
    }
    if (result.failed) {
      if (result.build.length + result.lint.length === 0) console.error(result.raw);
      console.error('bicep: FAILED (errors and warnings are not allowed)');
      process.exit(1);
    }
  }
  if (process.argv.includes('--json')) console.log(result.template);
}
