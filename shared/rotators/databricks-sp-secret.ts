import { z } from 'zod';
import { RESOURCE_SCOPES, TAGS } from '../constants';
import { ProviderError, TransientError } from '../errors';
import type { Rotator, RotatorDeps } from './types';

interface SpSecret {
  id: string;
  secret?: string;
  create_time: string;
  expire_time?: string;
  status?: string;
}

interface Target {
  accountId: string;
  spId: string;
}

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
    if (r.success)
      return { target: { accountId: r.data[TAGS.databricksAccountId], spId: r.data[TAGS.databricksSpId] } };
    return {
      findings: r.error.issues.map((i) => ({
        tag: String(i.path[0]),
        reason: i.code === 'invalid_type' ? 'required for databricks-sp-secret' : i.message,
      })),
    };
  },

  describe: (t) => `account ${t.accountId} service principal ${t.spId}`,
  bindingKey: (t) => `databricks-sp:${t.accountId}/${t.spId}`,

  async create(t, _ctx, { lifetimeSeconds }, deps) {
    const res = await deps.databricks.call<SpSecret>(deps.settings.DATABRICKS_ACCOUNTS_HOST, basePath(t), {
      method: 'POST',
      auth: { bearer: await accountToken(deps) },
      json: { lifetime: `${lifetimeSeconds}s` },
    });
    if (!res.secret)
      throw new ProviderError('databricks', 200, undefined, 'the account API returned no secret');
    return {
      id: res.id,
      value: res.secret,
      expiresAt: new Date(res.expire_time ?? Date.now() + lifetimeSeconds * 1000),
    };
  },

  async verify(t, value, deps) {
    const sp = await deps.databricks.call<{ applicationId: string }>(
      deps.settings.DATABRICKS_ACCOUNTS_HOST,
      `/api/2.0/accounts/${encodeURIComponent(t.accountId)}/scim/v2/ServicePrincipals/${encodeURIComponent(t.spId)}`,
      { method: 'GET', auth: { bearer: await accountToken(deps) } },
    );
    // An M2M token issued for the new secret proves it works.
    await deps.databricks.call(
      deps.settings.DATABRICKS_ACCOUNTS_HOST,
      `/oidc/accounts/${encodeURIComponent(t.accountId)}/v1/token`,
      {
        method: 'POST',
        auth: { basic: { user: sp.applicationId, password: value } },
        form: { grant_type: 'client_credentials', scope: 'all-apis' },
      },
    );
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

  async list(t, _ctx, deps) {
    const res = await deps.databricks.call<{ secrets?: SpSecret[] }>(
      deps.settings.DATABRICKS_ACCOUNTS_HOST,
      basePath(t),
      {
        method: 'GET',
        auth: { bearer: await accountToken(deps) },
      },
    );
    // The API keeps no comment, so these credentials carry no marker; reconcile goes by time instead.
    return (res.secrets ?? []).map((s) => ({
      id: s.id,
      createdAt: new Date(s.create_time),
      expiresAt: s.expire_time ? new Date(s.expire_time) : undefined,
    }));
  },
};
