/** Doctor's vault checks that need the control plane: RBAC mode and the Event Grid subscription. */
import { HANDLED_EVENT_TYPES } from '../shared/constants';
import type { Check } from './doctor';
import type { Target } from './target';

const ARM = 'https://management.azure.com';
const ARM_SCOPE = `${ARM}/.default`;

/** GET on Azure Resource Manager (real tenants only), following nextLink. */
async function armList<T>(target: Target, path: string): Promise<T[]> {
  const token = (await target.services.credential.getToken(ARM_SCOPE))?.token;
  const out: T[] = [];
  for (let url: string | undefined = `${ARM}${path}`; url;) {
    const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
    const body = (await res.json()) as {
      value?: T[];
      nextLink?: string;
      error?: { code?: string; message?: string };
    };
    if (!res.ok) throw new Error(`ARM ${res.status} ${body.error?.code ?? ''}: ${body.error?.message ?? ''}`);
    out.push(...(body.value ?? []));
    url = body.nextLink?.startsWith(`${ARM}/`) ? body.nextLink : undefined;
  }
  return out;
}

interface ArmVault {
  id: string;
  name: string;
  properties?: { enableRbacAuthorization?: boolean };
}

/** RBAC and the Event Grid subscription of each vault, through ARM (real) or the local control API. */
export async function vaultSetup(target: Target, vaults: string[], checks: Check[]): Promise<void> {
  if (target.azureUrl) {
    for (const v of vaults)
      checks.push({
        area: 'vault',
        subject: v,
        ok: true,
        detail: 'authorizes with Azure RBAC (the local Key Vault has no access policies)',
      });
    const res = await fetch(`${target.azureUrl}/control/eventgrid/subscriptions`);
    const { subscriptions } = (await res.json()) as {
      subscriptions: { url: string; eventTypes?: string[]; vaults?: string[] }[];
    };
    for (const v of vaults) {
      const sub = subscriptions.find(
        (s) =>
          (!s.vaults || s.vaults.includes(v)) &&
          HANDLED_EVENT_TYPES.every((t) => !s.eventTypes || s.eventTypes.includes(t)),
      );
      checks.push(
        sub
          ? {
              area: 'events',
              subject: v,
              ok: true,
              detail: `Event Grid delivers ${HANDLED_EVENT_TYPES.join(', ')} to ${sub.url}`,
            }
          : {
              area: 'events',
              subject: v,
              ok: false,
              detail:
                'no Event Grid subscription delivers its near-expiry events (only the timer scan would rotate)',
              fix: 'locally, `npm start` subscribes its function app; in Azure, infra/app/keyvault-events.bicep creates one per vault',
            },
      );
    }
    return;
  }
  const sub = process.env.AZURE_SUBSCRIPTION_ID;
  if (!sub) {
    for (const v of vaults)
      checks.push({
        area: 'vault',
        subject: v,
        ok: false,
        detail:
          'RBAC mode and event subscriptions are read from Azure Resource Manager, which needs the subscription id',
        fix: 'set AZURE_SUBSCRIPTION_ID (az account show --query id -o tsv) and run doctor again',
      });
    return;
  }
  const all = await armList<ArmVault>(
    target,
    `/subscriptions/${sub}/providers/Microsoft.KeyVault/vaults?api-version=2023-07-01`,
  );
  const topics = await armList<{ id: string; properties?: { source?: string } }>(
    target,
    `/subscriptions/${sub}/providers/Microsoft.EventGrid/systemTopics?api-version=2022-06-15`,
  );
  for (const v of vaults) {
    const vault = all.find((x) => x.name.toLowerCase() === v.toLowerCase());
    if (!vault) {
      checks.push({
        area: 'vault',
        subject: v,
        ok: false,
        detail: `not found in subscription ${sub}`,
        fix: 'set AZURE_SUBSCRIPTION_ID to the vault’s subscription',
      });
      continue;
    }
    const rbac = vault.properties?.enableRbacAuthorization === true;
    checks.push({
      area: 'vault',
      subject: v,
      ok: rbac,
      detail: rbac ? 'authorizes with Azure RBAC' : 'uses access policies',
      fix: rbac
        ? undefined
        : `az keyvault update --name ${v} --enable-rbac-authorization true (then grant Key Vault Secrets Officer to the function app's identity)`,
    });
    const topic = topics.find((t) => t.properties?.source?.toLowerCase() === vault.id.toLowerCase());
    const subs = topic
      ? await armList<{ name: string; properties?: { filter?: { includedEventTypes?: string[] } } }>(
          target,
          `${topic.id}/eventSubscriptions?api-version=2022-06-15`,
        )
      : [];
    const match = subs.find((s) =>
      HANDLED_EVENT_TYPES.every((t) => s.properties?.filter?.includedEventTypes?.includes(t) ?? true),
    );
    checks.push(
      match
        ? { area: 'events', subject: v, ok: true, detail: `event subscription ${match.name}` }
        : {
            area: 'events',
            subject: v,
            ok: false,
            detail: 'no event subscription for the near-expiry events',
            fix: 'deploy infra/app/keyvault-events.bicep for this vault (azd up)',
          },
    );
  }
}
