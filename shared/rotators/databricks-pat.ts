import { createHash } from 'node:crypto';
import { ClientAssertionCredential, type TokenCredential } from '@azure/identity';
import { z } from 'zod';
import { isPublicAuthority } from '../clients/credential';
import { RESOURCE_SCOPES, TAGS } from '../constants';
import { PermanentError, ProviderError, TransientError } from '../errors';
import { parseDatabricksHost } from '../hosts';
import { parseScopesTag, probeScopes, sameScopeList, scopesOf, successorScopes } from './databricks-scopes';
import { createWithRoom, type CredentialLimit } from './room';
import type { Finding, NewCredential, Rotator, RotatorDeps, SecretContext, TokenScopes } from './types';

/** `PublicTokenInfo` as `token/create` and `token/list` return it. */
interface TokenInfo {
  token_id: string;
  creation_time: number;
  expiry_time: number;
  comment?: string;
  scopes?: string[];
  autoscope_state?: string;
}

interface Target {
  origin: string;
  /** The service principal that owns the PAT, when the rotator authenticates as it through Entra. */
  ownerAppId?: string;
}

/** Databricks caps the live PATs one principal holds in a workspace. */
const PAT_QUOTA: CredentialLimit = {
  name: 'personal access tokens per user in the workspace',
  reached: (e) => e instanceof ProviderError && e.code === 'QUOTA_EXCEEDED',
};

const lacksScope = (e: unknown) =>
  e instanceof ProviderError && e.status === 403 && /does not have required scopes/.test(e.message);

const ownerSchema = z.guid({
  error: 'expected the application (client) id (GUID) of the service principal that owns the PAT',
});
const FEDERATION_SCOPE = 'api://AzureADTokenExchange/.default';

/**
 * One federated credential per (service identity, owner), kept for the process so its tokens are
 * cached; keyed by the service identity too, so an owner is never reached with another identity's token.
 */
const ownerCredentials = new WeakMap<TokenCredential, Map<string, TokenCredential>>();

function ownerCredential(ownerAppId: string, { settings, credential }: RotatorDeps): TokenCredential {
  if (settings.AZURE_CLIENT_ID?.toLowerCase() === ownerAppId.toLowerCase()) return credential;
  const byOwner = ownerCredentials.get(credential) ?? new Map<string, TokenCredential>();
  ownerCredentials.set(credential, byOwner);
  let owner = byOwner.get(ownerAppId);
  if (!owner) {
    owner = new ClientAssertionCredential(
      settings.AZURE_TENANT_ID,
      ownerAppId,
      async () => (await credential.getToken(FEDERATION_SCOPE))!.token,
      {
        authorityHost: settings.AZURE_AUTHORITY_HOST,
        disableInstanceDiscovery: !isPublicAuthority(settings.AZURE_AUTHORITY_HOST),
      },
    );
    byOwner.set(ownerAppId, owner);
  }
  return owner;
}

/** Entra's refusal, explained without the assertion or any token: only its code, issuer and subject. */
function entraRefusal(ownerAppId: string, e: unknown): unknown {
  const text = e instanceof Error ? e.message : String(e);
  const code = /AADSTS(\d+)/.exec(text)?.[1];
  if (!code) return e;
  if (code !== '70021')
    return new PermanentError(`Entra refused a token for the PAT owner ${ownerAppId} (AADSTS${code})`, {
      cause: e,
    });
  const issuer = /Assertion Issuer: '([^']*)'/.exec(text)?.[1] ?? "the tenant's Entra issuer";
  const subject =
    /Assertion Subject: '([^']*)'/.exec(text)?.[1] ?? "the managed identity's object (principal) id";
  return new PermanentError(
    `the PAT owner app ${ownerAppId} has no federated credential trusting this service's managed identity: ` +
      `add one with issuer ${issuer}, subject ${subject} and audience api://AzureADTokenExchange (AADSTS70021)`,
    { cause: e },
  );
}

/**
 * Who calls create / list / revoke: the current PAT, or with `databricks-pat-owner` the owning service
 * principal itself, through an Entra token for Databricks (the service's own identity, or federation).
 */
