/** Usage problems (bad options, unreadable settings file): exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** What every command returns: data for `--json`, lines for people, and the exit code. */
export interface CommandResult {
  /** 0 ok, 1 findings or failure. */
  exitCode: 0 | 1;
  data: unknown;
  text: string[];
}

/** A plain text table: a header row, a rule, aligned columns (the last one is not padded). */
export function table(headers: string[], rows: string[][]): string[] {
  if (rows.length === 0) return [];
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(headers), line(widths.map((w) => '─'.repeat(w))), ...rows.map(line)];
}

/** `2026-12-22` (UTC date) or `-`. */
export const day = (d: Date | string | undefined | null): string =>
  d ? new Date(d).toISOString().slice(0, 10) : '-';

/** `in 20 d`, `3 d ago`, `never` for a missing expiry. */
export function relative(d: Date | string | undefined | null, now: Date): string {
  if (!d) return 'never';
  const days = Math.round((new Date(d).getTime() - now.getTime()) / 86_400_000);
  return days >= 0 ? `in ${days} d` : `${-days} d ago`;
}

export interface Progress {
  /** Says what is happening now (replaces the previous step). */
  step(text: string): void;
  done(): void;
}

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/** A spinner on stderr while long work runs; silent unless stderr is a terminal. */
export function progress(stream: NodeJS.WriteStream = process.stderr): Progress {
  if (!stream.isTTY) return { step: () => undefined, done: () => undefined };
  let text = '';
  let frame = 0;
  const draw = () => stream.write(`\r\x1b[2K${FRAMES[frame++ % FRAMES.length]} ${text}`);
  let timer: NodeJS.Timeout | undefined;
  return {
    step: (t) => {
      text = t;
      timer ??= setInterval(draw, 100);
      timer.unref();
      draw();
    },
    done: () => {
      if (timer) clearInterval(timer);
      timer = undefined;
      stream.write('\r\x1b[2K');
    },
  };
}

/** `30d`, `12h`, `90m` → milliseconds; undefined when it is not a duration. */
export function parseDuration(text: string): number | undefined {
  const m = /^(\d+)\s*(d|h|m|s)$/i.exec(text.trim());
  if (!m) return undefined;
  const unit = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000 }[(m[2] as string).toLowerCase() as 'd'];
  return Number(m[1]) * unit;
}
