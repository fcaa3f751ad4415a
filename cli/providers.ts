/**
 * The providers' side of the inventory, read with the service's identity (or, against a real tenant,
 * the operator's DefaultAzureCredential): the Entra apps the service owns, each workspace's tokens
 * (token management) and the Databricks service principals' OAuth secrets and federation policies.
 * Reads only; values are never returned by these APIs.
 */
import { TAGS } from '../shared/constants';
import { redactError } from '../shared/redact';
import {
  accountIds,
  accountServicePrincipals,
  databricksGet,
  graphGet,
  isGuid,
  spFederationPolicies,
  workspaceHosts,
  type AccountSp,
} from './clients';
import type { Target } from './target';
import type { SecretRow } from './vaults';

export interface ProviderCredential {
  provider: 'entra' | 'databricks-pat' | 'databricks-sp';
  /** Where it lives: the app, the workspace host, or the account/service principal. */
  where: string;
  id: string;
  name?: string;
  owner?: string;
  createdBy?: string;
  expiresOn?: string;
  lastUsed?: string;
  scopes?: string[];
  /** `vault/secret` holding it as current or previous credential. */
  heldBy?: string;
  flags: string[];
  advice: string[];
}

export interface ProviderInventory {
  credentials: ProviderCredential[];
  /** What could not be read, with why (an inventory is partial rather than absent). */
  problems: string[];
}

/** Which vault secret references a credential id (current or previous) for a kind and target. */
function holder(
  secrets: SecretRow[],
  kind: string,
  matches: (tags: Record<string, string>) => boolean,
  id: string,
): string | undefined {
  const row = secrets.find(
    (s) =>
      s.tags[TAGS.kind] === kind &&
      matches(s.tags) &&
      (s.tags[TAGS.credentialId] === id || s.tags[TAGS.previousCredentialId] === id),
  );
  return (
    row && `${row.vault}/${row.secret}${row.tags[TAGS.previousCredentialId] === id ? ' (previous)' : ''}`
  );
}

const RETIRE = 'could be retired: federation is configured';

interface GraphApp {
  id: string;
  appId: string;
  displayName: string;
  passwordCredentials: { keyId: string; displayName: string | null; endDateTime: string }[];
}

async function entra(target: Target, secrets: SecretRow[], out: ProviderInventory): Promise<void> {
  const self = target.settings.AZURE_CLIENT_ID;
  if (!self) {
    out.problems.push('Entra: AZURE_CLIENT_ID is not set, so the apps the service owns cannot be listed');
    return;
  }
  const owned = await graphGet<{ value: { id: string }[] }>(
    target,
    `/servicePrincipals(appId='${self}')/ownedObjects`,
  );
  for (const { id } of owned.value) {
    const app = await graphGet<GraphApp>(
      target,
      `/applications/${id}?$select=id,appId,displayName,passwordCredentials`,
    );
    const fics = await graphGet<{ value: { issuer: string; subject: string }[] }>(
      target,
      `/applications/${id}/federatedIdentityCredentials`,
    );
    for (const p of app.passwordCredentials) {
      const heldBy = holder(
        secrets,
        'entra-app-secret',
        (t) => t[TAGS.entraAppId]?.toLowerCase() === app.appId.toLowerCase(),
        p.keyId,
      );
      const flags = heldBy ? [] : ['no vault references it'];
      out.credentials.push({
        provider: 'entra',
        where: `app ${app.displayName} (${app.appId})`,
        id: p.keyId,
        name: p.displayName ?? undefined,
        expiresOn: p.endDateTime,
        heldBy,
        flags,
        advice: fics.value.length
          ? [
              `${RETIRE} (federated credential: ${fics.value.map((f) => `${f.issuer} ${f.subject}`).join('; ')})`,
            ]
          : [],
      });
    }
  }
}

interface AdminToken {
  token_id: string;
  owner_id?: number | string;
  created_by_id?: number | string;
  created_by_username?: string;
  expiry_time: number;
  creation_time?: number;
  last_used_day?: number;
  comment?: string;
  scopes?: string[];
}

/** The owner's SCIM record: active or not; undefined when the workspace cannot say. */
async function ownerActive(target: Target, origin: string, ownerId: string): Promise<boolean | undefined> {
  try {
    const u = await databricksGet<{ active?: boolean }>(
      target,
      origin,
      `/api/2.0/preview/scim/v2/Users/${encodeURIComponent(ownerId)}`,
    );
    return u.active;
  } catch {
    return undefined;
  }
}

