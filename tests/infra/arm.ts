/**
 * The compiled ARM template of infra/main.bicep, from the real Bicep compiler (local/bicep.mjs: bicep on
 * PATH, az bicep, or the NuGet package), and `bicep console` for the pure functions of
 * infra/app/functions.bicep. No compiler is a test failure with the reason, never a skip.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT, readInfra } from './bicep';

export type Json = Record<string, unknown>;

export interface ArmResource {
  /** Symbolic names from the top template down, e.g. ['api', 'functionApp']. */
  path: string[];
  type: string;
  apiVersion: string;
  existing: boolean;
  condition?: unknown;
  body: Json;
}

function bicep(args: string[], input?: string): string {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'local', 'bicep.mjs'), ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    input,
  });
  if (r.status !== 0) throw new Error(`npm run bicep failed (a Bicep compiler is required):\n${r.stderr}`);
  return r.stdout;
}

let cached: Json | undefined;

/** The compiled main.json (compiled once per infra/ content; see local/bicep.mjs). */
export function compiled(): Json {
  cached ??= JSON.parse(readFileSync(bicep(['--json']).trim(), 'utf8')) as Json;
  return cached;
}

/** Every resource of a template and of the templates of its modules, depth first. */
export function armResources(template: Json = compiled(), prefix: string[] = []): ArmResource[] {
  const list = template.resources as Json | Json[];
  const entries: [string, Json][] = Array.isArray(list)
    ? list.map((r, i) => [String(r.name ?? i), r])
    : Object.entries(list as Record<string, Json>);
  return entries.flatMap(([symbol, r]) => {
    const here: ArmResource = {
      path: [...prefix, symbol],
      type: String(r.type),
      apiVersion: String(r.apiVersion),
      existing: r.existing === true,
      condition: r.condition,
      body: r,
    };
    const nested = (r.properties as Json | undefined)?.template as Json | undefined;
    return [
      here,
      ...(r.type === 'Microsoft.Resources/deployments' && nested ? armResources(nested, here.path) : []),
    ];
  });
}

/** The one resource at this symbolic path. */
export function armResource(...symbols: string[]): ArmResource {
  const found = armResources().filter((r) => r.path.join('/') === symbols.join('/'));
  if (found.length !== 1) throw new Error(`${found.length} resources at ${symbols.join('/')}`);
  return found[0]!;
}

/** The template of a module at this symbolic path. */
export function moduleTemplate(...symbols: string[]): Json {
  return (armResource(...symbols).body.properties as Json).template as Json;
}

/**
 * Evaluates Bicep expressions with `bicep console`, after the `func` declarations of
 * infra/app/functions.bicep. Each expression's value comes back as JSON.
 */
export function evaluate(expressions: string[]): unknown[] {
  const funcs = readInfra('app/functions.bicep')
    .split(/\n(?=@export\(\)|\/\/)/)
    .map((chunk) => {
      const lines = chunk.split('\n').filter((line) => !/^\s*(\/\/|@)/.test(line));
      // The console reads on past a line only while a bracket is open at its end; else join the lines.
      return lines.join(/[[({]$/.test(lines[0] ?? '') ? '\n' : ' ').trim();
    })
    .filter((chunk) => chunk.startsWith('func '));
  // Each value as string() between markers that the console's echo of the input does not contain.
  const lines = [...funcs, ...expressions.map((e) => `concat('<', '<', string(${e}), '>', '>')`)];
  const out = consoleRun(lines.join('\n') + '\n');
  const values = [...out.matchAll(/'<<([\s\S]*?)>>'/g)].map((m) => m[1] ?? '');
  if (values.length !== expressions.length) throw new Error(`bicep console said:\n${out}`);
  return values.map((v) => JSON.parse(v.replace(/\\'/g, "'")) as unknown);
}

function consoleRun(input: string): string {
  const [command = 'bicep', ...lead] = JSON.parse(bicep(['--which'])) as string[];
  return execFileSync(command, [...lead, 'console'], {
    input,
    encoding: 'utf8',
    cwd: path.join(ROOT, 'infra', 'app'),
  });
}
