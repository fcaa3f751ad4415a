import { MASK, redact } from '../redact';
import type { Notification, NotificationKind } from './notification';

/**
 * What every channel shows of a notification. Everything here passes through `redact`: the
 * notification's details were redacted when it was made, but it has since crossed a queue, and
 * a value registered after that (or a credential-shaped string) must still never leave.
 */

const TITLES: Record<NotificationKind, string> = {
  rotated: 'Secret rotated',
  'rotation-failed': 'Secret rotation failed',
  expiring: 'Secret expiring',
  expired: 'Secret expired',
  'previous-revoked': 'Previous credential revoked',
  'orphan-revoked': 'Orphaned credential revoked',
};

/** Strings (and object keys) redacted at every depth; other values as they are. */
export function redactDeep<T>(value: T): T {
  if (typeof value === 'string') return redact(value) as T;
  if (Array.isArray(value)) return value.map(redactDeep) as T;
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [redact(k), redactDeep(v)])) as T;
  }
  return value;
}

/** `Secret rotated: my-vault/db-token`. */
export function title(n: Notification): string {
  return redact(`${TITLES[n.kind] ?? n.kind}: ${n.vault}/${n.secret}`);
}

/** The notification as label/value pairs, fixed fields first, then the details in their order. */
export function facts(n: Notification): { title: string; value: string }[] {
  const fixed: [string, string][] = [
    ['Vault', n.vault],
    ['Secret', n.secret],
    ['Event', n.kind],
    ['Severity', n.severity],
    ['At', n.at],
  ];
  const details = Object.entries(n.details).map(([k, v]): [string, string] => [
    k,
    v === null ? '-' : String(v),
  ]);
  return [...fixed, ...details].map(([t, v]) => ({ title: redact(t), value: redact(v) }));
}

const HTML_ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c] ?? c);
}

/** Control characters (line breaks included) become spaces: one line, no header or layout tricks. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;

/**
 * Text for Teams (Adaptive Card TextBlock and FactSet values render markdown): markdown characters are
 * backslash-escaped, a leading list marker too, and URL schemes and `www.` are broken with a zero-width
 * space so Teams does not auto-link them. A tag saying `[log in](https://evil.example)` shows as that
 * text, never as a link.
 */
export function escapeMarkdown(text: string): string {
  // The redaction mask stays readable; everything around it is escaped.
  return text.split(MASK).map(escapeMarkdownPart).join(MASK);
}

function escapeMarkdownPart(text: string): string {
  return text
    .replace(CONTROL, ' ')
    .replace(/[\\`*_[\]()#<>~|]/g, (c) => `\\${c}`)
    .replace(/^(\s*)([-+]|\d+\.)(\s)/, '$1\\$2$3')
    .replace(/([a-z][a-z0-9+.-]*):\/\//gi, '$1:\u200b//')
    .replace(/\bwww\./gi, 'www\u200b.');
}

/** The email subject: one line of plain text (no CR/LF header injection), at most 200 characters. */
export function emailSubject(n: Notification): string {
  const subject = redact(`[kv-rotator] ${title(n)}`).replace(CONTROL, ' ');
  return subject.length > 200 ? `${subject.slice(0, 199)}…` : subject;
}

/** The email body. Every interpolated value is redacted, then HTML-escaped (tags are untrusted input). */
export function emailHtml(n: Notification): string {
  const rows = facts(n)
    .map(
      (f) =>
        `<tr><th align="left" style="padding:2px 12px 2px 0">${escapeHtml(f.title)}</th><td>${escapeHtml(f.value)}</td></tr>`,
    )
    .join('');
  return [
    '<!DOCTYPE html><html><body style="font-family:Segoe UI,Arial,sans-serif">',
    `<h2>${escapeHtml(title(n))}</h2>`,
    `<table>${rows}</table>`,
    '<p style="color:#666">Sent by kv-credential-rotator. Notifications never contain secret values.</p>',
    '</body></html>',
  ].join('');
}
