/**
 * The Kusto language service (`@kusto/language-service-next`, the Bridge.NET build of Kusto.Language)
 * loaded in Node, with the classic Application Insights tables as the database schema, and the
 * workbook's and the alert rules' queries as Azure Monitor runs them (parameters substituted).
 */
import { parseTelemetryLine } from '../../local/host/telemetry';
import { blockAfter, multilineStrings, readInfra, resources, stringVariable, variable } from './bicep';

/** The few members of Kusto.Language this test uses (the package's .d.ts declares a global namespace). */
interface BridgeList<T> {
  Count: number;
  getItem(index: number): T;
}
interface KustoDiagnostic {
  Code: string;
  Severity: string;
  Message: string;
  Start: number;
  Length: number;
}
interface SyntaxNode {
  Kind: number;
  Parent: SyntaxNode | null;
  TextStart: number;
  Width: number;
  ToString(): string;
}
interface KustoCode {
  GetDiagnostics(): BridgeList<KustoDiagnostic>;
  Syntax: SyntaxNode;
}
interface KustoLanguage {
  GlobalState: { Default: { WithDatabase(db: unknown): unknown } };
  KustoCode: { ParseAndAnalyze(text: string, globals: unknown): KustoCode };
  Symbols: {
    TableSymbol: { $ctor7: new (name: string, schema: string, description: string | null) => unknown };
    DatabaseSymbol: { ctor: new (name: string, members: unknown[]) => unknown };
  };
}

let kusto: KustoLanguage | undefined;

/** Kusto.Language, loaded once: bridge.js defines the global `Bridge` the compiled assembly registers on. */
function language(): KustoLanguage {
  if (kusto) return kusto;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require('@kusto/language-service-next/bridge.js');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require('@kusto/language-service-next/Kusto.Language.Bridge.js');
  kusto = (globalThis as unknown as { Kusto: { Language: KustoLanguage } }).Kusto.Language;
  return kusto;
}

// The classic (Application Insights resource) schema: learn.microsoft.com, "Workspace-based resource
// changes" (apm-tables), the ApplicationInsights column of each legacy table.
const COMMON = [
  'appId:string',
  'application_Version:string',
  'appName:string',
  'client_Browser:string',
  'client_City:string',
  'client_CountryOrRegion:string',
  'client_IP:string',
  'client_Model:string',
  'client_OS:string',
  'client_StateOrProvince:string',
  'client_Type:string',
  'cloud_RoleInstance:string',
  'cloud_RoleName:string',
  'customDimensions:dynamic',
  'customMeasurements:dynamic',
  'iKey:string',
  'itemCount:int',
  'itemId:string',
  'itemType:string',
  'operation_Id:string',
  'operation_Name:string',
  'operation_ParentId:string',
  'operation_SyntheticSource:string',
  'sdkVersion:string',
  'session_Id:string',
  'timestamp:datetime',
  'user_AccountId:string',
  'user_AuthenticatedId:string',
  'user_Id:string',
];

export const APPLICATION_INSIGHTS_TABLES: Record<string, string[]> = {
  customEvents: [...COMMON, 'name:string'],
  requests: [
    ...COMMON,
    'duration:real',
    'id:string',
    'name:string',
    'performanceBucket:string',
    'resultCode:string',
    'source:string',
    'success:string',
    'url:string',
  ],
  traces: [...COMMON, 'message:string', 'severityLevel:int'],
  exceptions: [
    ...COMMON,
    'assembly:string',
    'details:dynamic',
    'handledAt:string',
    'innermostAssembly:string',
    'innermostMessage:string',
    'innermostMethod:string',
    'innermostType:string',
    'message:string',
    'method:string',
    'outerAssembly:string',
    'outerMessage:string',
    'outerMethod:string',
    'outerType:string',
    'problemId:string',
    'severityLevel:int',
    'type:string',
  ],
  dependencies: [
    ...COMMON,
    'data:string',
    'duration:real',
    'id:string',
    'name:string',
    'performanceBucket:string',
    'resultCode:string',
    'success:string',
    'target:string',
    'type:string',
  ],
};

let globals: unknown;

