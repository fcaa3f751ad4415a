/** The bench's table (for people) and its JSON (for comparing runs). */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** One line of the table. `ratio` is always value ÷ baseline, both measured in the same run. */
export interface Row {
  metric: string;
  value: number;
  baseline: number;
  unit: string;
  /** Decimals to print value and baseline with. */
  digits?: number;
  note?: string;
}

export const RESULTS_FILE = path.resolve(__dirname, '..', '..', '.local', 'bench-results.json');

export const ratio = (value: number, baseline: number): number | null =>
  baseline === 0 ? null : Number((value / baseline).toFixed(4));

export const mb = (bytes: number): number => Number((bytes / 1024 / 1024).toFixed(1));

function format(n: number, digits: number, unit: string): string {
  return `${n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })}${unit ? ` ${unit}` : ''}`;
}

export function table(rows: readonly Row[]): string {
  const header = ['metric', 'value', 'baseline', 'ratio', 'note'];
  const lines = rows.map((r) => {
    const q = ratio(r.value, r.baseline);
    return [
      r.metric,
      format(r.value, r.digits ?? 0, r.unit),
      format(r.baseline, r.digits ?? 0, r.unit),
      q === null ? 'n/a' : q.toFixed(q < 0.1 ? 3 : 2),
      r.note ?? '',
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] as string).length)));
  const render = (cells: string[]) =>
    `| ${cells.map((c, i) => (i === 1 || i === 2 || i === 3 ? c.padStart(widths[i] as number) : c.padEnd(widths[i] as number))).join(' | ')} |`;
  const rule = `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`;
  return [render(header), rule, ...lines.map(render)].join('\n');
}

export function writeResults(results: unknown): string {
  mkdirSync(path.dirname(RESULTS_FILE), { recursive: true });
  writeFileSync(RESULTS_FILE, `${JSON.stringify(results, null, 2)}\n`);
  return RESULTS_FILE;
}
