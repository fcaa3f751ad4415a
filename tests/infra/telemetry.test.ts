/**
 * The workbook and the alert rules against the custom events the code sends
 * (shared/telemetry/events.ts): the same names, the dimensions the code writes, and every event the
 * design lists shown somewhere.
 */
import { EVENTS, EVENT_DIMENSIONS } from '../../shared/telemetry/events';
import { multilineStrings, params, readInfra, resources, valueOf, variable } from './bicep';

const monitoring = readInfra('app/monitoring.bicep');
const workbookText = readInfra('app/workbook.json');

interface WorkbookItem {
  type: number;
  name: string;
  content: {
    query?: string;
    timeContextFromParameter?: string;
    parameters?: { name: string }[];
    resourceType?: string;
    items?: WorkbookItem[];
  };
}

function items(list: WorkbookItem[]): WorkbookItem[] {
  return list.flatMap((item) => [item, ...items(item.content.items ?? [])]);
}

/** Event names a KQL query selects: `name == "X"`, `name in ("X", "Y")`. */
function eventNames(kql: string): string[] {
  const names = [...kql.matchAll(/\bname\s*==\s*["']([^"']+)["']/g)].map((m) => m[1] ?? '');
  for (const m of kql.matchAll(/\bname\s+in\s*\(([^)]*)\)/g)) {
    names.push(...[...(m[1] ?? '').matchAll(/["']([^"']+)["']/g)].map((x) => x[1] ?? ''));
  }
  return names;
}

