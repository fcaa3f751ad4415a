/**
 * The storm's tenant: `secrets` opted-in secrets over `vaults` vaults, the three kinds in turn, each
 * with a working credential at its provider, as an admin would have set them up. Every `sharedEvery`-th
 * service principal and Entra app is shared by two secrets in different vaults (the sibling case that
 * lost credentials before the issuance record). Two cohorts: `calm` (due at once, rotated without
 * faults) and `storm` (made due later, rotated under the fault timeline), the same mix in each.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { LocalAzure } from '../azure';
import { IDENTITY_HEADER } from '../azure/services/entra';

const DAY_S = 86_400;
export const ROTATOR = 'chaos-rotator';
const KINDS = ['databricks-pat', 'databricks-sp-secret', 'entra-app-secret'] as const;
export type Kind = (typeof KINDS)[number];
export type Cohort = 'calm' | 'storm';

export interface ChaosSecret {
  vault: string;
  name: string;
  kind: Kind;
  cohort: Cohort;
  /** The provider target, shared with a sibling secret in another vault when `shared`. */
  target: string;
  shared: boolean;
}

export interface ChaosTenant {
  secrets: ChaosSecret[];
  vaults: string[];
  accountId: string;
  /** App settings of the function app. */
  env: Record<string, string>;
  /** Pushes the storm cohort into its rotation window (expiry 10 days out). */
  makeStormDue(): void;
}

const hex = (n: number) => randomBytes(n).toString('hex');

