import { z } from 'zod';
import type { Settings } from './config';
import { KEY_VAULT_LIMITS, SAMPLE_TAG_ALIASES, STATE_TAGS, TAGS } from './constants';
import type { Finding, Rotator } from './rotators/types';

export interface RotationState {
  credentialId?: string;
  previousCredentialId?: string;
  revokePreviousAfter?: Date;
  rotationId?: string;
  /** A rotation that began on this version and has not stored a new one (yet, or ever). */
  rotationStarted?: { rotationId: string; at: Date };
}

export interface RotationPolicy<Target = unknown> {
  kind: string;
  rotator: Rotator<Target>;
  target: Target;
  validityDays: number;
  windowDays: number;
  graceHours: number;
  /** Extra recipients from the `notify` tag: email addresses or channel names. */
  notify: string[];
  state: RotationState;
  /** The tags a new version carries forward: everything but the rotator's state tags. */
  policyTags: Record<string, string>;
}

export type PolicyResult =
  | { status: 'not-opted-in' }
  | { status: 'invalid'; kind?: string; findings: Finding[] }
  | { status: 'ok'; policy: RotationPolicy };

const CHANNEL_NAMES = ['teams', 'webhook', 'email', 'eventgrid'];

/** Key Vault's rule for vault-object names; every name from an event, a message or a tag is held to it. */
export const KEY_VAULT_NAME = /^[0-9a-zA-Z-]{1,127}$/;
export const isKeyVaultName = (name: unknown): boolean =>
  typeof name === 'string' && KEY_VAULT_NAME.test(name);

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/**
 * The shape of a provider credential id per kind (Entra key ids are GUIDs; Databricks token and SP
 * secret ids are hex or GUID-like). Ids end up in URL paths and request bodies, so nothing else passes:
 * no `/`, no `..`, no spaces.
 */
const CREDENTIAL_ID: Record<string, RegExp> = {
  'entra-app-secret': GUID,
  'databricks-pat': /^[0-9a-f]{8,128}$/i,
  'databricks-sp-secret': /^[0-9a-zA-Z-]{8,128}$/,
};
const ANY_CREDENTIAL_ID = /^[0-9a-zA-Z-]{1,128}$/;
const KNOWN_TAGS = new Set<string>(Object.values(TAGS));

const wholeNumber = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, { error: `expected a whole number from ${min} to ${max}` })
    .transform(Number)
    .pipe(
      z
        .number()
        .min(min, { error: `expected at least ${min}` })
        .max(max, { error: `expected at most ${max}` }),
    );

/** Renames the Key Vault samples' tags to ours, unless ours is also present. */
function normaliseAliases(
  tags: Record<string, string>,
  providerAddressTag: string | undefined,
): Record<string, string> {
  const out = { ...tags };
  const aliases: Record<string, string> = { ...SAMPLE_TAG_ALIASES };
  if (providerAddressTag) aliases.ProviderAddress = providerAddressTag;
  for (const [alias, name] of Object.entries(aliases)) {
    if (alias in out) {
      if (!(name in out)) out[name] = out[alias] as string;
      delete out[alias];
    }
  }
  return out;
}

