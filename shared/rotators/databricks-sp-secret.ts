import { createHash } from 'node:crypto';
import { z } from 'zod';
import { RESOURCE_SCOPES, TAGS } from '../constants';
import { PermanentError, ProviderError, TransientError } from '../errors';
import {
  ALL_APIS,
  describeScopes,
  parseScopesTag,
  sameScopeList,
  scopesOf,
  successorScopes,
} from './databricks-scopes';
import { createWithRoom, type CredentialLimit } from './room';
import type { Rotator, RotatorDeps, SecretContext, TokenScopes } from './types';

interface SpSecret {
  id: string;
  secret?: string;
  secret_hash?: string;
  create_time: string;
  expire_time?: string;
  status?: string;
  scopes?: string[];
}

interface Target {
  accountId: string;
  spId: string;
}

const DAY_SECONDS = 86_400;
/** The marker takes away 1 to 3,599 seconds of the lifetime asked for (always whole days). */
const MARKER_SPAN_SECONDS = 3_600;

/**
 * The API keeps no comment, so the rotation's marker goes into the one field it echoes: the lifetime.
 * A secret lives whole days less a number of seconds (1 to 3,599) derived from the marker, which names
 * the vault, the secret and the rotation id (random, not known outside the service before it is
 * stored). `expire_time − create_time` then shows whose request made it, also when the create's
 * answer was lost; a person's secret (whole days, or a lifetime of their choosing) matches by chance
 * 3 times in 3,599, and only within that one rotation's time window.
 */
function markerSeconds(marker: string): number {
  const n = createHash('sha256').update(marker.toLowerCase()).digest().readUInt32BE(0);
  return 1 + (n % (MARKER_SPAN_SECONDS - 1));
}

/** A service principal holds at most 5 OAuth secrets (expired ones count until deleted). */
const SECRETS_PER_SP: CredentialLimit = {
  name: '5 OAuth secrets per service principal',
  reached: (e) => e instanceof ProviderError && e.code === 'QUOTA_EXCEEDED',
};

const targetTags = z.object({
  [TAGS.databricksAccountId]: z.guid({ error: 'expected the Databricks account id (GUID)' }),
  [TAGS.databricksSpId]: z
    .string()
    .regex(/^\d+$/, { error: "expected the service principal's numeric id in the account" }),
});

const basePath = (t: Target) =>
  `/api/2.0/accounts/${encodeURIComponent(t.accountId)}/servicePrincipals/${encodeURIComponent(t.spId)}/credentials/secrets`;

async function accountToken(deps: RotatorDeps): Promise<string> {
  const token = await deps.credential.getToken(RESOURCE_SCOPES.databricks);
  if (!token) throw new TransientError('no Entra token for the Databricks resource');
  return token.token;
}

/**
 * Databricks service-principal OAuth secrets, managed through the account API by the rotator's own
 * identity (an account principal allowed to manage the target). That identity could mint secrets for
 * any such principal, so each target must be bound to the vault in ROTATION_BINDINGS.
 */