export async function seedChaosTenant(
  azure: LocalAzure,
  options: { secrets: number; vaults: number; sharedEvery: number; storage: string },
): Promise<ChaosTenant> {
  const vaults = Array.from({ length: options.vaults }, (_, i) => `kv-chaos-${i}`);
  const accountId = randomUUID();
  const rotatorClientId = randomUUID();
  const nowS = azure.clock.nowSeconds();
  const due = nowS + 10 * DAY_S;
  const later = nowS + 200 * DAY_S;

  // Secret i: vault i % V, kind by (i / V) % 3, cohort by (i / 3V) % 2 — the same mix in each cohort.
  interface Plan extends ChaosSecret {
    value: string;
    sibling?: number;
  }
  const plans: Plan[] = [];
  for (let i = 0; i < options.secrets; i++) {
    const vault = vaults[i % vaults.length] as string;
    const round = Math.floor(i / vaults.length);
    const kind = KINDS[round % 3] as Kind;
    const cohort: Cohort = Math.floor(round / 3) % 2 === 0 ? 'calm' : 'storm';
    plans.push({
      vault,
      name: `s-${String(i).padStart(5, '0')}`,
      kind,
      cohort,
      target: '',
      shared: false,
      value: '',
    });
  }
  // Shares: secret i (SP or app, not in the last vault) shares its target with i + 1 (next vault, same kind and cohort).
  let sharedCount = 0;
  for (let i = 0; i + 1 < plans.length; i++) {
    const a = plans[i] as Plan;
    const b = plans[i + 1] as Plan;
    if (a.kind === 'databricks-pat' || a.shared || b.shared || a.kind !== b.kind || a.vault === b.vault)
      continue;
    if (sharedCount++ % options.sharedEvery !== 0) continue;
    a.shared = b.shared = true;
    a.sibling = i + 1;
  }

  const apps: { displayName: string; owners: string[]; secrets: { value: string }[]; tags: string[] }[] = [];
  const sps: { applicationId: string; displayName: string; secrets: { value: string }[] }[] = [];
  const tokens = new Map<string, { owner: string; value: string; comment: string; expiryTime: number }[]>();
  const targetOf = new Map<number, { app?: number; sp?: number }>();
  plans.forEach((p, i) => {
    const owner = plans.findIndex((q) => q.sibling === i);
    if (owner >= 0) {
      // The sibling's target, with a credential of its own.
      const t = targetOf.get(owner) as { app?: number; sp?: number };
      targetOf.set(i, t);
      p.value = p.kind === 'entra-app-secret' ? `chs8Q~${hex(17)}` : `dose${hex(16)}`;
      if (t.app !== undefined) {
        apps[t.app]!.secrets.push({ value: p.value });
        apps[t.app]!.tags.push(`kv-rotator:${p.vault}/*`);
      }
      if (t.sp !== undefined) sps[t.sp]!.secrets.push({ value: p.value });
      return;
    }
    if (p.kind === 'databricks-pat') {
      p.value = `dapi${hex(16)}`;
      const list = tokens.get(p.vault) ?? [];
      list.push({
        owner: 'data-eng@contoso.com',
        value: p.value,
        comment: p.name,
        expiryTime: p.cohort === 'calm' ? due : later,
      });
      tokens.set(p.vault, list);
    } else if (p.kind === 'databricks-sp-secret') {
      p.value = `dose${hex(16)}`;
      targetOf.set(i, { sp: sps.length });
      sps.push({ applicationId: randomUUID(), displayName: `sp-${p.name}`, secrets: [{ value: p.value }] });
    } else {
      p.value = `chs8Q~${hex(17)}`;
      targetOf.set(i, { app: apps.length });
      apps.push({
        displayName: `app-${p.name}`,
        owners: [ROTATOR],
        secrets: [{ value: p.value }],
        tags: [`kv-rotator:${p.vault}/*`],
      });
    }
  });

  const first = await azure.seed({
    managedIdentities: [
      {
        name: ROTATOR,
        clientId: rotatorClientId,
        graphRoles: ['Application.ReadWrite.OwnedBy', 'Mail.Send'],
      },
    ],
    apps,
    accounts: [{ accountId, admins: [rotatorClientId], servicePrincipals: sps }],
  });
  const second = await azure.seed({
    workspaces: vaults.map((v) => ({
      name: `ws-${v}`,
      accountId,
      principals: [{ userName: 'data-eng@contoso.com' }],
      tokens: tokens.get(v) ?? [],
    })),
    vaults: vaults.map((name) => ({
      name,
      roleAssignments: [{ principal: ROTATOR, role: 'Key Vault Secrets Officer' as const }],
    })),
  });
  const account = first.accounts[accountId]!;
  const bindings: string[] = [];
  const tokenIds = new Map<string, string[]>(
    vaults.map((v) => [v, [...second.workspaces[`ws-${v}`]!.tokenIds]]),
  );
  const credentialIndex = new Map<string, number>();
  for (const [i, p] of plans.entries()) {
    const vault = azure.state.vaults.get(p.vault)!;
    const tags: Record<string, string> = { 'rotation-kind': p.kind, 'rotation-grace-hours': '24' };
    const t = targetOf.get(i);
    if (p.kind === 'databricks-pat') {
      tags['databricks-host'] = new URL(second.workspaces[`ws-${p.vault}`]!.url).host;
      tags['credential-id'] = tokenIds.get(p.vault)!.shift()!;
      p.target = `pat:${p.vault}/${p.name}`;
    } else if (p.kind === 'databricks-sp-secret') {
      const sp = account.servicePrincipals[sps[t!.sp!]!.applicationId]!;
      const n = credentialIndex.get(`sp${t!.sp}`) ?? 0;
      credentialIndex.set(`sp${t!.sp}`, n + 1);
      tags['databricks-account-id'] = accountId;
      tags['databricks-sp-id'] = sp.id;
      tags['credential-id'] = sp.secretIds[n]!;
      p.target = `sp:${sp.id}`;
      bindings.push(`${p.vault}/${p.name}=databricks-sp:${accountId}/${sp.id}`);
    } else {
      const app = first.apps.find((a) => a.displayName === apps[t!.app!]!.displayName)!;
      const n = credentialIndex.get(`app${t!.app}`) ?? 0;
      credentialIndex.set(`app${t!.app}`, n + 1);
      tags['entra-app-id'] = app.appId;
      tags['credential-id'] = app.keyIds[n]!;
      p.target = `app:${app.appId}`;
    }
    vault.secrets.set(p.name, [
      {
        version: hex(16),
        value: p.value,
        enabled: true,
        exp: p.cohort === 'calm' ? due : later,
        created: nowS,
        updated: nowS,
        tags,
        // Only the timer drives this storm: no near-expiry events for seeded versions.
        emitted: { nearExpiry: true, expired: true },
      },
    ]);
  }

  const env: Record<string, string> = {
    FUNCTIONS_WORKER_RUNTIME: 'node',
    AzureWebJobsStorage: options.storage,
    KEY_VAULT_URIS: vaults.map((v) => `${v}=${second.vaults[v]}`).join(','),
    AZURE_TENANT_ID: azure.state.tenantId,
    AZURE_CLIENT_ID: rotatorClientId,
    AZURE_AUTHORITY_HOST: azure.authorityHost,
    GRAPH_BASE_URL: azure.graphUrl,
    DATABRICKS_ACCOUNTS_HOST: azure.accountsUrl,
    DATABRICKS_ALLOWED_HOSTS: vaults.map((v) => new URL(second.workspaces[`ws-${v}`]!.url).host).join(','),
    ROTATION_BINDINGS: bindings.join(','),
    ROTATION_DRY_RUN: 'false',
    // The storm ticks the timer itself; this schedule never fires during a run.
    SCAN_SCHEDULE: '0 0 0 1 1 *',
    NOTIFY_DEFAULT_CHANNELS: 'webhook',
    WEBHOOK_URL: `${azure.url}/sink/webhook`,
    WEBHOOK_SIGNING_KEY: randomBytes(32).toString('base64url'),
    FAILURE_NOTICE_AFTER_MINUTES: '1',
    ANNOUNCE_MISSED_AFTER_MINUTES: '1',
    IN_FLIGHT_CLAIM_MINUTES: '1',
    IDENTITY_ENDPOINT: azure.identityEndpoint,
    IDENTITY_HEADER,
  };
  return {
    secrets: plans.map(({ vault, name, kind, cohort, target, shared }) => ({
      vault,
      name,
      kind,
      cohort,
      target,
      shared,
    })),
    vaults,
    accountId,
    env,
    makeStormDue: () => {
      const exp = azure.clock.nowSeconds() + 10 * DAY_S;
      for (const p of plans) {
        if (p.cohort !== 'storm') continue;
        const v = azure.state.vaults.get(p.vault)!.secrets.get(p.name)!.at(-1)!;
        v.exp = exp;
      }
    },
  };
}