function parseDate(value: string | undefined): Date | undefined {
  if (!value) return undefined;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

function parseState(tags: Record<string, string>): RotationState {
  const started = tags[TAGS.rotationStarted]?.split('@');
  const startedAt = parseDate(started?.[1]);
  return {
    credentialId: tags[TAGS.credentialId] || undefined,
    previousCredentialId: tags[TAGS.previousCredentialId] || undefined,
    revokePreviousAfter: parseDate(tags[TAGS.revokePreviousAfter]),
    rotationId: tags[TAGS.rotationId] || undefined,
    rotationStarted: started?.[0] && startedAt ? { rotationId: started[0], at: startedAt } : undefined,
  };
}

/**
 * Reads a secret's tags into a rotation policy. A secret without `rotation-kind` is not opted in.
 * Every problem becomes a finding naming the tag and the reason; nothing here throws.
 */
export function readPolicy(
  rawTags: Readonly<Record<string, string>> | undefined,
  settings: Settings,
  rotators: ReadonlyMap<string, Rotator>,
): PolicyResult {
  const kindValue = rawTags?.[TAGS.kind]?.trim();
  if (!rawTags || kindValue === undefined) return { status: 'not-opted-in' };
  const rotator = rotators.get(kindValue);
  if (!rotator) {
    return {
      status: 'invalid',
      findings: [
        {
          tag: TAGS.kind,
          reason: `unknown kind "${kindValue}"; expected one of ${[...rotators.keys()].join(', ')}`,
        },
      ],
    };
  }
  const tags = normaliseAliases(rawTags, rotator.providerAddressTag);
  const findings: Finding[] = [];

  const number = (tag: string, fallback: number, min: number, max: number): number => {
    if (tags[tag] === undefined) return fallback;
    const r = wholeNumber(min, max).safeParse(tags[tag].trim());
    if (r.success) return r.data;
    findings.push({ tag, reason: `"${tags[tag]}": ${r.error.issues[0]?.message}` });
    return fallback;
  };
  const validityDays = number(TAGS.validityDays, settings.ROTATION_DEFAULT_VALIDITY_DAYS, 1, 730);
  const windowDays = number(TAGS.windowDays, settings.ROTATION_DEFAULT_WINDOW_DAYS, 1, 365);
  const graceHours = number(TAGS.graceHours, settings.ROTATION_DEFAULT_GRACE_HOURS, 0, 24 * 30);
  if (windowDays >= validityDays) {
    findings.push({
      tag: TAGS.windowDays,
      reason: `the rotation window (${windowDays} days) must be shorter than the validity (${validityDays} days), or every new credential would be due at once`,
    });
  }

  const notify = (tags[TAGS.notify] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const recipient of notify) {
    if (!CHANNEL_NAMES.includes(recipient) && !z.email().safeParse(recipient).success) {
      findings.push({
        tag: TAGS.notify,
        reason: `"${recipient}" is neither an email address nor a channel (${CHANNEL_NAMES.join(', ')}); URLs are not accepted in tags`,
      });
    }
  }

  for (const name of Object.keys(tags)) {
    const lower = name.toLowerCase();
    if (
      (lower.startsWith('rotation-') || lower.startsWith('databricks-') || lower.startsWith('entra-')) &&
      !KNOWN_TAGS.has(name)
    ) {
      findings.push({ tag: name, reason: 'unknown tag (a misspelling?); it would be ignored' });
    }
  }

  // State tags are claims like any other tag: ids must have their kind's shape before they reach a URL.
  const idShape = CREDENTIAL_ID[rotator.kind] ?? ANY_CREDENTIAL_ID;
  for (const tag of [TAGS.credentialId, TAGS.previousCredentialId] as const) {
    const id = tags[tag];
    if (id && !idShape.test(id))
      findings.push({ tag, reason: `"${id}" is not a ${rotator.kind} credential id` });
  }
  const rotationId = tags[TAGS.rotationId];
  if (rotationId && !GUID.test(rotationId))
    findings.push({ tag: TAGS.rotationId, reason: `"${rotationId}" is not a rotation id (GUID)` });
  const started = tags[TAGS.rotationStarted];
  if (started && !/^[0-9a-f-]{36}@\d{4}-\d\d-\d\dT[\d:.]+Z$/i.test(started))
    findings.push({ tag: TAGS.rotationStarted, reason: `"${started}" is not {rotation id}@{ISO time}` });

  // Our own state tags, if unreadable, must stop the rotation: a lost grace period would revoke early.
  for (const tag of [TAGS.revokePreviousAfter] as const) {
    if (tags[tag] && parseDate(tags[tag]) === undefined) {
      findings.push({
        tag,
        reason: `"${tags[tag]}" is not a date; fix or remove it (the rotator writes ISO times)`,
      });
    }
  }

  const policyTags = Object.fromEntries(
    Object.entries(tags).filter(([k]) => !(STATE_TAGS as readonly string[]).includes(k)),
  );
  if (Object.keys(policyTags).length + STATE_TAGS.length > KEY_VAULT_LIMITS.maxTags) {
    findings.push({
      tag: TAGS.kind,
      reason: `too many tags: ${Object.keys(policyTags).length} policy tags leave no room for the ${STATE_TAGS.length} state tags within Key Vault's limit of ${KEY_VAULT_LIMITS.maxTags}`,
    });
  }

  const target = rotator.parseTarget(tags, settings);
  if ('findings' in target) findings.push(...target.findings);
  if (findings.length > 0 || !('target' in target))
    return { status: 'invalid', kind: rotator.kind, findings };

  return {
    status: 'ok',
    policy: {
      kind: rotator.kind,
      rotator,
      target: target.target,
      validityDays,
      windowDays,
      graceHours,
      notify,
      state: parseState(tags),
      policyTags,
    },
  };
}
