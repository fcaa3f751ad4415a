/**
 * How a running `npm start` can be found by other processes on this machine (the operator CLI):
 * `.local/session.json` (git-ignored, readable by this user only) names the process, local Azure's
 * origin, the function log and the app settings the function app runs with. Removed when it stops.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export const SESSION_FILE = path.resolve(__dirname, '..', '.local', 'session.json');

export interface Session {
  pid: number;
  /** Local Azure's main origin (Entra, Graph, control API); absent against a real tenant. */
  azureUrl?: string;
  logFile: string;
  env: Record<string, string | undefined>;
}

export function writeSession(session: Session, file = SESSION_FILE): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(session, null, 2), { mode: 0o600 });
  chmodSync(file, 0o600);
}

/** The session of a running `npm start`, or undefined (no file, or its process has gone). */
export function readSession(file = SESSION_FILE): Session | undefined {
  if (!existsSync(file)) return undefined;
  let session: Session;
  try {
    session = JSON.parse(readFileSync(file, 'utf8')) as Session;
  } catch {
    return undefined;
  }
  try {
    process.kill(session.pid, 0);
  } catch (e) {
    // EPERM: it exists but belongs to someone else; ESRCH: it is gone.
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return undefined;
  }
  return session;
}

export function removeSession(pid: number, file = SESSION_FILE): void {
  if (readSession(file)?.pid === pid) rmSync(file, { force: true });
}