export const databricksSpSecret: Rotator<Target> = {
  kind: 'databricks-sp-secret',
  providerAddressTag: TAGS.databricksSpId,

  parseTarget(tags) {
    const r = targetTags.safeParse(tags);
    const scopesTag = parseScopesTag(tags[TAGS.databricksScopes]);
    if (r.success && !scopesTag.finding)
      return {
        target: { accountId: r.data[TAGS.databricksAccountId], spId: r.data[TAGS.databricksSpId] },
      };
    return {
      findings: [
        ...(r.success ? [] : r.error.issues).map((i) => ({
          tag: String(i.path[0]),
          reason: i.code === 'invalid_type' ? 'required for databricks-sp-secret' : i.message,
        })),
        ...(scopesTag.finding ? [scopesTag.finding] : []),
      ],
    };
  },

  describe: (t) => `account ${t.accountId} service principal ${t.spId}`,
  bindingKey: (t) => `databricks-sp:${t.accountId}/${t.spId}`,

  async create(t, ctx, { lifetimeSeconds, marker }, deps) {
    const auth = { bearer: await accountToken(deps) };
    const tag = parseScopesTag(ctx.tags?.[TAGS.databricksScopes]).scopes;
    const scopes = successorScopes(currentScopes(await listSecrets(t, deps, auth), ctx), tag);
    const lifetime = lifetimeSeconds - markerSeconds(marker);
    const mint = async () => {
      const res = await deps.databricks.call<SpSecret>(deps.settings.DATABRICKS_ACCOUNTS_HOST, basePath(t), {
        method: 'POST',
        auth,
        json: {
          lifetime: `${lifetime}s`,
          ...(scopes.scopes ? { scopes: scopes.scopes } : {}),
        },
      });
      if (!res.secret)
        throw new ProviderError('databricks', 200, undefined, 'the account API returned no secret');
      if (!sameScopeList(scopesOf(res).scopes, scopes.scopes)) {
        await databricksSpSecret.revoke(t, res.id, ctx, deps);
        throw new PermanentError(
          `the account created secret ${res.id} with other scopes than asked for; it was revoked`,
        );
      }
      return {
        id: res.id,
        value: res.secret,
        expiresAt: new Date(res.expire_time ?? Date.now() + lifetime * 1000),
        scopes,
      };
    };
    return createWithRoom(SECRETS_PER_SP, mint, {
      ctx,
      list: () => databricksSpSecret.list(t, ctx, deps),
      revoke: (id) => databricksSpSecret.revoke(t, id, ctx, deps),
    });
  },

  async verify(t, value, deps, created) {
    const sp = await deps.databricks.call<{ applicationId: string }>(
      deps.settings.DATABRICKS_ACCOUNTS_HOST,
      `/api/2.0/accounts/${encodeURIComponent(t.accountId)}/scim/v2/ServicePrincipals/${encodeURIComponent(t.spId)}`,
      { method: 'GET', auth: { bearer: await accountToken(deps) } },
    );
    // An M2M token issued for the new secret proves it works; its scope shows what it may call.
    const token = await deps.databricks.call<{ scope?: string }>(
      deps.settings.DATABRICKS_ACCOUNTS_HOST,
      `/oidc/accounts/${encodeURIComponent(t.accountId)}/v1/token`,
      {
        method: 'POST',
        auth: { basic: { user: sp.applicationId, password: value } },
        form: { grant_type: 'client_credentials', scope: ALL_APIS },
      },
    );
    if (!created?.scopes) return;
    const granted = (token.scope ?? ALL_APIS).split(' ').filter((s) => s && s !== 'offline_access');
    const grantedScopes = granted.includes(ALL_APIS) ? undefined : granted;
    if (!sameScopeList(grantedScopes, created.scopes.scopes)) {
      throw new PermanentError(
        `the new secret's tokens carry "${token.scope ?? ''}", not the scopes of the secret it replaces ("${describeScopes(created.scopes)}")`,
      );
    }
  },

  async revoke(t, credentialId, _ctx, deps) {
    try {
      await deps.databricks.call(
        deps.settings.DATABRICKS_ACCOUNTS_HOST,
        `${basePath(t)}/${encodeURIComponent(credentialId)}`,
        {
          method: 'DELETE',
          auth: { bearer: await accountToken(deps) },
        },
      );
    } catch (e) {
      if (!(e instanceof ProviderError && e.status === 404)) throw e;
    }
  },

  carries(c, marker) {
    if (!c.expiresAt) return false;
    const lived = Math.round((c.expiresAt.getTime() - c.createdAt.getTime()) / 1000);
    const short = (DAY_SECONDS - (lived % DAY_SECONDS)) % DAY_SECONDS;
    // A second either way: the provider may round each time to the second on its own.
    return Math.abs(short - markerSeconds(marker)) <= 1;
  },

  async list(t, _ctx, deps) {
    const secrets = await listSecrets(t, deps, { bearer: await accountToken(deps) });
    // The API keeps no comment: the marker is in the lifetime (`carries`).
    return secrets.map((s) => ({
      id: s.id,
      createdAt: new Date(s.create_time),
      expiresAt: s.expire_time ? new Date(s.expire_time) : undefined,
    }));
  },
};

/** Every secret of the service principal, following `next_page_token`. */
function listSecrets(t: Target, deps: RotatorDeps, auth: { bearer: string }): Promise<SpSecret[]> {
  return deps.databricks.listAll<SpSecret>(deps.settings.DATABRICKS_ACCOUNTS_HOST, basePath(t), 'secrets', {
    auth,
  });
}

/** The scopes of the secret in the vault: the one `credential-id` names, else the one whose hash matches. */
function currentScopes(secrets: SpSecret[], ctx: SecretContext): TokenScopes | { unreadable: string } {
  const hash = createHash('sha256').update(ctx.currentValue).digest('hex');
  const mine =
    secrets.find((s) => ctx.credentialId !== undefined && s.id === ctx.credentialId) ??
    secrets.find((s) => s.secret_hash === hash);
  if (!mine) {
    return {
      unreadable: ctx.credentialId
        ? `secret ${ctx.credentialId} is not among the service principal's secrets`
        : `no ${TAGS.credentialId} tag names it and no listed secret matches its hash`,
    };
  }
  return scopesOf(mine);
}
