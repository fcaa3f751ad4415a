/**
 * Just enough reading of Bicep text for the infra contract tests: no Bicep compiler runs here, so the
 * tests read the files. Strings ('…', '''…''') and comments are skipped when matching braces.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

export const ROOT = path.resolve(__dirname, '..', '..');
export const INFRA = path.join(ROOT, 'infra');

export function read(...parts: string[]): string {
  return readFileSync(path.join(ROOT, ...parts), 'utf8');
}

export function readInfra(file: string): string {
  return read('infra', file);
}

/** Every .bicep file under infra/, as paths relative to infra/. */
export function bicepFiles(dir = INFRA): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return bicepFiles(full);
    return entry.name.endsWith('.bicep') ? [path.relative(INFRA, full)] : [];
  });
}

/** The text with comments blanked out (strings kept), so offsets stay the same. */
export function withoutComments(text: string): string {
  let out = '';
  let i = 0;
  while (i < text.length) {
    if (text.startsWith("'''", i)) {
      const end = text.indexOf("'''", i + 3);
      const stop = end < 0 ? text.length : end + 3;
      out += text.slice(i, stop);
      i = stop;
    } else if (text[i] === "'") {
      let j = i + 1;
      while (j < text.length && text[j] !== "'") j += text[j] === '\\' ? 2 : 1;
      out += text.slice(i, j + 1);
      i = j + 1;
    } else if (text.startsWith('//', i)) {
      const end = text.indexOf('\n', i);
      const stop = end < 0 ? text.length : end;
      out += ' '.repeat(stop - i);
      i = stop;
    } else if (text.startsWith('/*', i)) {
      const end = text.indexOf('*/', i + 2);
      const stop = end < 0 ? text.length : end + 2;
      out += text.slice(i, stop).replace(/[^\n]/g, ' ');
      i = stop;
    } else {
      out += text[i];
      i++;
    }
  }
  return out;
}

/** Index just past the bracket that closes the one at `open` ({, [ or (), skipping strings. */
export function closingIndex(text: string, open: number): number {
  const pairs: Record<string, string> = { '{': '}', '[': ']', '(': ')' };
  const stack: string[] = [];
  let i = open;
  while (i < text.length) {
    const c = text[i] ?? '';
    if (text.startsWith("'''", i)) {
      const end = text.indexOf("'''", i + 3);
      if (end < 0) break;
      i = end + 3;
      continue;
    }
    if (c === "'") {
      let j = i + 1;
      while (j < text.length && text[j] !== "'") j += text[j] === '\\' ? 2 : 1;
      i = j + 1;
      continue;
    }
    if (pairs[c]) stack.push(pairs[c]);
    else if (c === '}' || c === ']' || c === ')') {
      if (stack.pop() !== c) throw new Error(`unbalanced "${c}" at offset ${i}`);
      if (stack.length === 0) return i + 1;
    }
    i++;
  }
  throw new Error(`no closing bracket for offset ${open}`);
}

/** The `{ … }` block that follows the first match of `start`, braces included. */
export function blockAfter(text: string, start: RegExp): string {
  const clean = withoutComments(text);
  const m = start.exec(clean);
  if (!m) throw new Error(`no match for ${start}`);
  const open = clean.indexOf('{', m.index + m[0].length - 1);
  return clean.slice(open, closingIndex(clean, open));
}

/** The keys of an object literal `{ … }` at its top level, in order. */
export function topLevelKeys(block: string): string[] {
  const inner = block.trim().replace(/^\{/, '').replace(/\}$/, '');
  const keys: string[] = [];
  let depth = 0;
  let i = 0;
  let lineStart = true;
  while (i < inner.length) {
    const c = inner[i] ?? '';
    if (lineStart && depth === 0) {
      const m = /^[ \t]*('[^']*'|[A-Za-z_$][\w$-]*)\s*:/.exec(inner.slice(i));
      if (m?.[1]) keys.push(m[1].replace(/^'|'$/g, ''));
    }
    lineStart = false;
    if (inner.startsWith("'''", i)) {
      i = inner.indexOf("'''", i + 3) + 3;
      continue;
    }
    if (c === "'") {
      let j = i + 1;
      while (j < inner.length && inner[j] !== "'") j += inner[j] === '\\' ? 2 : 1;
      i = j + 1;
      continue;
    }
    if (c === '{' || c === '[' || c === '(') depth++;
    if (c === '}' || c === ']' || c === ')') depth--;
    if (c === '\n' || (c === ',' && depth === 0)) lineStart = true;
    i++;
  }
  return keys;
}

