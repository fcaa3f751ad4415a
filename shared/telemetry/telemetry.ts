import type { TokenCredential } from '@azure/core-auth';
import type { Settings } from '../config';
import { redact, redactDimension } from '../redact';
import type { Outcome } from '../rotation/engine';
import { EVENTS, type EventName } from './events';

export type Dimensions = Record<string, string | number | boolean | null | undefined>;
export type Level = 'info' | 'warn' | 'error';
/** Where log lines go: the invocation's logger in the Functions host, the console elsewhere. */
export type LogSink = (level: Level, line: string) => void;

export interface Telemetry {
  /** A custom event (Application Insights `customEvents`), also written as a log line. */
  event(name: EventName, dimensions: Dimensions): void;
  log(level: Level, message: string, dimensions?: Dimensions): void;
  /** The same telemetry, with these dimensions on everything (e.g. the invocation id). */
  with(dimensions: Dimensions, sink?: LogSink): Telemetry;
  flush(): Promise<void>;
}

interface EventClient {
  trackEvent(e: {
    name: string;
    properties: Record<string, string>;
    measurements: Record<string, number>;
  }): void;
  flush(): Promise<void>;
}

// The one console writer of the core: every line reaching it was redacted by format()/redact().
const consoleSink: LogSink = (level, line) =>
  // eslint-disable-next-line no-console
  (level === 'error' ? console.error : level === 'warn' ? console.warn : console.info)(line);

/** `key=value` pairs, quoted when needed, every value redacted. */
function format(dimensions: Dimensions): string {
  return Object.entries(dimensions)
    .filter(([, v]) => v !== undefined && v !== null && v !== '')
    .map(([k, v]) => {
      const s = redactDimension(k, String(v));
      return `${k}=${/[\s"=]/.test(s) ? JSON.stringify(s) : s}`;
    })
    .join(' ');
}

class StructuredTelemetry implements Telemetry {
  constructor(
    private readonly client: EventClient | undefined,
    private readonly base: Dimensions,
    private readonly sink: LogSink,
  ) {}

  event(name: EventName, dimensions: Dimensions): void {
    // An unset dimension of the event does not hide the same dimension set on the telemetry.
    const all = {
      ...this.base,
      ...Object.fromEntries(Object.entries(dimensions).filter(([, v]) => v !== undefined)),
    };
    const properties: Record<string, string> = {};
    const measurements: Record<string, number> = {};
    for (const [k, v] of Object.entries(all)) {
      if (v === undefined || v === null) continue;
      if (typeof v === 'number') measurements[k] = v;
      // Numbers are dimensions too, so workbook queries can read them from customDimensions.
      properties[k] = redactDimension(k, String(v));
    }
    this.client?.trackEvent({ name, properties, measurements });
    const level: Level =
      name === EVENTS.SecretRotationFailed ||
      name === EVENTS.NotificationFailed ||
      name === EVENTS.SecretExpired
        ? 'warn'
        : 'info';
    this.sink(level, `[${name}] ${format(all)}`);
  }

  log(level: Level, message: string, dimensions: Dimensions = {}): void {
    const dims = format({ ...this.base, ...dimensions });
    this.sink(level, dims ? `${redact(message)} ${dims}` : redact(message));
  }

  with(dimensions: Dimensions, sink?: LogSink): Telemetry {
    return new StructuredTelemetry(this.client, { ...this.base, ...dimensions }, sink ?? this.sink);
  }

  async flush(): Promise<void> {
    await this.client?.flush();
  }
}

/**
 * Telemetry for the process. With APPLICATIONINSIGHTS_CONNECTION_STRING, custom events go to
 * Application Insights through the classic `applicationinsights` SDK (trackEvent → customEvents),
 * authenticated with the service's identity when the authentication string asks for Entra auth;
 * without it (locally) the same events are readable log lines.
 */
export function createTelemetry(
  settings: Settings,
  credential?: TokenCredential,
  sink: LogSink = consoleSink,
): Telemetry {
  let client: EventClient | undefined;
  if (settings.APPLICATIONINSIGHTS_CONNECTION_STRING) {
    // Loaded only when configured: it is large, and most local runs do not need it.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const ai = require('applicationinsights') as typeof import('applicationinsights');
    const tc = new ai.TelemetryClient(settings.APPLICATIONINSIGHTS_CONNECTION_STRING);
    if (
      credential &&
      /Authorization=AAD/i.test(process.env.APPLICATIONINSIGHTS_AUTHENTICATION_STRING ?? '')
    ) {
      tc.config.aadTokenCredential = credential;
    }
    client = {
      trackEvent: (e) => tc.trackEvent(e),
      flush: () => new Promise((resolve) => tc.flush({ callback: () => resolve() })),
    };
  }
  return new StructuredTelemetry(client, {}, sink);
}

/** The custom event for an engine outcome, with the design's dimensions. */
export function trackOutcome(
  telemetry: Telemetry,
  outcome: Outcome,
  op: 'rotate' | 'revoke-previous' | 'reconcile',
): void {
  const name: EventName =
    outcome.status === 'rotated'
      ? EVENTS.SecretRotated
      : outcome.status === 'failed'
        ? EVENTS.SecretRotationFailed
        : outcome.status === 'planned'
          ? EVENTS.SecretRotationPlanned
          : outcome.status === 'revoked'
            ? op === 'reconcile'
              ? EVENTS.OrphanCredentialRevoked
              : EVENTS.PreviousCredentialRevoked
            : EVENTS.SecretRotationSkipped;
  telemetry.event(name, {
    vault: outcome.vault,
    secret: outcome.secret,
    kind: outcome.kind,
    outcome: outcome.status,
    durationMs: outcome.durationMs,
    rotationId: outcome.rotationId,
    operation: op,
    step: outcome.status === 'failed' ? outcome.step : undefined,
    reason: outcome.status === 'failed' || outcome.status === 'skipped' ? outcome.reason : undefined,
    transient: outcome.status === 'failed' ? outcome.transient : undefined,
    newExpiry: outcome.status === 'rotated' ? outcome.newExpiry : undefined,
    credentialCount: outcome.status === 'revoked' ? outcome.credentialIds.length : undefined,
  });
}