async function auth(t: Target, ctx: SecretContext, deps: RotatorDeps): Promise<{ bearer: string }> {
  if (!t.ownerAppId) return { bearer: ctx.currentValue };
  let token;
  try {
    token = await ownerCredential(t.ownerAppId, deps).getToken(RESOURCE_SCOPES.databricks);
  } catch (e) {
    throw entraRefusal(t.ownerAppId, e);
  }
  if (!token) throw new TransientError(`no Entra token for the PAT owner ${t.ownerAppId}`);
  return { bearer: token.token };
}

/** A 401/403 from the token API: the caller may not manage tokens, explained for how it authenticated. */
function refusal(t: Target, e: unknown): unknown {
  if (!(e instanceof ProviderError && (e.status === 401 || e.status === 403))) return e;
  if (lacksScope(e) && !t.ownerAppId)
    return new PermanentError(
      'the PAT in the vault cannot manage tokens (its scopes lack "authentication"), so it cannot create its successor: ' +
        'rotate it as its owner (databricks-pat-owner) or replace it by hand',
      { cause: e },
    );
  return new PermanentError(
    t.ownerAppId
      ? `the PAT owner ${t.ownerAppId} is not a principal of the workspace or lacks permission to use tokens`
      : 'the PAT in the vault is no longer valid (expired or revoked), so it cannot create its successor; store a new PAT by hand',
    { cause: e },
  );
}

/**
 * Databricks personal access tokens. A PAT belongs to whoever created it. By default the successor is
 * created with the current, still-valid token: the rotator never gains access its secret did not
 * already have, so no binding is needed. With `databricks-pat-owner` the rotator authenticates as the
 * owning service principal instead (which also recovers a PAT that expired or was revoked); it could
 * then mint PATs for any principal that trusts it, so the owner must be bound to the vault.
 */
