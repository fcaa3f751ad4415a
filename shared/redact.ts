/**
 * The one redaction helper. Every log line, error message, outcome reason and notification passes
 * through `redact`, which removes (1) values this process has handled (registered as they pass by) and
 * (2) anything shaped like a credential, even if it was never registered.
 */

export const MASK = '[REDACTED]';

/** The shapes of the credentials this service handles (JWTs are found by `maskJwts`). */
const CREDENTIAL_SHAPES: RegExp[] = [
  // Databricks personal access tokens and SP OAuth secrets.
  /\bdapi[0-9a-f]{32}(?:-\d+)?\b/gi,
  /\bdose[0-9a-f]{32}\b/gi,
  // Entra client secrets: 3 chars, a digit, "Q~", then the rest.
  /[A-Za-z0-9_.-]{3}\d[Qq]~[A-Za-z0-9_.~-]{30,}/g,
];

/** Shapes of credentials we handle or may see in provider responses, with what replaces them. */
const PATTERNS: [RegExp, string][] = [
  ...CREDENTIAL_SHAPES.map((p): [RegExp, string] => [p, MASK]),
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

/**
 * JWTs (access tokens, client assertions), found in linear time: each maximal run of JWT characters is
 * matched once and split on dots, instead of a pattern that rescans a run from every `eyJ` in it.
 */
const JWT_RUN = /[A-Za-z0-9_.-]{19,}/g;
const JWT_PART = /^[A-Za-z0-9_-]{5,}$/;

function maskJwts(text: string): string {
  return text.replace(JWT_RUN, (run) => {
    if (!run.includes('eyJ') || !run.includes('.')) return run;
    const parts = run.split('.');
    for (let i = 0; i + 2 < parts.length; i++) {
      const head = parts[i] as string;
      // As `\beyJ`: at the start of a part, or after a dash (the only non-word character in a part).
      const start = head.startsWith('eyJ') ? 0 : head.indexOf('-eyJ') + 1;
      if (start < 0 || (start === 0 && !head.startsWith('eyJ'))) continue;
      if (![head.slice(start + 3), parts[i + 1], parts[i + 2]].every((p) => JWT_PART.test(p ?? ''))) continue;
      return [...parts.slice(0, i), `${head.slice(0, start)}${MASK}`, ...parts.slice(i + 3)].join('.');
    }
    return run;
  });
}

/**
 * Longer input is cut to this before any pattern runs, so redaction is linear and bounded on any
 * input; the tail is dropped, with the partial credential-like token the cut may have split.
 */
export const MAX_REDACT_INPUT = 64 * 1024;
const TOKEN_CHAR = /[A-Za-z0-9_.~+/=-]/;

function truncate(text: string): string {
  if (text.length <= MAX_REDACT_INPUT) return text;
  let end = MAX_REDACT_INPUT;
  while (end > 0 && TOKEN_CHAR.test(text[end - 1] as string)) end--;
  return `${text.slice(0, end)}…[truncated ${text.length - end} characters]`;
}

const AUTH_HEADER = /\b(Bearer|Basic)(\s+)([A-Za-z0-9._~+/-]{8,}=*)("?)/gi;

/**
 * The most recently handled values, newest last. Bounded so a long-lived worker neither grows nor slows
 * every log line: a value is only in memory while an operation uses it, and 512 covers far more
 * concurrent operations than one worker runs. Credential-shaped text is masked by pattern regardless.
 */
const MAX_KNOWN = 512;
const known = new Set<string>();

/** Shortest value registered unless it has a credential's shape: shorter ones are words and names. */
export const MIN_REGISTERED_LENGTH = 16;

/** Whether a value looks like a credential: one of the patterns above, or a JWT. */
function credentialShaped(value: string): boolean {
  return (
    // `search` ignores the global flag's lastIndex, so the shared patterns stay stateless here.
    CREDENTIAL_SHAPES.some((p) => value.search(p) !== -1) || maskJwts(value) !== value
  );
}

/**
 * Registers a secret value so it is removed wherever it appears later, even inside other text. Only
 * values of credential length (16 characters or more, up to the redaction input limit) or shape are
 * registered: a short value (a vault name, a word) would otherwise mask ordinary text.
 */
export function registerSecret(value: string | undefined): void {
  if (!value || value.length > MAX_REDACT_INPUT) return;
  if (value.length < MIN_REGISTERED_LENGTH && !credentialShaped(value)) return;
  known.delete(value);
  known.add(value);
  if (known.size > MAX_KNOWN) known.delete(known.values().next().value as string);
}

/** Returns the text with every registered value and every credential-shaped substring masked. */
export function redact(text: string): string {
  let out = truncate(text);
  // Longest first, so a value that contains another is masked whole, not around the shorter one.
  for (const value of [...known].sort((a, b) => b.length - a.length)) {
    if (out.includes(value)) out = out.split(value).join(MASK);
  }
  for (const [pattern, replacement] of PATTERNS) out = out.replace(pattern, replacement);
  out = maskJwts(out);
  // Authorization headers keep their scheme. A lowercase word ("Basic authentication") or a challenge
  // parameter (`Bearer authorization="…"`) is prose, not a credential.
  return out.replace(AUTH_HEADER, (m, scheme: string, space: string, credential: string, quote: string) =>
    quote || /^[a-z]+$/.test(credential) ? m : `${scheme}${space}${MASK}`,
  );
}

/**
 * Structured telemetry dimensions that name things rather than carry text: never value-masked, so a
 * secret value that happens to equal a vault or secret name cannot hide it. Only values of the
 * dimension's own strict shape pass unmasked; anything else is redacted like text.
 */
const STRUCTURED: Record<string, RegExp> = {
  vault: /^[0-9a-zA-Z-]{1,127}$/,
  secret: /^[0-9a-zA-Z-]{1,127}$/,
  kind: /^[a-z-]{1,64}$/,
  outcome: /^[a-z-]{1,32}$/,
  rotationId: /^[0-9a-f-]{36}$/i,
  invocationId: /^[0-9a-f-]{36}$/i,
};

/** A telemetry dimension's value as it may be shown: structured names as they are, the rest redacted. */
export function redactDimension(key: string, value: string): string {
  return STRUCTURED[key]?.test(value) ? value : redact(value);
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