/** customDimensions keys a KQL query reads. */
function dimensions(kql: string): string[] {
  return [...kql.matchAll(/customDimensions(?:\.(\w+)|\[["'](\w+)["']\])/g)].map((m) => m[1] ?? m[2] ?? '');
}

/** Dimensions ScanCompleted carries (the doc comment of SECRET_DIMENSIONS in events.ts). */
const SCAN_DIMENSIONS = [
  'vault',
  'scanned',
  'optedIn',
  'due',
  'expiring',
  'expired',
  'invalid',
  'enqueued',
  'durationMs',
  'byKind',
  'byExpiry',
  'outcome',
];

/** Dimensions beyond SECRET_DIMENSIONS that the workbook and alerts read, and who writes them. */
const OTHER_DIMENSIONS = {
  // shared/telemetry/telemetry.ts trackOutcome.
  operation: 'trackOutcome',
  step: 'trackOutcome (failed)',
  reason: 'trackOutcome (failed, skipped); SecretPolicyInvalid',
  transient: 'trackOutcome (failed)',
  credentialCount: 'trackOutcome (revoked)',
  // shared/scan/scanner.ts on SecretExpiring / SecretExpired.
  expiresOn: 'scanner',
  within: 'scanner',
  // The notification sender and the queue workers on the last dequeue (poison alert).
  channel: 'NotificationSent / NotificationFailed',
  poisoned: 'SecretRotationFailed / NotificationFailed on the last dequeue',
};

/** Events the design (section 6) requires the workbook or the alerts to show. */
const DESIGN_EVENTS = [
  EVENTS.SecretRotated,
  EVENTS.SecretRotationFailed,
  EVENTS.SecretRotationSkipped,
  EVENTS.SecretExpiring,
  EVENTS.PreviousCredentialRevoked,
  EVENTS.ScanCompleted,
];

describe('workbook', () => {
  test('workbook.json parses as a Notebook/1.0 workbook', () => {
    const workbook = JSON.parse(workbookText);
    expect(workbook.version).toBe('Notebook/1.0');
    expect(Array.isArray(workbook.items)).toBe(true);
  });

  const workbook = JSON.parse(workbookText) as { items: WorkbookItem[]; fallbackResourceIds: string[] };
  const all = items(workbook.items);
  const queries = all.filter((i) => i.type === 3);

  test('every query item reads customEvents over the TimeRange parameter', () => {
    const declared = all.flatMap((i) => i.content.parameters?.map((p) => p.name) ?? []);
    expect(declared).toContain('TimeRange');
    expect(queries.length).toBeGreaterThanOrEqual(8);
    for (const q of queries) {
      expect(q.content.query).toMatch(/^customEvents\n/);
      expect(q.content.timeContextFromParameter).toBe('TimeRange');
      expect(q.content.resourceType).toBe('microsoft.insights/components');
    }
    const names = all.map((i) => i.name);
    expect(new Set(names).size).toBe(names.length);
  });

  test('covers inventory, rotations, failures, upcoming expiries and notification delivery', () => {
    const text = (name: string) => queries.find((q) => q.name === name)?.content.query ?? '';
    expect(text('inventory-by-kind')).toMatch(/ScanCompleted[\s\S]*customDimensions\.byKind/);
    expect(text('inventory-by-expiry')).toMatch(/ScanCompleted[\s\S]*customDimensions\.byExpiry/);
    expect(eventNames(text('rotations-over-time'))).toEqual([EVENTS.SecretRotated]);
    expect(text('failures-by-reason')).toMatch(
      /SecretRotationFailed[\s\S]*step = tostring\(customDimensions\.step\), reason = tostring\(customDimensions\.reason\)/,
    );
    expect(eventNames(text('upcoming-expiries'))).toEqual(
      expect.arrayContaining([EVENTS.SecretExpiring, EVENTS.SecretExpired]),
    );
    expect(text('notifications-by-channel')).toMatch(/by channel$/m);
    expect([...new Set(eventNames(text('notifications-by-channel')))].sort()).toEqual(
      [EVENTS.NotificationFailed, EVENTS.NotificationSent].sort(),
    );
  });

  test('is deployed from this file, bound to the Application Insights resource', () => {
    const wb = resources(monitoring).find((r) => r.type === 'Microsoft.Insights/workbooks');
    expect(wb?.body).toMatch(
      /serializedData:\s*replace\(loadTextContent\('workbook\.json'\), '__APPLICATION_INSIGHTS_ID__', applicationInsights\.id\)/,
    );
    expect(wb?.body).toMatch(/sourceId:\s*applicationInsights\.id/);
    expect(workbook.fallbackResourceIds).toEqual(['__APPLICATION_INSIGHTS_ID__']);
  });
});

describe('alert rules', () => {
  const rules = resources(monitoring).filter((r) => r.type === 'Microsoft.Insights/scheduledQueryRules');
  const queryOf = (symbol: string) => {
    const rule = rules.find((r) => r.symbol === symbol);
    const name = /query:\s*(\w+)/.exec(rule?.body ?? '')?.[1] ?? '';
    return variable(monitoring, name);
  };
  const criterion = (symbol: string) => rules.find((r) => r.symbol === symbol)?.body ?? '';

  test('four log alerts on Application Insights, each notifying the action group', () => {
    expect(rules.map((r) => r.symbol).sort()).toEqual(
      ['poisonedAlert', 'rotationFailedAlert', 'scanMissingAlert', 'secretExpiredAlert'].sort(),
    );
    for (const r of rules) {
      expect(r.body).toMatch(/kind:\s*'LogAlert'/);
      expect(r.body).toMatch(/scopes:\s*\[applicationInsights\.id\]/);
      expect(r.body).toMatch(/actionGroups:\s*\[actionGroup\.id\]/);
    }
    const group = resources(monitoring).find((r) => r.type === 'Microsoft.Insights/actionGroups');
    expect(group?.body).toMatch(/for \(email, i\) in alertEmails/);
    expect(valueOf(group?.body ?? '{}', 'location')).toBe("'Global'");
    // groupShortName: at most 12 characters.
    expect((/groupShortName:\s*'([^']*)'/.exec(group?.body ?? '')?.[1] ?? '').length).toBeLessThanOrEqual(12);
  });

  test('any rotation failure', () => {
    expect(eventNames(queryOf('rotationFailedAlert'))).toEqual([EVENTS.SecretRotationFailed]);
    expect(criterion('rotationFailedAlert')).toMatch(/operator:\s*'GreaterThan'\s*threshold:\s*0/);
  });

  test('any expired opted-in secret', () => {
    const q = queryOf('secretExpiredAlert');
    expect(eventNames(q)).toEqual([EVENTS.SecretExpired]);
    expect(q).toMatch(/tostring\(customDimensions\.optedIn\) == "true"/);
  });

  test('poison messages: the failure events flagged poisoned on the last dequeue', () => {
    const q = queryOf('poisonedAlert');
    expect(eventNames(q)).toEqual(
      expect.arrayContaining([EVENTS.SecretRotationFailed, EVENTS.NotificationFailed]),
    );
    expect(q).toMatch(/tostring\(customDimensions\.poisoned\) == "true"/);
  });

  test('no completed scan within twice the scan interval', () => {
    const q = queryOf('scanMissingAlert');
    expect(eventNames(q)).toEqual([EVENTS.ScanCompleted]);
    expect(q).toMatch(/ago\(\{0\}h\)/);
    expect(variable(monitoring, 'scanMissingQuery')).toMatch(/, scanMissingHours\)$/);
    expect(variable(monitoring, 'scanMissingHours')).toBe('2 * scanIntervalHours');
    const body = criterion('scanMissingAlert');
    expect(body).toMatch(/overrideQueryTimeRange:\s*'PT\$\{scanMissingHours\}H'/);
    expect(body).toMatch(/operator:\s*'LessThan'\s*threshold:\s*1/);
    // Absence is an empty result: splitting by dimensions would hide it.
    expect(body).not.toMatch(/dimensions:/);
    // The same interval as the schedule, and a look-back within the 2-day limit of log alerts.
    expect(readInfra('main.bicep')).toMatch(/scanIntervalHours:\s*scanIntervalHours/);
    const allowed =
      params(monitoring)
        .find((p) => p.name === 'scanIntervalHours')
        ?.decorators.join(' ') ?? '';
    const hours = (/@allowed\(\[([^\]]+)\]\)/.exec(allowed)?.[1] ?? '').split(',').map(Number);
    expect(Math.max(...hours) * 2).toBeLessThanOrEqual(48);
  });
});

describe('events and dimensions', () => {
  const workbookQueries = items((JSON.parse(workbookText) as { items: WorkbookItem[] }).items)
    .map((i) => i.content.query)
    .filter((q): q is string => Boolean(q));
  const alertQueries = multilineStrings(monitoring);
  const used = [...workbookQueries, ...alertQueries].flatMap(eventNames);

  test('every event name the workbook and the alerts use exists in EVENTS', () => {
    const known = new Set<string>(Object.values(EVENTS));
    expect(used.length).toBeGreaterThan(0);
    expect([...new Set(used)].filter((n) => !known.has(n))).toEqual([]);
  });

  test('every event the design lists appears in the workbook or the alerts', () => {
    expect(DESIGN_EVENTS.filter((n) => !used.includes(n))).toEqual([]);
  });

  test('every dimension read is one the code writes', () => {
    const known = new Set<string>([
      ...Object.values(EVENT_DIMENSIONS).flat(),
      ...SCAN_DIMENSIONS,
      ...Object.keys(OTHER_DIMENSIONS),
    ]);
    const read = [...workbookQueries, ...alertQueries].flatMap(dimensions);
    expect(read.length).toBeGreaterThan(0);
    expect([...new Set(read)].filter((d) => !known.has(d))).toEqual([]);
  });
});
