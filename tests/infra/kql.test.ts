/**
 * Every query of the workbook (tiles and parameters) and of the alert rules, parsed and semantically
 * analyzed by the Kusto language service against the classic Application Insights tables, as Azure
 * Monitor runs it (workbook parameters and Bicep format() arguments substituted). And what the queries
 * read, against what the code emits: event names from EVENTS, dimensions from EVENT_DIMENSIONS
 * (shared/telemetry/events.ts).
 */
import { STORAGE } from '../../shared/constants';
import {
  EVENT_DIMENSIONS,
  EVENTS,
  INVOCATION_DIMENSIONS,
  SECRET_STATES,
  type EventName,
} from '../../shared/telemetry/events';
import { readInfra } from './bicep';
import {
  alertQueries,
  allQueries,
  analyze,
  bicepQuery,
  eventNames,
  workbookQueries,
  type Query,
} from './kql';

const queries = allQueries();
const workbookText = readInfra('app/workbook.json');
const monitoring = readInfra('app/monitoring.bicep');

/** customDimensions keys a query reads. */
function dimensions(kql: string): string[] {
  return [...kql.matchAll(/customDimensions(?:\.(\w+)|\[["'](\w+)["']\])/g)].map((m) => m[1] ?? m[2] ?? '');
}

describe('the Kusto language service', () => {
  test('finds the errors the issue reported (the analysis can fail)', () => {
    const codes = (q: string) => analyze(q).diagnostics.map((d) => d.code);
    expect(codes('customEvents | summarize n = count() by kind = tostring(customDimensions.kind)')).toEqual([
      'KS228',
    ]);
    expect(codes('customEvents | where nosuchcolumn == 1')).toEqual(['KS142']);
    expect(codes('requests | project resultCode, duration, success, cloud_RoleName, itemCount')).toEqual([]);
    expect(codes('exceptions | project problemId, outerMessage, severityLevel, type, details')).toEqual([]);
    expect(codes('dependencies | project target, data, type, resultCode, success')).toEqual([]);
    expect(codes('traces | project message, severityLevel, operation_Id, appName')).toEqual([]);
  });
});

describe('every query parses and analyzes with zero diagnostics', () => {
  test('the workbook and the five alert rules are all found', () => {
    const ids = queries.map((q) => q.id);
    expect(ids.filter((id) => id.startsWith('workbook:')).length).toBeGreaterThanOrEqual(20);
    expect(ids).toEqual(expect.arrayContaining(['workbook:parameters/Vault']));
    expect(ids.filter((id) => id.startsWith('alert:')).sort()).toEqual(
      [
        'alert:backlogAlert',
        'alert:poisonedAlert',
        'alert:rotationFailedAlert',
        'alert:scanMissingAlert',
        'alert:secretExpiredAlert',
      ].sort(),
    );
    expect(new Set(ids).size).toBe(ids.length);
  });

  test.each(queries.map((q) => [q.id, q] as [string, Query]))('%s', (_, q) => {
    expect(q.text).not.toMatch(/\{[A-Za-z]+(:[a-z]+)?\}|\{\d+\}/);
    expect(analyze(q.text).diagnostics).toEqual([]);
  });
});

describe('what the queries read is what the code emits (shared/telemetry/events.ts)', () => {
  const known = new Set<string>(Object.values(EVENTS));

  test.each(queries.map((q) => [q.id, q] as [string, Query]))('%s', (_, q) => {
    const names = [...new Set(eventNames(q.text))];
    expect(names.filter((n) => !known.has(n))).toEqual([]);
    const read = [...new Set(dimensions(q.text))];
    if (read.length === 0) return;
    // Each dimension read is one that an event this query selects carries.
    expect(names.length).toBeGreaterThan(0);
    const carried = new Set<string>([
      ...INVOCATION_DIMENSIONS,
      ...names.flatMap((n) => EVENT_DIMENSIONS[n as EventName] as readonly string[]),
    ]);
    expect(read.filter((d) => !carried.has(d))).toEqual([]);
  });

  test('every event the code emits is shown by the workbook or an alert', () => {
    const used = new Set(queries.flatMap((q) => eventNames(q.text)));
    expect(Object.values(EVENTS).filter((n) => !used.has(n))).toEqual([]);
  });

  test("the secret states the health tile names are the scan's byState keys", () => {
    const q = queries.find((x) => x.id === 'workbook:health-secrets-by-state')?.text ?? '';
    for (const state of SECRET_STATES) {
      if (state !== 'due' && state !== 'healthy' && state !== 'expired') expect(q).toContain(`"${state}"`);
    }
    for (const label of ['healthy', 'due', 'in grace', 'failing', 'expired', 'not opted in'])
      expect(q).toContain(`"${label}"`);
  });

  test('queue names in the queries are the ones the code uses', () => {
    expect(bicepQuery(monitoring, 'backlogQuery')).toContain(`queue == "${STORAGE.deadLetterContainer}"`);
    const health = queries.find((x) => x.id === 'workbook:health-poison-backlog')?.text ?? '';
    expect(health).toContain(`"${STORAGE.deadLetterContainer}"`);
  });
});

describe('workbook tiles mean what they say', () => {
  const tiles = workbookQueries(workbookText).filter((q) => !q.id.includes('/'));
  const raw = JSON.parse(workbookText) as { items: { name: string; content: { query?: string } }[] };
  const rawQuery = (id: string) => raw.items.find((i) => `workbook:${i.name}` === id)?.content.query ?? '';
  /** Tiles about queues or the whole app, not vaults: the vault parameter has nothing to filter there. */
  const VAULTLESS_TILES = [
    'workbook:health-poison-backlog',
    'workbook:health-work-backlog',
    'workbook:notification-channels-disabled',
  ];

  test('the Vault parameter filters every tile that has a vault', () => {
    const unfiltered = tiles
      .filter((t) => !VAULTLESS_TILES.includes(t.id))
      .filter((t) => !rawQuery(t.id).includes('| where "*" in ({Vault}) or vault in ({Vault})'));
    expect(unfiltered.map((t) => t.id)).toEqual([]);
  });

  test('events are counted with sum(itemCount), never count()', () => {
    expect(tiles.filter((t) => /\bcount\(\)/.test(t.text)).map((t) => t.id)).toEqual([]);
    expect(tiles.filter((t) => /\bcountif\(/.test(t.text)).map((t) => t.id)).toEqual([]);
  });

  test('inventory and state tiles read completed scans only', () => {
    const fromCounts = tiles.filter((t) => /customDimensions\.(byKind|byExpiry|byState)/.test(t.text));
    expect(fromCounts.map((t) => t.id).sort()).toEqual(
      [
        'workbook:health-secrets-by-state',
        'workbook:inventory-by-expiry',
        'workbook:inventory-by-kind',
      ].sort(),
    );
    for (const t of fromCounts)
      expect(t.text).toMatch(
        /name == "ScanCompleted" and tostring\(customDimensions\.outcome\) == "completed"/,
      );
  });

  test('the latest scan of each vault shows its outcome, error and invocation', () => {
    const q = tiles.find((t) => t.id === 'workbook:scans-by-vault')?.text ?? '';
    expect(q).toMatch(
      /outcome = tostring\(customDimensions\.outcome\), error = tostring\(customDimensions\.error\)/,
    );
    expect(q).toMatch(/invocationId = tostring\(customDimensions\.invocationId\)/);
  });

  test('a tile shows failed attempts beside final failures', () => {
    const q = tiles.find((t) => t.id === 'workbook:attempts-vs-final')?.text ?? '';
    expect(q).toMatch(
      /attempts = sum\(itemCount\), retried = sumif\(itemCount, not\(final\)\), finalFailures = sumif\(itemCount, final\)/,
    );
  });

  test('a "healthy tenant" section comes first: states, next expiries, last scans, poison depth', () => {
    const names = raw.items.map((i) => i.name);
    const health = [
      'health-secrets-by-state',
      'health-next-expiries',
      'health-last-scan',
      'health-poison-backlog',
    ];
    expect(names.indexOf('health-header')).toBe(names.indexOf('parameters') + 1);
    for (const n of health) expect(names.indexOf(n)).toBeLessThan(names.indexOf('inventory-header'));
  });
});

describe('alert rules', () => {
  const alerts = Object.fromEntries(
    alertQueries(monitoring).map((q) => [q.id.replace('alert:', ''), q.text]),
  );

  test('rotation failed: final failures only', () => {
    expect(eventNames(alerts.rotationFailedAlert ?? '')).toEqual([EVENTS.SecretRotationFailed]);
    expect(alerts.rotationFailedAlert).toMatch(/tostring\(customDimensions\.final\) == "true"/);
  });

  test('poison: every MessagePoisoned event', () => {
    expect(eventNames(alerts.poisonedAlert ?? '')).toEqual([EVENTS.MessagePoisoned]);
    expect(alerts.poisonedAlert).not.toMatch(/\| where (?!name == "MessagePoisoned"$)/m);
  });

  test('scan missing: per vault, configured vaults included, completed scans only', () => {
    const q = alerts.scanMissingAlert ?? '';
    expect(q).toContain('let configured = print vault = dynamic(["kv-a","kv-b"])');
    expect(q).toMatch(/outcome == "completed"/);
    expect(q).toMatch(/lastCompleted < ago\(12h\)/);
    expect(q).toMatch(/^\| project vault, lastCompleted$/m);
  });
});
