import { createHash } from 'node:crypto';
import type { Notices } from '../clients/notices';

/**
 * Failure notices go out once per secret version, step and reason per UTC day, however often the
 * event is redelivered or the scan plans the work. Ids and times in the reason do not make it new.
 */
export function failureNoticeKey(
  where: { vault: string; secret: string; version?: string },
  step: string,
  reason: string,
  at: Date,
): string {
  const stable = reason
    .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi, '{id}')
    .replace(/\d{4}-\d\d-\d\dT[\d:.]+Z/g, '{time}');
  const digest = createHash('sha256').update(`${step}\n${stable}`).digest('hex').slice(0, 32);
  return `failed/${where.vault.toLowerCase()}/${where.secret.toLowerCase()}/${where.version ?? 'none'}/${at.toISOString().slice(0, 10)}/${digest}`;
}

/** Whether this failure notice is news today (see `failureNoticeKey`); an unreachable store says yes. */
export async function firstFailureToday(
  notices: Notices,
  where: { vault: string; secret: string; version?: string },
  step: string,
  reason: string,
  at: Date,
): Promise<boolean> {
  try {
    return await notices.firstTime(failureNoticeKey(where, step, reason, at));
  } catch {
    // Telling owners twice beats not telling them.
    return true;
  }
}
