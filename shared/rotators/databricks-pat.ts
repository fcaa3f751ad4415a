import { TAGS } from '../constants';
import { PermanentError, ProviderError } from '../errors';
import { parseDatabricksHost } from '../hosts';
import type { Rotator } from './types';

interface TokenInfo {
  token_id: string;
  creation_time: number;
  expiry_time: number;
  comment?: string;
}

/**
 * Databricks personal access tokens. A PAT belongs to whoever created it, so the successor is created
 * with the current, still-valid token: the rotator never gains access its secret did not already have,
 * which is why this kind needs no binding. Only the host is checked (SSRF).
 */
export const databricksPat: Rotator<{ origin: string }> = {
  kind: 'databricks-pat',
  providerAddressTag: TAGS.databricksHost,

  parseTarget(tags, settings) {
    const host = tags[TAGS.databricksHost];
    if (!host)
      return {
        findings: [{ tag: TAGS.databricksHost, reason: 'required for databricks-pat: the workspace URL' }],
      };
    const parsed = parseDatabricksHost(host, settings.DATABRICKS_ALLOWED_HOSTS);
    return 'origin' in parsed
      ? { target: { origin: parsed.origin } }
      : { findings: [{ tag: TAGS.databricksHost, reason: parsed.error }] };
  },

  describe: (t) => new URL(t.origin).host,
  bindingKey: () => undefined,

  async create(t, ctx, { lifetimeSeconds, marker }, { databricks }) {
    try {
      const res = await databricks.call<{ token_value: string; token_info: TokenInfo }>(
        t.origin,
        '/api/2.0/token/create',
        {
          method: 'POST',
          auth: { bearer: ctx.currentValue },
          json: { lifetime_seconds: lifetimeSeconds, comment: marker },
        },
      );
      return {
        id: res.token_info.token_id,
        value: res.token_value,
        expiresAt: new Date(res.token_info.expiry_time),
      };
    } catch (e) {
      if (e instanceof ProviderError && (e.status === 401 || e.status === 403)) {
        throw new PermanentError(
          'the PAT in the vault is no longer valid (expired or revoked), so it cannot create its successor; store a new PAT by hand',
          { cause: e },
        );
      }
      throw e;
    }
  },

  async verify(t, value, { databricks }) {
    await databricks.call(t.origin, '/api/2.0/preview/scim/v2/Me', {
      method: 'GET',
      auth: { bearer: value },
    });
  },

  async revoke(t, credentialId, ctx, { databricks }) {
    try {
      await databricks.call(t.origin, '/api/2.0/token/delete', {
        method: 'POST',
        auth: { bearer: ctx.currentValue },
        json: { token_id: credentialId },
        idempotent: true,
      });
    } catch (e) {
      if (!(e instanceof ProviderError && e.status === 404)) throw e;
    }
  },

  async list(t, ctx, { databricks }) {
    const res = await databricks.call<{ token_infos?: TokenInfo[] }>(t.origin, '/api/2.0/token/list', {
      method: 'GET',
      auth: { bearer: ctx.currentValue },
    });
    return (res.token_infos ?? []).map((i) => ({
      id: i.token_id,
      createdAt: new Date(i.creation_time),
      expiresAt: i.expiry_time > 0 ? new Date(i.expiry_time) : undefined,
      marker: i.comment,
    }));
  },
};