function applicationInsights(): unknown {
  if (globals) return globals;
  const K = language();
  const tables = Object.entries(APPLICATION_INSIGHTS_TABLES).map(
    ([name, columns]) => new K.Symbols.TableSymbol.$ctor7(name, `(${columns.join(', ')})`, null),
  );
  globals = K.GlobalState.Default.WithDatabase(new K.Symbols.DatabaseSymbol.ctor('appinsights', tables));
  return globals;
}

export interface Diagnostic {
  code: string;
  severity: string;
  message: string;
  /** The text the diagnostic points at. */
  at: string;
}

export interface Analysis {
  diagnostics: Diagnostic[];
  syntax: SyntaxNode;
}

/** Parses and semantically analyzes a query against the Application Insights tables. */
export function analyze(query: string): Analysis {
  const code = language().KustoCode.ParseAndAnalyze(query, applicationInsights());
  const list = code.GetDiagnostics();
  const diagnostics: Diagnostic[] = [];
  for (let i = 0; i < list.Count; i++) {
    const d = list.getItem(i);
    diagnostics.push({
      code: d.Code,
      severity: d.Severity,
      message: d.Message,
      at: query.slice(d.Start, d.Start + Math.max(d.Length, 1)),
    });
  }
  return { diagnostics, syntax: code.Syntax };
}

// ---------- The queries, as Azure Monitor runs them ----------

export interface Query {
  /** `workbook:<item name>` or `alert:<rule symbol>`. */
  id: string;
  text: string;
}

interface WorkbookItem {
  type: number;
  name: string;
  content: {
    query?: string;
    parameters?: { name: string; query?: string; type: number }[];
    items?: WorkbookItem[];
  };
}

/** Every item of a workbook, groups included. */
export function workbookItems(list: WorkbookItem[]): WorkbookItem[] {
  return list.flatMap((item) => [item, ...workbookItems(item.content.items ?? [])]);
}

/**
 * Workbook parameters as the workbook substitutes them: `{TimeRange:grain}` becomes a timespan, a
 * multi-select `{Vault}` becomes a quoted list (`"kv-a", "kv-b"`; the "All" choice is the list of
 * every value), `{TimeRange}` a time filter the portal applies itself (not in the text).
 */
export const WORKBOOK_PARAMETERS: Record<string, string> = {
  'TimeRange:grain': '1h',
  Vault: '"kv-a", "kv-b"',
};

export function substituteWorkbookParameters(text: string): string {
  return text.replace(/\{([A-Za-z]+(?::[a-z]+)?)\}/g, (m, name: string) => {
    const value = WORKBOOK_PARAMETERS[name];
    if (value === undefined) throw new Error(`unknown workbook parameter ${m}`);
    return value;
  });
}

export function workbookQueries(workbookJson: string): Query[] {
  const workbook = JSON.parse(workbookJson) as { items: WorkbookItem[] };
  const queries: Query[] = [];
  for (const item of workbookItems(workbook.items)) {
    if (item.content.query) queries.push({ id: `workbook:${item.name}`, text: item.content.query });
    for (const p of item.content.parameters ?? []) {
      if (p.query) queries.push({ id: `workbook:${item.name}/${p.name}`, text: p.query });
    }
  }
  return queries.map((q) => ({ ...q, text: substituteWorkbookParameters(q.text) }));
}

/** Values of the Bicep parameters a `format()` of monitoring.bicep fills in, as a deployment would. */
export const BICEP_VALUES: Record<string, string> = {
  // 2 * scanIntervalHours, the default 6.
  scanMissingHours: '12',
  // string(vaultNames): a JSON array.
  'string(vaultNames)': '["kv-a","kv-b"]',
};

/**
 * The query of each scheduled query rule: a `'''…'''` literal, or `format('''…''', a, b)` with `{0}`,
 * `{1}` replaced by the arguments' deployed values (BICEP_VALUES).
 */
export function alertQueries(bicep: string): Query[] {
  const rules = resources(bicep).filter((r) => r.type === 'Microsoft.Insights/scheduledQueryRules');
  return rules.map((rule) => {
    const criteria = blockAfter(rule.body, /criteria:\s*/);
    const name = /query:\s*(\w+)/.exec(criteria)?.[1];
    if (!name) throw new Error(`rule ${rule.symbol} has no query variable`);
    return { id: `alert:${rule.symbol}`, text: bicepQuery(bicep, name) };
  });
}

