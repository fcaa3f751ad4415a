/**
 * Redaction on 1 MB of adversarial input, against 1 MB of ordinary log text in the same run (ratio).
 * Hooked into `npm run bench`; also runs alone: `node local/with-local-ca.mjs tsx local/bench/redact.ts`.
 */
import { performance } from 'node:perf_hooks';
import { redact } from '../../shared/redact';
import { table, type Row } from './report';

const MB = 1024 * 1024;

/** Inputs that made a pattern rescan (the old JWT pattern took about a minute on 256 KB of `eyJ-`). */
const ADVERSARIAL: Record<string, string> = {
  'eyJ- runs': 'eyJ-'.repeat(MB / 4),
  'eyJx. parts': 'eyJxxxxx.'.repeat(Math.ceil(MB / 9)),
  'Bearer chains': 'Bearer '.repeat(Math.ceil(MB / 7)),
  'one long token': 'a'.repeat(MB),
};
const ORDINARY = 'rotation of kv-prod/adf-databricks-pat failed at create: 503 Service Unavailable; '.repeat(
  Math.ceil(MB / 83),
);

function timeMs(text: string): number {
  const runs = 5;
  const started = performance.now();
  for (let i = 0; i < runs; i++) redact(text);
  return (performance.now() - started) / runs;
}

export function redactRows(): Row[] {
  const baseline = timeMs(ORDINARY);
  return Object.entries(ADVERSARIAL).map(([name, text]) => ({
    metric: `redact 1 MB: ${name}`,
    value: timeMs(text),
    baseline,
    unit: 'ms',
    digits: 2,
    note: 'baseline: 1 MB of ordinary log text',
  }));
}

if (require.main === module) console.log(table(redactRows()));
