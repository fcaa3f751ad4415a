/**
 * Reads on the providers' APIs with the CLI's identity (the service's managed identity locally,
 * DefaultAzureCredential against a real tenant): Graph with paging, Databricks through the service's
 * own client (allowlisted hosts only), and what the service knows of its workspaces and accounts.
 */
import { RESOURCE_SCOPES, TAGS } from '../shared/constants';
import type { Target } from './target';
import type { SecretRow } from './vaults';

/** A GUID (application, tenant and account ids). */
export const isGuid = (s: string | undefined) =>
  !!s && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(s);

async function token(target: Target, scope: string): Promise<string> {
  const t = await target.services.credential.getToken(scope);
  if (!t) throw new Error(`no token for ${scope}`);
  return t.token;
}

/** GET on Microsoft Graph, following `@odata.nextLink` for collections. */
export async function graphGet<T>(target: Target, path: string): Promise<T> {
  const base = target.settings.GRAPH_BASE_URL.replace(/\/$/, '');
  const headers = { authorization: `Bearer ${await token(target, RESOURCE_SCOPES.graph)}` };
  let url: string | undefined = `${base}/v1.0${path}`;
  let collected: unknown[] | undefined;
  let single: unknown;
  while (url) {
    const res = await fetch(url, { headers });
    const body = (await res.json().catch(() => ({}))) as {
      value?: unknown[];
      '@odata.nextLink'?: string;
      error?: { code?: string; message?: string };
    };
    if (!res.ok)
      throw new Error(
        `Graph ${path}: ${res.status} ${body.error?.code ?? ''} ${body.error?.message ?? ''}`.trim(),
      );
    if (!Array.isArray(body.value)) {
      single = body;
      break;
    }
    collected = [...(collected ?? []), ...body.value];
    const next: string | undefined = body['@odata.nextLink'];
    // Follow only links on the same Graph origin (the token must not go elsewhere).
    url = next && new URL(next).origin === new URL(base).origin ? next : undefined;
  }
  return (collected ? { value: collected } : single) as T;
}

/** A call to a Databricks workspace or account host through the service's client (allowlisted hosts only). */
export async function databricksGet<T>(target: Target, origin: string, path: string): Promise<T> {
  return target.services.deps.databricks.call<T>(origin, path, {
    method: 'GET',
    auth: { bearer: await token(target, RESOURCE_SCOPES.databricks) },
  });
}

/** The workspaces the service knows: allowlisted hosts and every `databricks-host` tag in the vaults. */
export function workspaceHosts(target: Target, secrets: SecretRow[]): string[] {
  const hosts = new Set<string>(target.settings.DATABRICKS_ALLOWED_HOSTS.map((h) => h.toLowerCase()));
  for (const s of secrets) {
    const host = s.tags[TAGS.databricksHost];
    if (host)
      hosts.add(
        host
          .toLowerCase()
          .replace(/^https:\/\//, '')
          .replace(/\/$/, ''),
      );
  }
  return [...hosts].sort();
}

/** Accounts the service rotates secrets in: `databricks-account-id` tags and databricks-sp bindings. */
export function accountIds(target: Target, secrets: SecretRow[]): string[] {
  const ids = new Set<string>();
  for (const s of secrets) {
    const id = s.tags[TAGS.databricksAccountId];
    if (id) ids.add(id);
  }
  for (const b of target.settings.ROTATION_BINDINGS) {
    const m = /^databricks-sp:([^/]+)\//.exec(b.target);
    if (m) ids.add(m[1] as string);
  }
  return [...ids].filter(isGuid).sort();
}

export interface FederationPolicyView {
  policy_id: string;
  oidc_policy: {
    issuer: string;
    audiences?: string[];
    subject?: string;
    subject_claim?: string;
    jwks_uri?: string;
    jwks_json?: string;
  };
}

export async function spFederationPolicies(
  target: Target,
  accountId: string,
  spId: string,
): Promise<FederationPolicyView[]> {
  const policies: FederationPolicyView[] = [];
  let page: string | undefined;
  do {
    const q = page ? `?page_token=${encodeURIComponent(page)}` : '';
    const res = await databricksGet<{ policies?: FederationPolicyView[]; next_page_token?: string }>(
      target,
      target.settings.DATABRICKS_ACCOUNTS_HOST,
      `/api/2.0/accounts/${accountId}/servicePrincipals/${spId}/federationPolicies${q}`,
    );
    policies.push(...(res.policies ?? []));
    page = res.next_page_token;
  } while (page);
  return policies;
}

export interface AccountSp {
  id: string;
  applicationId: string;
  displayName?: string;
}

export async function accountServicePrincipals(
  target: Target,
  accountId: string,
  filter?: string,
): Promise<AccountSp[]> {
  const out: AccountSp[] = [];
  for (let start = 1; ;) {
    const q = new URLSearchParams({ startIndex: String(start), count: '100', ...(filter ? { filter } : {}) });
    const res = await databricksGet<{
      Resources?: AccountSp[];
      totalResults?: number;
      itemsPerPage?: number;
    }>(
      target,
      target.settings.DATABRICKS_ACCOUNTS_HOST,
      `/api/2.0/accounts/${accountId}/scim/v2/ServicePrincipals?${q}`,
    );
    const got = res.Resources ?? [];
    out.push(...got);
    start += got.length;
    if (got.length === 0 || start > (res.totalResults ?? 0)) return out;
  }
}