export const databricksPat: Rotator<Target> = {
  kind: 'databricks-pat',
  providerAddressTag: TAGS.databricksHost,

  parseTarget(tags, settings) {
    const findings: Finding[] = [];
    const host = tags[TAGS.databricksHost];
    const parsed = host ? parseDatabricksHost(host, settings.DATABRICKS_ALLOWED_HOSTS) : undefined;
    if (!parsed)
      findings.push({ tag: TAGS.databricksHost, reason: 'required for databricks-pat: the workspace URL' });
    else if (!('origin' in parsed)) findings.push({ tag: TAGS.databricksHost, reason: parsed.error });
    const owner = tags[TAGS.databricksPatOwner];
    const ownerParsed = owner === undefined ? undefined : ownerSchema.safeParse(owner.trim());
    if (ownerParsed && !ownerParsed.success)
      findings.push({
        tag: TAGS.databricksPatOwner,
        reason: `"${owner}": ${ownerParsed.error.issues[0]?.message}`,
      });
    // Read at create time from the context (not part of the target, whose key the issuance record uses).
    const scopesTag = parseScopesTag(tags[TAGS.databricksScopes]);
    if (scopesTag.finding) findings.push(scopesTag.finding);
    if (findings.length > 0 || !parsed || !('origin' in parsed)) return { findings };
    return { target: { origin: parsed.origin, ownerAppId: ownerParsed?.data } };
  },

  describe: (t) => new URL(t.origin).host + (t.ownerAppId ? ` (owner ${t.ownerAppId})` : ''),
  // The owner's PAT exists per workspace: the binding names the host, so a binding for dev mints nothing in prod.
  bindingKey: (t) => (t.ownerAppId ? `databricks-pat:${new URL(t.origin).host}/${t.ownerAppId}` : undefined),

  async create(t, ctx, { lifetimeSeconds, marker }, deps) {
    try {
      const bearer = await auth(t, ctx, deps);
      const tag = parseScopesTag(ctx.tags?.[TAGS.databricksScopes]).scopes;
      const scopes = successorScopes(await currentScopes(t, ctx, deps, bearer), tag);
      const mint = async (): Promise<NewCredential> => {
        const res = await deps.databricks.call<{ token_value: string; token_info: TokenInfo }>(
          t.origin,
          '/api/2.0/token/create',
          {
            method: 'POST',
            auth: bearer,
            json: {
              lifetime_seconds: lifetimeSeconds,
              comment: marker,
              ...(scopes.scopes ? { scopes: scopes.scopes } : {}),
              ...(scopes.autoscope ? { autoscope_enabled: true } : {}),
            },
          },
        );
        const id = res.token_info.token_id;
        if (!sameScopeList(scopesOf(res.token_info).scopes, scopes.scopes)) {
          await databricksPat.revoke(t, id, ctx, deps);
          throw new PermanentError(
            `the workspace created token ${id} with other scopes than asked for; it was revoked`,
          );
        }
        return { id, value: res.token_value, expiresAt: new Date(res.token_info.expiry_time), scopes };
      };
      return await createWithRoom(PAT_QUOTA, mint, {
        ctx,
        list: () => databricksPat.list(t, ctx, deps),
        revoke: (id) => databricksPat.revoke(t, id, ctx, deps),
      });
    } catch (e) {
      throw refusal(t, e);
    }
  },

  // Always with the new PAT itself: that is what the applications reading the vault will use. Given
  // its scopes, one read per scoped area shows it reaches what the old one could.
  async verify(t, value, { databricks }, created) {
    const auth = { bearer: value };
    await databricks.call(t.origin, '/api/2.0/preview/scim/v2/Me', { method: 'GET', auth });
    if (created?.scopes) await probeScopes(databricks, t.origin, auth, created.scopes);
  },

  async revoke(t, credentialId, ctx, deps) {
    try {
      await deps.databricks.call(t.origin, '/api/2.0/token/delete', {
        method: 'POST',
        auth: await auth(t, ctx, deps),
        json: { token_id: credentialId },
        idempotent: true,
      });
    } catch (e) {
      if (e instanceof ProviderError && e.status === 404) return;
      throw t.ownerAppId ? refusal(t, e) : e;
    }
  },

  async list(t, ctx, deps) {
    let infos: TokenInfo[];
    try {
      infos = await listTokens(t, deps, await auth(t, ctx, deps));
    } catch (e) {
      // A dead current PAT cannot list: reconcile after a refused rotation says to store a new one.
      throw refusal(t, e);
    }
    return infos.map((i) => ({
      id: i.token_id,
      createdAt: new Date(i.creation_time),
      expiresAt: i.expiry_time > 0 ? new Date(i.expiry_time) : undefined,
      marker: i.comment,
    }));
  },
};

async function listTokens(t: Target, deps: RotatorDeps, auth: { bearer: string }): Promise<TokenInfo[]> {
  const res = await deps.databricks.call<{ token_infos?: TokenInfo[] }>(t.origin, '/api/2.0/token/list', {
    method: 'GET',
    auth,
  });
  return res.token_infos ?? [];
}

/**
 * The scopes of the PAT in the vault, from the owner's token list: the token the `credential-id`
 * tag names, else the one whose id is the SHA-256 of the value (Databricks token ids are).
 */
async function currentScopes(
  t: Target,
  ctx: SecretContext,
  deps: RotatorDeps,
  auth: { bearer: string },
): Promise<TokenScopes | { unreadable: string }> {
  let infos: TokenInfo[];
  try {
    infos = await listTokens(t, deps, auth);
  } catch (e) {
    // Refused (401/403): the caller cannot create a token either, which refusal() explains.
    if (e instanceof ProviderError && !e.transient && e.status !== 401 && e.status !== 403)
      return { unreadable: `token/list answered ${e.status}` };
    throw e;
  }
  const byValue = createHash('sha256').update(ctx.currentValue).digest('hex');
  const mine =
    infos.find((i) => ctx.credentialId !== undefined && i.token_id === ctx.credentialId) ??
    infos.find((i) => i.token_id === byValue);
  if (!mine) {
    return {
      unreadable: ctx.credentialId
        ? `token ${ctx.credentialId} is not in its owner's token list`
        : `no ${TAGS.credentialId} tag names it and no listed token matches its value`,
    };
  }
  return scopesOf(mine);
}
