/**
 * `--profile`: a CPU profile (the V8 sampling profiler, as `node --cpu-prof` writes it) of one part of
 * the bench, summarised by area and by top self-time frames, and saved as `.local/*.cpuprofile` for
 * Chrome DevTools. Only the profiled work is sampled, not the bench's start-up.
 */
import { writeFileSync } from 'node:fs';
import { Session, type Profiler } from 'node:inspector';
import path from 'node:path';
import { RESULTS_FILE } from './report';

export interface ProfileSummary {
  file: string;
  sampledMs: number;
  /** Share of samples (%) by where the code lives. */
  byArea: Record<string, number>;
  /** The heaviest frames by self time. */
  top: { frame: string; selfPercent: number }[];
}

const post = <T>(session: Session, method: string, params?: object) =>
  new Promise<T>((resolve, reject) =>
    session.post(method, params ?? {}, (err, result) => (err ? reject(err) : resolve(result as T))),
  );

function areaOf(url: string, fn: string): string {
  if (fn === '(idle)') return 'idle (waiting: injected latency, I/O)';
  if (fn === '(garbage collector)') return 'garbage collector';
  if (url.includes('/local/azure/')) return 'Key Vault emulator (local/azure)';
  if (url.includes('/shared/')) return 'scanner and policy (shared/)';
  if (/node_modules\/(@azure|@typespec)\//.test(url)) return 'Azure SDK (@azure, @typespec)';
  if (url.startsWith('node:') || url === '') return 'Node (http, TLS, streams, natives)';
  return 'other';
}

/** Runs `work` under the profiler; the summary is of that window only. */
export async function profile<T>(
  name: string,
  work: () => Promise<T>,
  topN = 25,
): Promise<{ result: T; summary: ProfileSummary }> {
  const session = new Session();
  session.connect();
  await post(session, 'Profiler.enable');
  await post(session, 'Profiler.setSamplingInterval', { interval: 200 });
  await post(session, 'Profiler.start');
  let result: T;
  let cpu: Profiler.Profile;
  try {
    result = await work();
  } finally {
    cpu = (await post<{ profile: Profiler.Profile }>(session, 'Profiler.stop')).profile;
    session.disconnect();
  }
  const file = path.join(path.dirname(RESULTS_FILE), `${name}.cpuprofile`);
  writeFileSync(file, JSON.stringify(cpu));

  const nodes = new Map(cpu.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  const areas = new Map<string, number>();
  let total = 0;
  (cpu.samples ?? []).forEach((id, i) => {
    const dt = cpu.timeDeltas?.[i] ?? 0;
    const frame = nodes.get(id)?.callFrame;
    // The profiler's own stop call is not the work's.
    if (!frame || frame.url === 'node:inspector') return;
    const url = frame.url.replace(/^file:\/\//, '');
    const where = url.replace(/.*node_modules\//, '').replace(`${path.resolve(__dirname, '..', '..')}/`, '');
    const key = `${frame.functionName || '(anonymous)'} ${where}${where ? `:${frame.lineNumber + 1}` : ''}`;
    self.set(key, (self.get(key) ?? 0) + dt);
    const area = areaOf(url, frame.functionName);
    areas.set(area, (areas.get(area) ?? 0) + dt);
    total += dt;
  });
  const pct = (t: number) => Number(((100 * t) / total).toFixed(1));
  return {
    result,
    summary: {
      file,
      sampledMs: Math.round(total / 1000),
      byArea: Object.fromEntries([...areas].sort((a, b) => b[1] - a[1]).map(([k, t]) => [k, pct(t)])),
      top: [...self]
        .sort((a, b) => b[1] - a[1])
        .slice(0, topN)
        .map(([frame, t]) => ({ frame, selfPercent: pct(t) })),
    },
  };
}

export function printProfile(title: string, s: ProfileSummary): void {
  console.log(`\nProfile: ${title} (${s.sampledMs} ms sampled; ${s.file})`);
  for (const [area, p] of Object.entries(s.byArea)) console.log(`  ${String(p).padStart(5)}%  ${area}`);
  console.log('  top frames by self time:');
  for (const t of s.top) console.log(`  ${String(t.selfPercent).padStart(5)}%  ${t.frame}`);
}