export function bicepQuery(bicep: string, name: string): string {
  const value = variable(bicep, name);
  const literal = multilineStrings(value)[0];
  if (literal === undefined) throw new Error(`var ${name} holds no '''…''' string`);
  if (value.startsWith("'''")) return literal;
  const args = /^format\('''[\s\S]*?''',\s*([\s\S]*)\)$/.exec(value)?.[1];
  if (!args) throw new Error(`var ${name} is neither a literal nor format('''…''', …): ${value}`);
  const values = splitArguments(args).map((a) => {
    // A var holding a string literal is its text; anything else must be listed in BICEP_VALUES.
    const v = BICEP_VALUES[a] ?? (/^\w+$/.test(a) ? literalOf(bicep, a) : undefined);
    if (v === undefined) throw new Error(`no deployed value for format() argument ${a} of ${name}`);
    return v;
  });
  return literal.replace(/\{(\d+)\}/g, (m, i: string) => {
    const v = values[Number(i)];
    if (v === undefined) throw new Error(`${name}: ${m} has no argument`);
    return v;
  });
}

function literalOf(bicep: string, name: string): string | undefined {
  try {
    return stringVariable(bicep, name);
  } catch {
    return undefined;
  }
}

/** Top-level comma-separated arguments (brackets respected). */
function splitArguments(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let current = '';
  for (const c of text) {
    if (c === '(' || c === '[' || c === '{') depth++;
    if (c === ')' || c === ']' || c === '}') depth--;
    if (c === ',' && depth === 0) {
      out.push(current.trim());
      current = '';
    } else current += c;
  }
  if (current.trim()) out.push(current.trim());
  return out;
}

export function allQueries(): Query[] {
  return [
    ...workbookQueries(readInfra('app/workbook.json')),
    ...alertQueries(readInfra('app/monitoring.bicep')),
  ];
}

/** Event names a query selects: `name == "X"`, `name in ("X", "Y")`. */
export function eventNames(kql: string): string[] {
  const names = [...kql.matchAll(/\bname\s*==\s*"([^"]+)"/g)].map((m) => m[1] ?? '');
  for (const m of kql.matchAll(/\bname\s+in\s*\(([^)]*)\)/g)) {
    names.push(...[...(m[1] ?? '').matchAll(/"([^"]+)"/g)].map((x) => x[1] ?? ''));
  }
  return names;
}

// ---------- Replaying an event alert on captured telemetry ----------

/** A custom event as the code sent it: name and customDimensions (all strings, as stored). */
export interface CapturedEvent {
  name: string;
  dimensions: Record<string, string>;
}

/**
 * The row filter of an event alert (its `| where` lines), as a predicate: `name == "X"`,
 * `name in ("X", …)` and `tostring(customDimensions.k) == "v"`, joined by `and`. Any other clause
 * throws, so a query this cannot read is never replayed as if it matched.
 */
export function eventFilter(query: string): (e: CapturedEvent) => boolean {
  const tests: ((e: CapturedEvent) => boolean)[] = [];
  for (const line of query.split('\n').map((l) => l.trim())) {
    if (!line.startsWith('| where ')) continue;
    for (const clause of line.slice('| where '.length).split(/\s+and\s+/)) {
      let m: RegExpExecArray | null;
      if ((m = /^name == "([^"]+)"$/.exec(clause))) {
        const name = m[1];
        tests.push((e) => e.name === name);
      } else if ((m = /^name in \(([^)]*)\)$/.exec(clause))) {
        const names = [...(m[1] ?? '').matchAll(/"([^"]+)"/g)].map((x) => x[1]);
        tests.push((e) => names.includes(e.name));
      } else if ((m = /^tostring\(customDimensions\.(\w+)\) == "([^"]*)"$/.exec(clause))) {
        const [, key, value] = m;
        tests.push((e) => (e.dimensions[key as string] ?? '') === value);
      } else throw new Error(`cannot replay the clause ${clause}`);
    }
  }
  if (tests.length === 0) throw new Error('no where clause to replay');
  return (e) => tests.every((t) => t(e));
}

/** The events in log lines the telemetry wrote, parsed as the local Functions host parses them. */
export function eventsInLog(lines: string[]): CapturedEvent[] {
  return lines.map((l) => parseTelemetryLine(l)).filter((e): e is CapturedEvent => e !== undefined);
}
