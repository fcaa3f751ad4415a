import { ClientSecretCredential } from '@azure/identity';
import { z } from 'zod';
import { isPublicAuthority } from '../clients/credential';
import { MARKER_PREFIX, RESOURCE_SCOPES, TAGS } from '../constants';
import { TransientError } from '../errors';
import type { Rotator } from './types';

const appIdSchema = z.guid({ error: 'expected the application (client) id (GUID)' });

/**
 * Entra app-registration client secrets through Graph `addPassword` / `removePassword`, with
 * `Application.ReadWrite.OwnedBy`. The rotator owns several apps, so a vault may only rotate an app
 * bound to it: a ROTATION_BINDINGS entry, or a tag `kv-rotator:{vault}/{secret}` (or `/*`) on the
 * application itself, which only the app's owners can write.
 */
export const entraAppSecret: Rotator<{ appId: string }> = {
  kind: 'entra-app-secret',
  providerAddressTag: TAGS.entraAppId,

  parseTarget(tags) {
    const value = tags[TAGS.entraAppId];
    if (!value) return { findings: [{ tag: TAGS.entraAppId, reason: 'required for entra-app-secret' }] };
    const r = appIdSchema.safeParse(value.trim());
    return r.success
      ? { target: { appId: r.data } }
      : { findings: [{ tag: TAGS.entraAppId, reason: `"${value}": ${r.error.issues[0]?.message}` }] };
  },

  describe: (t) => `app ${t.appId}`,
  bindingKey: (t) => `entra-app:${t.appId}`,

  async hasTargetBinding(t, ctx, { graph }) {
    const app = await graph.getApplicationByAppId(t.appId);
    const accepted = [
      `${MARKER_PREFIX}:${ctx.vaultName}/${ctx.secretName}`,
      `${MARKER_PREFIX}:${ctx.vaultName}/*`,
    ];
    return app.tags.some((tag) => accepted.includes(tag));
  },

  async create(t, _ctx, { expiresAt, marker }, { graph }) {
    const res = await graph.addPassword(t.appId, marker, expiresAt);
    return { id: res.keyId, value: res.secretText, expiresAt: new Date(res.endDateTime) };
  },

  async verify(t, value, { settings }) {
    const credential = new ClientSecretCredential(settings.AZURE_TENANT_ID, t.appId, value, {
      authorityHost: settings.AZURE_AUTHORITY_HOST,
      disableInstanceDiscovery: !isPublicAuthority(settings.AZURE_AUTHORITY_HOST),
    });
    try {
      await credential.getToken(RESOURCE_SCOPES.graph);
    } catch (e) {
      // A new secret takes a while to reach every Entra replica: not working yet is not failure yet.
      throw new TransientError(
        `the new secret does not issue tokens yet: ${(e as Error).message.split('\n')[0]}`,
        { cause: e },
      );
    }
  },

  async revoke(t, credentialId, _ctx, { graph }) {
    const app = await graph.getApplicationByAppId(t.appId);
    if (!app.passwordCredentials.some((p) => p.keyId === credentialId)) return;
    await graph.removePassword(t.appId, credentialId);
  },

  async list(t, _ctx, { graph }) {
    const app = await graph.getApplicationByAppId(t.appId);
    return app.passwordCredentials.map((p) => ({
      id: p.keyId,
      createdAt: new Date(p.startDateTime),
      expiresAt: new Date(p.endDateTime),
      marker: p.displayName ?? undefined,
      hint: p.hint ?? undefined,
    }));
  },
};
