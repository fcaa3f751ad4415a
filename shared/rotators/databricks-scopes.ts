import { TAGS } from '../constants';
import type { DatabricksAuth, DatabricksClient } from '../clients/databricks';
import { PermanentError } from '../errors';
import type { Finding, TokenScopes } from './types';

/** Written in the `databricks-scopes` tag for a credential without scopes (every API). */
export const ALL_APIS = 'all-apis';

/** A scope: an API area (`sql`, `unity-catalog`, `catalog.tables`), optionally `:read` or `:restricted-query`. */
const SCOPE = /^[a-z][a-z0-9-]*(\.[a-z0-9-]+)*(:(read|restricted-query))?$/;

/** `autoscope_state` values that mean autoscope was turned on for the token. */
const AUTOSCOPE_ON = new Set([
  'AUTOSCOPE_STATE_RUNNING',
  'AUTOSCOPE_STATE_COMPLETED',
  'AUTOSCOPE_STATE_API_NOT_COVERED',
]);

/** Scopes as a provider lists them (`scopes`, `autoscope_state`); no scopes means every API. */
export function scopesOf(info: { scopes?: string[]; autoscope_state?: string }): TokenScopes {
  return {
    scopes: info.scopes && info.scopes.length > 0 ? [...info.scopes].sort() : undefined,
    autoscope: AUTOSCOPE_ON.has(info.autoscope_state ?? ''),
  };
}

/** Parses the `databricks-scopes` tag (comma- or space-separated scopes, or `all-apis`). */
export function parseScopesTag(value: string | undefined): { scopes?: TokenScopes; finding?: Finding } {
  if (value === undefined) return {};
  const items = value
    .split(/[\s,]+/)
    .map((s) => s.trim())
    .filter(Boolean);
  const bad = items.find((s) => s !== ALL_APIS && !SCOPE.test(s));
  if (items.length === 0 || bad !== undefined || (items.includes(ALL_APIS) && items.length > 1)) {
    return {
      finding: {
        tag: TAGS.databricksScopes,
        reason: `"${value}": expected scopes such as "sql,jobs:read", or "${ALL_APIS}" for a credential without scopes`,
      },
    };
  }
  return {
    scopes: { scopes: items.includes(ALL_APIS) ? undefined : [...new Set(items)].sort(), autoscope: false },
  };
}

export const describeScopes = (s: TokenScopes): string =>
  (s.scopes ? s.scopes.join(',') : ALL_APIS) + (s.autoscope ? ' (autoscope on)' : '');

/** Whether two scope lists grant the same (undefined: every API). */
export const sameScopeList = (a: string[] | undefined, b: string[] | undefined): boolean =>
  JSON.stringify(a ? [...a].sort() : null) === JSON.stringify(b ? [...b].sort() : null);

/**
 * The scopes for a successor: what the provider says the current credential has; if that cannot be
 * read, what the tag says; otherwise a finding. A tag that disagrees with a readable credential is
 * refused rather than trusted (tags are claims, and a rotation never widens).
 */
export function successorScopes(
  read: TokenScopes | { unreadable: string },
  tag: TokenScopes | undefined,
): TokenScopes {
  if (!('unreadable' in read)) {
    if (tag && !sameScopeList(tag.scopes, read.scopes)) {
      throw new PermanentError(
        `the ${TAGS.databricksScopes} tag says "${describeScopes(tag)}" but the current credential has "${describeScopes(read)}": ` +
          'fix or remove the tag (a rotation keeps the current scopes, never wider)',
      );
    }
    return read;
  }
  if (tag) return tag;
  throw new PermanentError(
    `the scopes of the current credential cannot be read (${read.unreadable}), and a successor must not be wider: ` +
      `set the ${TAGS.databricksScopes} tag to its scopes (for example "sql,jobs:read", or "${ALL_APIS}" if it has none)`,
  );
}

/** One cheap read per API area, to prove a scoped token reaches what its scopes allow. */
const PROBES: Record<string, string> = {
  authentication: '/api/2.0/token/list',
  'access-management': '/api/2.0/preview/scim/v2/Users?count=1',
  sql: '/api/2.0/sql/warehouses',
  jobs: '/api/2.1/jobs/list?limit=1',
  clusters: '/api/2.0/clusters/list',
  'unity-catalog': '/api/2.1/unity-catalog/catalogs',
};

/** Calls one read of every area the scopes name (areas without a known read are skipped). */
export async function probeScopes(
  databricks: DatabricksClient,
  origin: string,
  auth: DatabricksAuth,
  scopes: TokenScopes,
): Promise<void> {
  const areas = new Set((scopes.scopes ?? []).map((s) => s.split(':')[0] as string));
  for (const area of areas) {
    const path = PROBES[area];
    if (path) await databricks.call(origin, path, { method: 'GET', auth });
  }
}
