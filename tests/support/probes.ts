import { ClientSecretCredential } from '@azure/identity';
import { request } from 'undici';
import { MARKER_PREFIX } from '../../shared/constants';
import type { Tenant } from './tenant';

/**
 * "Does this credential work?" probes: each uses a credential value against its provider the way an
 * application that reads it from the vault would, over HTTPS with a real client. They answer, never
 * throw, so a test can record the answer before asserting on it; `detail` never holds the value.
 */
export interface Probe {
  works: boolean;
  detail: string;
}

/** One HTTP call with undici: the credential works if the provider answers 200. */
async function httpProbe(
  url: URL,
  options: { method: 'GET' | 'POST'; headers: Record<string, string>; body?: string },
): Promise<Probe> {
  try {
    const res = await request(url, options);
    const text = await res.body.text();
    return { works: res.statusCode === 200, detail: `${res.statusCode} ${text.slice(0, 200)}` };
  } catch (e) {
    return { works: false, detail: `no answer: ${(e as Error).message}` };
  }
}

/** A Databricks PAT: `GET {workspace}/api/2.0/preview/scim/v2/Me` with it as the bearer token. */
export function patWorks(workspaceUrl: string, pat: string): Promise<Probe> {
  return httpProbe(new URL('/api/2.0/preview/scim/v2/Me', workspaceUrl), {
    method: 'GET',
    headers: { authorization: `Bearer ${pat}` },
  });
}

/** A Databricks SP OAuth secret: an M2M token from the account's token endpoint (client_credentials). */
export function spSecretWorks(
  accountsUrl: string,
  accountId: string,
  applicationId: string,
  secret: string,
): Promise<Probe> {
  return httpProbe(new URL(`/oidc/accounts/${encodeURIComponent(accountId)}/v1/token`, accountsUrl), {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${applicationId}:${secret}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'all-apis' }).toString(),
  });
}

/** An Entra app secret: a Graph token through ClientSecretCredential. */
export async function appSecretWorks(
  authorityHost: string,
  tenantId: string,
  appId: string,
  secret: string,
): Promise<Probe> {
  const credential = new ClientSecretCredential(tenantId, appId, secret, {
    authorityHost,
    disableInstanceDiscovery: true,
  });
  try {
    const token = await credential.getToken('https://graph.microsoft.com/.default');
    return { works: Boolean(token?.token), detail: 'token issued' };
  } catch (e) {
    return { works: false, detail: (e as Error).message.split('\n')[0] ?? '' };
  }
}

export type SecretKey = 'pat' | 'sp' | 'app';

/** The probe for the tenant's secret of this kind. */
export function credentialWorks(tenant: Tenant, key: SecretKey, value: string): Promise<Probe> {
  switch (key) {
    case 'pat':
      return patWorks(tenant.workspaceUrl, value);
    case 'sp':
      return spSecretWorks(tenant.azure.accountsUrl, tenant.accountId, tenant.spApplicationId, value);
    case 'app':
      return appSecretWorks(tenant.azure.authorityHost, tenant.azure.state.tenantId, tenant.appId, value);
  }
}

/** A credential as the provider keeps it (read from the emulator's state): its id and marker. */
export interface ProviderCredential {
  id: string;
  /** The PAT comment or app-secret display name; SP secrets have no such field. */
  marker?: string;
}

/** The credentials that exist at the provider for the tenant's secret of this kind, right now. */
export function providerCredentials(tenant: Tenant, key: SecretKey): ProviderCredential[] {
  const state = tenant.azure.state;
  switch (key) {
    case 'pat': {
      const ws = state.workspaces.get(`ws-${tenant.vaultName}`);
      const now = tenant.azure.clock.now();
      return (ws?.tokens ?? [])
        .filter((t) => t.expiryTime === -1 || t.expiryTime > now)
        .map((t) => ({ id: t.tokenId, marker: t.comment }));
    }
    case 'sp': {
      const sp = state.accounts
        .get(tenant.accountId)
        ?.servicePrincipals.find((s) => s.applicationId === tenant.spApplicationId);
      return (sp?.secrets ?? []).map((s) => ({ id: s.id }));
    }
    case 'app': {
      const app = state.apps.find((a) => a.appId === tenant.appId);
      return (app?.passwordCredentials ?? []).map((p) => ({
        id: p.keyId,
        marker: p.displayName ?? undefined,
      }));
    }
  }
}

/** The marker prefix this service writes on the credentials it creates for a secret. */
export const markerPrefix = (vault: string, secret: string): string => `${MARKER_PREFIX}:${vault}/${secret}:`;
