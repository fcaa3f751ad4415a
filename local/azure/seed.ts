import type { LocalAzure } from './index';
import {
  AppRegistration,
  newHexToken,
  newId,
  newNumericId,
  resolvePrincipal,
  Seed,
  SecretVersion,
  sha256,
  toUnix,
  WorkspacePrincipal,
} from './state';
import { HttpError } from './http';
import { newSpSecretId } from './services/databricks/sp-secrets';
import { newFederationPolicy } from './services/federation';

export interface SeedResult {
  tenantId: string;
  authorityHost: string;
  identityEndpoint: string;
  graphUrl: string;
  accountsUrl: string;
  managedIdentities: { name: string; clientId: string; principalId: string }[];
  apps: {
    displayName: string;
    appId: string;
    objectId: string;
    servicePrincipalId: string;
    keyIds: string[];
  }[];
  vaults: Record<string, string>;
  workspaces: Record<
    string,
    { url: string; workspaceId: string; principals: Record<string, string>; tokenIds: string[] }
  >;
  accounts: Record<string, { servicePrincipals: Record<string, { id: string; secretIds: string[] }> }>;
}

const seedError = (message: string) => new HttpError(400, { error: { code: 'BadSeed', message } });

const iso = (unixSeconds: number) => new Date(unixSeconds * 1000).toISOString();
const DAY = 24 * 3600;

/** Adds the seed to the tenant (seeds are additive); cross-references are checked, not guessed. */
export async function applySeed(azure: LocalAzure, seed: Seed): Promise<SeedResult> {
  const state = azure.state;
  const now = azure.clock.nowSeconds();

  for (const mi of seed.managedIdentities ?? []) {
    if (state.managedIdentities.some((m) => m.name === mi.name))
      throw seedError(`managed identity ${mi.name} already exists`);
    state.managedIdentities.push({
      name: mi.name,
      appId: mi.clientId ?? newId(),
      objectId: mi.principalId ?? newId(),
      displayName: mi.name,
      kind: 'managedIdentity',
      graphRoles: new Set(mi.graphRoles ?? []),
    });
  }

  const newApps: AppRegistration[] = [];
  for (const app of seed.apps ?? []) {
    const appId = app.appId ?? newId();
    if (state.apps.some((a) => a.appId === appId)) throw seedError(`app ${appId} already exists`);
    const created: AppRegistration = {
      objectId: app.objectId ?? newId(),
      appId,
      displayName: app.displayName,
      servicePrincipal: { objectId: newId(), appId, displayName: app.displayName, kind: 'application' },
      owners: new Set(),
      graphRoles: new Set(app.graphRoles ?? []),
      passwordCredentials: (app.secrets ?? []).map((s) => ({
        keyId: s.keyId ?? newId(),
        displayName: s.displayName ?? null,
        hint: s.value.slice(0, 3),
        secretHash: sha256(s.value),
        startDateTime: iso(now),
        endDateTime: iso(s.endDateTime === undefined ? now + 365 * DAY : toUnix(s.endDateTime)),
      })),
      federatedCredentials: app.federatedCredentials ?? [],
      tags: app.tags ?? [],
      signInAudience: app.signInAudience ?? 'AzureADMyOrg',
    };
    state.apps.push(created);
    newApps.push(created);
  }
  // Owners are resolved after all apps exist, so apps may own each other.
  (seed.apps ?? []).forEach((app, i) => {
    for (const ref of app.owners ?? []) {
      const owner = resolvePrincipal(state, ref);
      if (!owner) throw seedError(`owner ${ref} of app ${app.displayName} is not a known principal`);
      newApps[i]?.owners.add(owner.objectId);
    }
  });

  for (const user of seed.users ?? []) {
    state.users.push({ id: user.id ?? newId(), userPrincipalName: user.userPrincipalName });
  }

  for (const v of seed.vaults ?? []) {
    const vault = await azure.addVault(v.name);
    for (const ra of v.roleAssignments ?? []) {
      const principal = resolvePrincipal(state, ra.principal);
      if (!principal)
        throw seedError(`role assignment on vault ${v.name}: ${ra.principal} is not a known principal`);
      const roles = vault.roles.get(principal.objectId) ?? new Set();
      roles.add(ra.role);
      vault.roles.set(principal.objectId, roles);
    }
    for (const s of v.secrets ?? []) {
      if (Object.keys(s.tags ?? {}).length > 15) throw seedError(`secret ${s.name}: more than 15 tags`);
      const version: SecretVersion = {
        version: newHexToken(16),
        value: s.value,
        contentType: s.contentType,
        enabled: s.enabled ?? true,
        nbf: s.nbf === undefined ? undefined : toUnix(s.nbf),
        exp: s.exp === undefined ? undefined : toUnix(s.exp),
        created: now,
        updated: now,
        tags: s.tags ?? {},
        emitted: { nearExpiry: false, expired: false },
      };
      vault.secrets.set(s.name, [...(vault.secrets.get(s.name) ?? []), version]);
    }
  }

  for (const a of seed.accounts ?? []) {
    const account = state.accounts.get(a.accountId) ?? {
      accountId: a.accountId,
      admins: new Set<string>(),
      servicePrincipals: [],
    };
    for (const admin of a.admins ?? []) account.admins.add(admin);
    for (const sp of a.servicePrincipals ?? []) {
      const spId = sp.id ?? newNumericId();
      account.servicePrincipals.push({
        id: spId,
        applicationId: sp.applicationId,
        displayName: sp.displayName ?? sp.applicationId,
        secrets: (sp.secrets ?? []).map((s) => {
          const expire = s.expireTime === undefined ? now + 730 * DAY : toUnix(s.expireTime);
          return {
            id: newSpSecretId(),
            secretHash: sha256(s.value),
            createTime: iso(now),
            updateTime: iso(now),
            expireTime: iso(expire),
            status: 'ACTIVE' as const,
            scopes: s.scopes,
          };
        }),
        federationPolicies: (sp.federationPolicies ?? []).map((p) =>
          newFederationPolicy(
            a.accountId,
            spId,
            {
              policy_id: p.policyId,
              description: p.description,
              oidc_policy: {
                issuer: p.issuer,
                subject: p.subject,
                audiences: p.audiences,
                subject_claim: p.subjectClaim,
                jwks_json: p.jwksJson,
                jwks_uri: p.jwksUri,
              },
            },
            now * 1000,
          ),
        ),
      });
    }
    state.accounts.set(a.accountId, account);
  }

  for (const w of seed.workspaces ?? []) {
    if (w.accountId && !state.accounts.has(w.accountId)) {
      throw seedError(`workspace ${w.name}: account ${w.accountId} is not seeded`);
    }
    const principals: WorkspacePrincipal[] = (w.principals ?? []).map((p) => ({
      id: newNumericId(),
      userName: p.userName,
      applicationId: p.applicationId,
      displayName: p.displayName ?? p.userName ?? p.applicationId ?? 'principal',
      admin: p.admin ?? false,
      ...(p.active === false ? { active: false } : {}),
    }));
    const ws = await azure.addWorkspace({
      name: w.name,
      workspaceId: w.workspaceId ?? newNumericId(),
      accountId: w.accountId,
      maxTokenLifetimeSeconds: w.maxTokenLifetimeDays ? w.maxTokenLifetimeDays * DAY : undefined,
      maxTokensPerUser: w.maxTokensPerUser,
      principals,
      tokens: [],
    });
    // Seeding an existing workspace again adds the principals it does not have yet.
    const known = (p: WorkspacePrincipal) =>
      ws.principals.some(
        (q) =>
          (p.userName && q.userName === p.userName) ||
          (p.applicationId && q.applicationId === p.applicationId),
      );
    for (const p of principals) if (!known(p)) ws.principals.push(p);
    for (const t of w.tokens ?? []) {
      const owner = ws.principals.find((p) => p.userName === t.owner || p.applicationId === t.owner);
      if (!owner) throw seedError(`workspace ${w.name}: token owner ${t.owner} is not a workspace principal`);
      ws.tokens.push({
        tokenId: sha256(t.value),
        valueHash: sha256(t.value),
        ownerId: owner.id,
        creationTime: now * 1000,
        expiryTime: t.expiryTime === undefined ? -1 : toUnix(t.expiryTime) * 1000,
        comment: t.comment ?? '',
        scopes: t.scopes,
        autoscopeEnabled: t.autoscopeEnabled ?? false,
        inferredScopes: [],
      });
    }
  }

  return describe(azure);
}

