/**
 * Six-field NCRONTAB, as the timer trigger takes it: `{second} {minute} {hour} {day} {month} {day-of-week}`.
 * Each field: `*`, a value, a range `a-b`, a step `*\/n` or `a-b/n`, or a comma list of those; months
 * and days of the week also by English abbreviation (`Jan`, `Mon`). Times are UTC, as the host's
 * default (WEBSITE_TIME_ZONE unset).
 */

const FIELDS = [
  { name: 'second', min: 0, max: 59 },
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day', min: 1, max: 31 },
  {
    name: 'month',
    min: 1,
    max: 12,
    names: ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'],
  },
  { name: 'day-of-week', min: 0, max: 6, names: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] },
] as const;

export interface Schedule {
  expression: string;
  seconds: Set<number>;
  minutes: Set<number>;
  hours: Set<number>;
  days: Set<number>;
  months: Set<number>;
  weekdays: Set<number>;
  /** `*` in day and day-of-week; cron matches either one when both are restricted. */
  anyDay: boolean;
  anyWeekday: boolean;
}

export class NcrontabError extends Error {
  override name = 'NcrontabError';
}

function parseField(text: string, field: (typeof FIELDS)[number]): Set<number> {
  const values = new Set<number>();
  const value = (v: string): number => {
    const names = 'names' in field ? (field.names as readonly string[]) : [];
    const named = names.indexOf(v.toLowerCase());
    const n = named >= 0 ? named + field.min : /^\d+$/.test(v) ? Number(v) : NaN;
    if (!(n >= field.min && n <= field.max))
      throw new NcrontabError(`"${v}" is not a valid ${field.name} (${field.min}-${field.max})`);
    return n;
  };
  for (const part of text.split(',')) {
    const m = /^(\*|[A-Za-z0-9]+(?:-[A-Za-z0-9]+)?)(?:\/(\d+))?$/.exec(part);
    if (!m) throw new NcrontabError(`"${part}" is not a valid ${field.name} field`);
    const [, range = '', stepText] = m;
    const step = stepText === undefined ? 1 : Number(stepText);
    if (step < 1) throw new NcrontabError(`the step in "${part}" must be at least 1`);
    let from: number = field.min;
    let to: number = field.max;
    if (range !== '*') {
      const [a = '', b] = range.split('-');
      from = value(a);
      to = b === undefined ? (stepText === undefined ? from : field.max) : value(b);
      if (to < from) throw new NcrontabError(`the range "${range}" runs backwards`);
    }
    for (let v = from; v <= to; v += step) values.add(v);
  }
  return values;
}

/** Parses and validates a six-field NCRONTAB expression; throws NcrontabError saying what is wrong. */
export function parseNcrontab(expression: string): Schedule {
  const parts = expression.trim().split(/\s+/);
  if (parts.length !== 6) {
    throw new NcrontabError(
      `"${expression}" has ${parts.length} fields; NCRONTAB takes six: {second} {minute} {hour} {day} {month} {day-of-week}`,
    );
  }
  const [s, mi, h, d, mo, w] = parts.map((p, i) => parseField(p, FIELDS[i] as (typeof FIELDS)[number]));
  return {
    expression,
    seconds: s!,
    minutes: mi!,
    hours: h!,
    days: d!,
    months: mo!,
    weekdays: w!,
    anyDay: parts[3] === '*',
    anyWeekday: parts[5] === '*',
  };
}

function dayMatches(s: Schedule, date: Date): boolean {
  if (!s.months.has(date.getUTCMonth() + 1)) return false;
  const day = s.days.has(date.getUTCDate());
  const weekday = s.weekdays.has(date.getUTCDay());
  if (s.anyDay && s.anyWeekday) return true;
  if (s.anyDay) return weekday;
  if (s.anyWeekday) return day;
  return day || weekday;
}

/** The first occurrence strictly after `after`, searching up to five years ahead. */
export function nextOccurrence(s: Schedule, after: Date): Date | undefined {
  const start = new Date(Math.floor(after.getTime() / 1000) * 1000 + 1000);
  const day = new Date(Date.UTC(start.getUTCFullYear(), start.getUTCMonth(), start.getUTCDate()));
  const sorted = (set: Set<number>) => [...set].sort((a, b) => a - b);
  const [hours, minutes, seconds] = [sorted(s.hours), sorted(s.minutes), sorted(s.seconds)];
  for (let i = 0; i < 5 * 366; i++, day.setUTCDate(day.getUTCDate() + 1)) {
    if (!dayMatches(s, day)) continue;
    for (const h of hours)
      for (const m of minutes)
        for (const sec of seconds) {
          const t = Date.UTC(day.getUTCFullYear(), day.getUTCMonth(), day.getUTCDate(), h, m, sec);
          if (t >= start.getTime()) return new Date(t);
        }
  }
  return undefined;
}

/**
 * Resolves `%NAME%` placeholders from app settings, as the host does for binding properties. A name
 * that is not set fails indexing with the host's message.
 */
export function resolveAppSettings(value: string, env: Record<string, string | undefined>): string {
  return value.replace(/%([^%]+)%/g, (whole, name: string) => {
    const resolved = env[name];
    if (resolved === undefined || resolved === '') throw new Error(`'${whole}' does not resolve to a value.`);
    return resolved;
  });
}
