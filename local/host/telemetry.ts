/**
 * Reads the custom events shared/telemetry writes as log lines (`[SecretRotated] vault=kv-apps
 * secret=x kind=… outcome=rotated`): locally they are the only record of what happened, and the runner's
 * summary is built from them rather than from anything it assumes.
 */
export interface TelemetryEvent {
  name: string;
  dimensions: Record<string, string>;
  functionName?: string;
  invocationId?: string;
}

const EVENT_LINE = /^\[([A-Za-z]+)\](?: (.*))?$/;
const PAIR = /([A-Za-z0-9_]+)=("(?:[^"\\]|\\.)*"|\S*)/g;

/** The event a log line carries, or undefined for an ordinary log line. */
export function parseTelemetryLine(line: string): Omit<TelemetryEvent, 'functionName'> | undefined {
  const m = EVENT_LINE.exec(line.trim());
  if (!m) return undefined;
  const dimensions: Record<string, string> = {};
  for (const [, key = '', raw = ''] of (m[2] ?? '').matchAll(PAIR)) {
    let value = raw;
    if (raw.startsWith('"')) {
      try {
        value = JSON.parse(raw) as string;
      } catch {
        // keep the quoted text
      }
    }
    dimensions[key] = value;
  }
  return { name: m[1] as string, dimensions, invocationId: dimensions.invocationId };
}