/** The tenant's addresses and generated ids, for clients and tests. */
export function describe(azure: LocalAzure): SeedResult {
  const state = azure.state;
  return {
    tenantId: state.tenantId,
    authorityHost: azure.authorityHost,
    identityEndpoint: azure.identityEndpoint,
    graphUrl: azure.graphUrl,
    accountsUrl: azure.accountsUrl,
    managedIdentities: state.managedIdentities.map((m) => ({
      name: m.name,
      clientId: m.appId,
      principalId: m.objectId,
    })),
    apps: state.apps.map((a) => ({
      displayName: a.displayName,
      appId: a.appId,
      objectId: a.objectId,
      servicePrincipalId: a.servicePrincipal.objectId,
      keyIds: a.passwordCredentials.map((p) => p.keyId),
    })),
    vaults: Object.fromEntries([...state.vaults.values()].map((v) => [v.name, v.url])),
    workspaces: Object.fromEntries(
      [...state.workspaces.values()].map((w) => [
        w.name,
        {
          url: w.url,
          workspaceId: w.workspaceId,
          principals: Object.fromEntries(
            w.principals.map((p) => [p.userName ?? p.applicationId ?? p.id, p.id]),
          ),
          tokenIds: w.tokens.map((t) => t.tokenId),
        },
      ]),
    ),
    accounts: Object.fromEntries(
      [...state.accounts.values()].map((a) => [
        a.accountId,
        {
          servicePrincipals: Object.fromEntries(
            a.servicePrincipals.map((sp) => [
              sp.applicationId,
              { id: sp.id, secretIds: sp.secrets.map((s) => s.id) },
            ]),
          ),
        },
      ]),
    ),
  };
}