async function workspaces(target: Target, secrets: SecretRow[], out: ProviderInventory): Promise<void> {
  for (const host of workspaceHosts(target, secrets)) {
    const origin = `https://${host}`;
    let tokens: AdminToken[];
    try {
      tokens =
        (
          await databricksGet<{ token_infos?: AdminToken[] }>(
            target,
            origin,
            '/api/2.0/token-management/tokens',
          )
        ).token_infos ?? [];
    } catch (e) {
      out.problems.push(
        `Databricks ${host}: token management could not be read (${redactError(e)}); the identity must be a workspace admin`,
      );
      continue;
    }
    for (const t of tokens) {
      const owner = t.created_by_username ?? String(t.owner_id ?? '');
      const person = !isGuid(owner);
      const heldBy = holder(
        secrets,
        'databricks-pat',
        (tags) => (tags[TAGS.databricksHost] ?? '').toLowerCase().replace(/^https:\/\//, '') === host,
        t.token_id,
      );
      const flags: string[] = [];
      const advice: string[] = [];
      if (t.expiry_time === -1 || t.expiry_time === undefined) flags.push('never expires');
      if (!heldBy) flags.push('no vault references it');
      if (person && heldBy) {
        flags.push('owned by a person');
        advice.push(
          `move it to a service principal: add one to the workspace, give it the rights the jobs need, tag ${heldBy.replace(' (previous)', '')} ${TAGS.databricksPatOwner}={its application id}; the rotator then mints the PAT as that principal through Entra, and it no longer dies with ${owner}'s account`,
        );
      }
      if (person && t.owner_id !== undefined) {
        const active = await ownerActive(target, origin, String(t.owner_id));
        if (active === false) flags.push(`owner ${owner} is inactive`);
      }
      out.credentials.push({
        provider: 'databricks-pat',
        where: host,
        id: t.token_id,
        name: t.comment || undefined,
        owner,
        createdBy: t.created_by_username,
        expiresOn: t.expiry_time > 0 ? new Date(t.expiry_time).toISOString() : undefined,
        lastUsed: t.last_used_day ? new Date(t.last_used_day).toISOString().slice(0, 10) : undefined,
        scopes: t.scopes,
        heldBy,
        flags,
        advice,
      });
    }
  }
}

async function spSecrets(target: Target, secrets: SecretRow[], out: ProviderInventory): Promise<void> {
  for (const accountId of accountIds(target, secrets)) {
    let sps: AccountSp[];
    try {
      sps = await accountServicePrincipals(target, accountId);
    } catch (e) {
      out.problems.push(
        `Databricks account ${accountId}: service principals could not be listed (${redactError(e)}); the identity must be an account admin`,
      );
      continue;
    }
    for (const sp of sps) {
      const base = `/api/2.0/accounts/${accountId}/servicePrincipals/${sp.id}`;
      const [list, policies] = await Promise.all([
        databricksGet<{
          secrets?: { id: string; create_time?: string; expire_time?: string; status?: string }[];
        }>(target, target.settings.DATABRICKS_ACCOUNTS_HOST, `${base}/credentials/secrets`),
        spFederationPolicies(target, accountId, sp.id).catch(() => []),
      ]);
      for (const s of list.secrets ?? []) {
        const heldBy = holder(
          secrets,
          'databricks-sp-secret',
          (t) => t[TAGS.databricksAccountId] === accountId && t[TAGS.databricksSpId] === sp.id,
          s.id,
        );
        out.credentials.push({
          provider: 'databricks-sp',
          where: `sp ${sp.displayName ?? sp.applicationId} (${sp.id})`,
          id: s.id,
          owner: sp.applicationId,
          expiresOn: s.expire_time,
          heldBy,
          flags: [
            ...(heldBy ? [] : ['no vault references it']),
            ...(s.status && s.status !== 'ACTIVE' ? [s.status.toLowerCase()] : []),
          ],
          advice: policies.length
            ? [
                `${RETIRE} (policy ${policies.map((p) => `${p.policy_id}: ${p.oidc_policy.issuer} ${p.oidc_policy.subject ?? ''}`.trim()).join('; ')})`,
              ]
            : [],
        });
      }
    }
  }
}

/** Reads every provider; a provider that cannot be read becomes a problem line, not a crash. */
export async function readProviders(
  target: Target,
  secrets: SecretRow[],
  step: (s: string) => void,
): Promise<ProviderInventory> {
  const out: ProviderInventory = { credentials: [], problems: [] };
  const guard = async (what: string, fn: () => Promise<void>) => {
    step(`reading ${what}`);
    try {
      await fn();
    } catch (e) {
      out.problems.push(`${what}: ${redactError(e)}`);
    }
  };
  await guard('Entra applications', () => entra(target, secrets, out));
  await guard('Databricks workspaces', () => workspaces(target, secrets, out));
  await guard('Databricks service principals', () => spSecrets(target, secrets, out));
  return out;
}
