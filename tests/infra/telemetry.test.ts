/**
 * The shape of the workbook and the alert rules: where they are deployed, what each rule selects and
 * how it evaluates. Parsing every query, and the names and dimensions they read against the code's,
 * is tests/infra/kql.test.ts.
 */
import { EVENTS } from '../../shared/telemetry/events';
import { bicepQuery, eventNames } from './kql';
import { blockAfter, params, readInfra, resources, valueOf, variable } from './bicep';

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
      expect(q.content.query).toMatch(/^(customEvents\n|let \w+ = customEvents\n)/);
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
      /SecretRotationFailed[\s\S]*by step = tostring\(customDimensions\.step\), errorStatus = tostring\(customDimensions\.errorStatus\), errorCode = tostring\(customDimensions\.errorCode\), reason = tostring\(customDimensions\.reason\)/,
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
  const rule = (symbol: string) => rules.find((r) => r.symbol === symbol)?.body ?? '';
  const property = (symbol: string, key: string) => valueOf(blockAfter(rule(symbol), /properties:\s*/), key);
  const queryOf = (symbol: string) => bicepQuery(monitoring, /query:\s*(\w+)/.exec(rule(symbol))?.[1] ?? '');

  test('five log alerts on Application Insights, each notifying the action group', () => {
    expect(rules.map((r) => r.symbol).sort()).toEqual(
      [
        'backlogAlert',
        'poisonedAlert',
        'rotationFailedAlert',
        'scanMissingAlert',
        'secretExpiredAlert',
      ].sort(),
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

  /** Stateless event rules: a window as long as the frequency counts each event exactly once. */
  test.each(['rotationFailedAlert', 'secretExpiredAlert', 'poisonedAlert'])(
    '%s: an event alerts once (stateless, window = frequency, no override)',
    (symbol) => {
      const body = rule(symbol);
      expect(property(symbol, 'autoMitigate')).toBe('false');
      expect(property(symbol, 'windowSize')).toBe(property(symbol, 'evaluationFrequency'));
      expect(body).not.toMatch(/overrideQueryTimeRange/);
      expect(body).toMatch(/operator:\s*'GreaterThan'\s*threshold:\s*0/);
    },
  );

  test('rotation failed: one alert per secret whose rotation finally failed', () => {
    expect(eventNames(queryOf('rotationFailedAlert'))).toEqual([EVENTS.SecretRotationFailed]);
    expect(queryOf('rotationFailedAlert')).toMatch(/tostring\(customDimensions\.final\) == "true"/);
    expect(rule('rotationFailedAlert')).toMatch(/dimensions:\s*perSecret/);
  });

  test('any expired opted-in secret', () => {
    const q = queryOf('secretExpiredAlert');
    expect(eventNames(q)).toEqual([EVENTS.SecretExpired]);
    expect(q).toMatch(/tostring\(customDimensions\.optedIn\) == "true"/);
  });

  test('poison: every MessagePoisoned event, split by queue, cause and secret', () => {
    expect(eventNames(queryOf('poisonedAlert'))).toEqual([EVENTS.MessagePoisoned]);
    expect(rule('poisonedAlert')).toMatch(/dimensions:\s*perPoisonedMessage/);
  });

  test('stateful conditions: a vault not scanning, a poison queue not empty', () => {
    for (const symbol of ['scanMissingAlert', 'backlogAlert']) {
      expect(property(symbol, 'autoMitigate')).toBe('true');
      expect(rule(symbol)).toMatch(/operator:\s*'GreaterThan'\s*threshold:\s*0/);
    }
    expect(rule('scanMissingAlert')).toMatch(/dimensions:\s*perVault/);
    expect(rule('backlogAlert')).toMatch(/dimensions:\s*perQueue/);
    // The backlog is measured once per scan: twice the interval holds the latest measurement.
    expect(rule('backlogAlert')).toMatch(/overrideQueryTimeRange:\s*'PT\$\{scanMissingHours\}H'/);
  });

  test('no completed scan: per vault, within twice the scan interval, over a two-day range', () => {
    const q = queryOf('scanMissingAlert');
    expect(eventNames(q)).toEqual([EVENTS.ScanCompleted]);
    expect(variable(monitoring, 'scanMissingQuery')).toMatch(/, scanMissingHours, string\(vaultNames\)\)$/);
    expect(variable(monitoring, 'scanMissingHours')).toBe('2 * scanIntervalHours');
    // The query decides "too old"; the range only has to reach back far enough to know the vaults.
    expect(rule('scanMissingAlert')).toMatch(/overrideQueryTimeRange:\s*'P2D'/);
    // The same interval as the schedule, the configured vaults, and "too old" within the 2-day range.
    expect(readInfra('main.bicep')).toMatch(/scanIntervalHours:\s*scanIntervalHours/);
    expect(readInfra('main.bicep')).toMatch(/vaultNames:\s*\[for vault in keyVaults: vault\.name\]/);
    const allowed =
      params(monitoring)
        .find((p) => p.name === 'scanIntervalHours')
        ?.decorators.join(' ') ?? '';
    const hours = (/@allowed\(\[([^\]]+)\]\)/.exec(allowed)?.[1] ?? '').split(',').map(Number);
    expect(Math.max(...hours) * 2).toBeLessThanOrEqual(48);
  });
});