/** The value text of `key:` at the top level of an object literal. */
export function valueOf(block: string, key: string): string {
  const clean = block;
  const re = new RegExp(`(^|[\\s{,])'?${key.replace(/[$]/g, '\\$')}'?\\s*:\\s*`, 'g');
  for (let m = re.exec(clean); m; m = re.exec(clean)) {
    const start = m.index + m[0].length;
    // Only keys at depth 1 of this block count.
    const before = clean.slice(0, m.index + 1);
    let depth = 0;
    for (const ch of withoutStrings(before)) {
      if (ch === '{' || ch === '[' || ch === '(') depth++;
      if (ch === '}' || ch === ']' || ch === ')') depth--;
    }
    if (depth !== 1) continue;
    const first = clean[start] ?? '';
    if (first === '{' || first === '[' || first === '(')
      return clean.slice(start, closingIndex(clean, start));
    const rest = clean.slice(start);
    if (rest.startsWith("'''")) return rest.slice(0, rest.indexOf("'''", 3) + 3);
    const end = rest.search(/\n|,\s*[A-Za-z_']|\s*\}$/);
    return (end < 0 ? rest : rest.slice(0, end)).trim();
  }
  throw new Error(`no key "${key}" in block`);
}

function withoutStrings(text: string): string {
  return text.replace(/'''[\s\S]*?'''/g, "''").replace(/'(?:[^'\\]|\\.)*'/g, "''");
}

export interface Resource {
  symbol: string;
  type: string;
  apiVersion: string;
  existing: boolean;
  /** The `{ … }` body (for a loop, the body of one element). */
  body: string;
  /** The text between `=` and the body: `[ for … :`, `if (…)`. */
  head: string;
}

/** Every `resource` declaration of a Bicep file. */
export function resources(text: string): Resource[] {
  const clean = withoutComments(text);
  const re = /^resource\s+(\w+)\s+'([^'@]+)@([^']+)'\s*(existing\s*)?=/gm;
  const found: Resource[] = [];
  for (let m = re.exec(clean); m; m = re.exec(clean)) {
    const after = m.index + m[0].length;
    const open = clean.indexOf('{', after);
    found.push({
      symbol: m[1] ?? '',
      type: m[2] ?? '',
      apiVersion: m[3] ?? '',
      existing: Boolean(m[4]),
      head: clean.slice(after, open).trim(),
      body: clean.slice(open, closingIndex(clean, open)),
    });
  }
  return found;
}

export interface Module {
  symbol: string;
  source: string;
  head: string;
  body: string;
}

/** Every `module` declaration of a Bicep file. */
export function modules(text: string): Module[] {
  const clean = withoutComments(text);
  const re = /^module\s+(\w+)\s+'([^']+)'\s*=/gm;
  const found: Module[] = [];
  for (let m = re.exec(clean); m; m = re.exec(clean)) {
    const after = m.index + m[0].length;
    const open = clean.indexOf('{', after);
    found.push({
      symbol: m[1] ?? '',
      source: m[2] ?? '',
      head: clean.slice(after, open).trim(),
      body: clean.slice(open, closingIndex(clean, open)),
    });
  }
  return found;
}

export interface Param {
  name: string;
  type: string;
  /** The default's text, or undefined when the parameter is required. */
  defaultValue?: string;
  /** Decorator lines directly above the declaration. */
  decorators: string[];
}

/** Every `param` of a Bicep file with its type, default and decorators. */
export function params(text: string): Param[] {
  const lines = withoutComments(text).split('\n');
  const found: Param[] = [];
  lines.forEach((line, index) => {
    const m = /^param\s+(\w+)\s+(.+?)(?:\s+=\s+(.+))?\s*$/.exec(line);
    if (!m) return;
    const decorators: string[] = [];
    // Walk up to the previous declaration or blank line; multi-line decorators contribute their first line.
    for (let j = index - 1; j >= 0; j--) {
      const above = (lines[j] ?? '').trim();
      if (above === '' || /^(param|var|resource|module|output|type|targetScope)\b/.test(above)) break;
      if (above.startsWith('@')) decorators.unshift(above);
    }
    found.push({ name: m[1] ?? '', type: m[2] ?? '', defaultValue: m[3], decorators });
  });
  return found;
}

/** Names of every `output` of a Bicep file. */
export function outputs(text: string): string[] {
  return [...withoutComments(text).matchAll(/^output\s+(\w+)\s/gm)].map((m) => m[1] ?? '');
}

/** The value of `var name = …`: everything up to the line end where all brackets are closed. */
export function variable(text: string, name: string): string {
  const clean = withoutComments(text);
  const m = new RegExp(`^var\\s+${name}\\s*=\\s*`, 'm').exec(clean);
  if (!m) throw new Error(`no var ${name}`);
  const start = m.index + m[0].length;
  let i = start;
  while (i < clean.length && clean[i] !== '\n') {
    const c = clean[i] ?? '';
    if (c === '{' || c === '[' || c === '(' || c === "'") {
      i = c === "'" ? stringEnd(clean, i) : closingIndex(clean, i);
    } else i++;
  }
  return clean.slice(start, i).trim();
}

/** Index just past the string literal ('…' or '''…''') that starts at `i`. */
function stringEnd(text: string, i: number): number {
  if (text.startsWith("'''", i)) return text.indexOf("'''", i + 3) + 3;
  let j = i + 1;
  while (j < text.length && text[j] !== "'") j += text[j] === '\\' ? 2 : 1;
  return j + 1;
}

/** The string literal a var holds, unquoted. */
export function stringVariable(text: string, name: string): string {
  const value = variable(text, name);
  const m = /^'((?:[^'\\]|\\.)*)'$/.exec(value);
  if (!m) throw new Error(`var ${name} is not a string literal: ${value}`);
  return m[1] ?? '';
}

/** Every multi-line string ('''…''') of a Bicep file. */
export function multilineStrings(text: string): string[] {
  return [...withoutComments(text).matchAll(/'''([\s\S]*?)'''/g)].map((m) => m[1] ?? '');
}

/** The comment line(s) directly above the line of a declaration. */
export function commentAbove(text: string, declaration: RegExp): string {
  const lines = text.split('\n');
  const index = lines.findIndex((line) => declaration.test(line));
  if (index < 0) throw new Error(`no line matching ${declaration}`);
  const comments: string[] = [];
  for (let j = index - 1; j >= 0 && (lines[j] ?? '').trim().startsWith('//'); j--) {
    comments.unshift((lines[j] ?? '').trim().replace(/^\/\/\s?/, ''));
  }
  return comments.join(' ');
}
