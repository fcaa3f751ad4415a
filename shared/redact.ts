/**
 * The one redaction helper. Every log line, error message, outcome reason and notification passes
 * through `redact`, which removes (1) values this process has handled (registered as they pass by) and
 * (2) anything shaped like a credential, even if it was never registered.
 */

const MASK = '[REDACTED]';

/** Shapes of credentials we handle or may see in provider responses, with what replaces them. */
const PATTERNS: [RegExp, string][] = [
  // Databricks personal access tokens and SP OAuth secrets.
  [/\bdapi[0-9a-f]{32}(?:-\d+)?\b/gi, MASK],
  [/\bdose[0-9a-f]{32}\b/gi, MASK],
  // Entra client secrets: 3 chars, a digit, "Q~", then the rest.
  [/[A-Za-z0-9_.-]{3}\d[Qq]~[A-Za-z0-9_.~-]{30,}/g, MASK],
  // JWTs (access tokens, client assertions).
  [/\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}/g, MASK],
  // Authorization headers, storage keys and SAS signatures keep their label.
  [/\b(AccountKey|SharedAccessSignature|sig)=[^;&\s"']+/gi, `$1=${MASK}`],
  // JSON fields and form parameters that carry a credential, whatever it looks like.
  [
    /"(token_value|secretText|secret|client_secret|client_assertion|subject_token|access_token|refresh_token|password|value)"(\s*:\s*)"(?:[^"\\]|\\.)*"/g,
    `"$1"$2"${MASK}"`,
  ],
  [
    /\b(client_secret|client_assertion|subject_token|access_token|refresh_token|password)=[^&\s"']+/g,
    `$1=${MASK}`,
  ],
];

const AUTH_HEADER = /\b(Bearer|Basic)(\s+)([A-Za-z0-9._~+/-]{8,}=*)("?)/gi;

/**
 * The most recently handled values, newest last. Bounded so a long-lived worker neither grows nor slows
 * every log line: a value is only in memory while an operation uses it, and 512 covers far more
 * concurrent operations than one worker runs. Credential-shaped text is masked by pattern regardless.
 */
const MAX_KNOWN = 512;
const known = new Set<string>();

/**
 * Registers a secret value so it is removed wherever it appears later, even inside other text.
 * Values shorter than 8 characters are not registered: masking them would mangle ordinary words.
 */
export function registerSecret(value: string | undefined): void {
  if (!value || value.length < 8) return;
  known.delete(value);
  known.add(value);
  if (known.size > MAX_KNOWN) known.delete(known.values().next().value as string);
}

/** Returns the text with every registered value and every credential-shaped substring masked. */
export function redact(text: string): string {
  let out = text;
  // Longest first, so a value that contains another is masked whole, not around the shorter one.
  for (const value of [...known].sort((a, b) => b.length - a.length)) {
    if (out.includes(value)) out = out.split(value).join(MASK);
  }
  for (const [pattern, replacement] of PATTERNS) out = out.replace(pattern, replacement);
  // Authorization headers keep their scheme. A lowercase word ("Basic authentication") or a challenge
  // parameter (`Bearer authorization="…"`) is prose, not a credential.
  return out.replace(AUTH_HEADER, (m, scheme: string, space: string, credential: string, quote: string) =>
    quote || /^[a-z]+$/.test(credential) ? m : `${scheme}${space}${MASK}`,
  );
}

/** An error's message (and its causes') redacted, for logs and outcomes. */
export function redactError(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current !== undefined && current !== null && depth < 5; depth++) {
    // Azure SDK and Graph errors carry the HTTP status and service error code beside the message.
    const { statusCode, code } = current as { statusCode?: unknown; code?: unknown };
    const status =
      typeof statusCode === 'number' ? ` ${statusCode}${typeof code === 'string' ? ` ${code}` : ''}` : '';
    parts.push(current instanceof Error ? `${current.name}${status}: ${current.message}` : String(current));
    current = current instanceof Error ? current.cause : undefined;
  }
  return redact(parts.join(' <- '));
}
