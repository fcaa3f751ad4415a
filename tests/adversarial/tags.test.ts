/**
 * The attacker holds Key Vault Secrets Officer on its own configured vault and nothing else. Every
 * attack goes through the real engine against local Azure; each must be refused, the victim's
 * credentials must still authenticate at the provider, and no call that changes anything may reach
 * the victim's target (the emulator's per-route request counts).
 */
import { randomBytes } from 'node:crypto';
import { ClientSecretCredential } from '@azure/identity';
import { SecretClient } from '@azure/keyvault-secrets';
import { parseSettings } from '../../shared/config';
import { TAGS } from '../../shared/constants';
import type { Outcome } from '../../shared/rotation/engine';
import { useLocalAzure } from '../support/localAzure';
import { credentialWorks } from '../support/probes';
import { createEngine, DAY, SECRETS, seedTenant, type Tenant } from '../support/tenant';

const azure = useLocalAzure();

interface World {
  victim: Tenant;
  attackerVault: string;
  /** The attacker's own client: Secrets Officer on attackerVault only. */
  attacker: SecretClient;
  services: ReturnType<typeof createEngine>;
  keyIds: { app: string; sp: string; pat: string };
}

/** Request labels that change credentials at a provider. */
const MUTATING = /addPassword|removePassword|token\/create|token\/delete|DELETE|POST \/api\/2\.0\/accounts/;
const mutations = (): string[] =>
  Object.keys(azure().servers.counts.snapshot()).filter((l) => MUTATING.test(l) && !l.startsWith('keyvault'));

async function world(): Promise<World> {
  const victim = await seedTenant(azure(), { expiresInDays: 10 });
  const attackerVault = `kv-${randomBytes(3).toString('hex')}`;
  const attackerSecret = `att-${randomBytes(12).toString('hex')}`;
  const seeded = await azure().seed({
    apps: [{ displayName: `attacker-${attackerVault}`, secrets: [{ value: attackerSecret }] }],
  });
  const app = seeded.apps.find((a) => a.displayName === `attacker-${attackerVault}`)!;
  const vaults = await azure().seed({
    vaults: [
      { name: attackerVault, roleAssignments: [{ principal: app.appId, role: 'Key Vault Secrets Officer' }] },
    ],
  });
  const attackerUrl = vaults.vaults[attackerVault]!;
  // The service scans both vaults; the rotator's identity may read and write the attacker's vault too.
  const rotatorPrincipal = azure().state.managedIdentities.find(
    (m) => m.appId === victim.settings.AZURE_CLIENT_ID,
  )!;
  azure()
    .state.vaults.get(attackerVault)!
    .roles.set(rotatorPrincipal.objectId, new Set(['Key Vault Secrets Officer']));
  const settings = parseSettings({
    KEY_VAULT_URIS: `${victim.vaultName}=${victim.vaultUrl},${attackerVault}=${attackerUrl}`,
    AZURE_TENANT_ID: azure().state.tenantId,
    AZURE_CLIENT_ID: victim.settings.AZURE_CLIENT_ID,
    AZURE_AUTHORITY_HOST: azure().authorityHost,
    GRAPH_BASE_URL: azure().graphUrl,
    DATABRICKS_ACCOUNTS_HOST: azure().accountsUrl,
    DATABRICKS_ALLOWED_HOSTS: new URL(victim.workspaceUrl).host,
    ROTATION_BINDINGS: victim.settings.ROTATION_BINDINGS.map(
      (b) => `${b.vault}/${b.secret}=${b.target}`,
    ).join(','),
    AzureWebJobsStorage: process.env.AZURITE_CONNECTION_STRING,
  });
  const credential = new ClientSecretCredential(azure().state.tenantId, app.appId, attackerSecret, {
    authorityHost: azure().authorityHost,
    disableInstanceDiscovery: true,
  });
  const attacker = new SecretClient(attackerUrl, credential, { disableChallengeResourceVerification: true });
  credentials.set(attacker, credential);
  const tags = async (name: string) => (await victim.reader.getSecret(name)).properties.tags ?? {};
  const keyIds = {
    app: (await tags(SECRETS.app))[TAGS.credentialId]!,
    sp: (await tags(SECRETS.sp))[TAGS.credentialId]!,
    pat: (await tags(SECRETS.pat))[TAGS.credentialId]!,
  };
  return { victim, attackerVault, attacker, services: createEngine({ ...victim, settings }), keyIds };
}

const credentials = new WeakMap<SecretClient, ClientSecretCredential>();
const attackerCredential = (w: World) => credentials.get(w.attacker)!;

/** The victim's three credentials still authenticate at their providers. */
async function victimStillWorks(w: World): Promise<void> {
  for (const key of ['pat', 'sp', 'app'] as const)
    expect(await credentialWorks(w.victim, key, w.victim.initial[key])).toMatchObject({ works: true });
}

const FAR = () => new Date(azure().clock.now() + 300 * DAY);
const PAST = () => new Date(azure().clock.now() - DAY).toISOString();

function refused(o: Outcome): void {
  expect(['failed', 'skipped']).toContain(o.status);
}

describe('tags are claims: the attacker names the victim’s targets and credential ids', () => {
  test('the attacker is only a Secrets Officer of its own vault (emulated RBAC per identity)', async () => {
    const w = await world();
    const victimVault = new SecretClient(w.victim.vaultUrl, attackerCredential(w), {
      disableChallengeResourceVerification: true,
    });
    await expect(victimVault.setSecret('planted', 'x'.repeat(20))).rejects.toMatchObject({ statusCode: 403 });
    await expect(victimVault.getSecret(SECRETS.app)).rejects.toMatchObject({ statusCode: 403 });
    await expect(w.attacker.setSecret('own', 'y'.repeat(20))).resolves.toBeDefined();
  });

  test('attack 1: revoke-previous of another team’s live credential is refused for every kind', async () => {
    const w = await world();
    const before = mutations();
    const targets = {
      app: { [TAGS.kind]: 'entra-app-secret', [TAGS.entraAppId]: w.victim.appId },
      sp: {
        [TAGS.kind]: 'databricks-sp-secret',
        [TAGS.databricksAccountId]: w.victim.accountId,
        [TAGS.databricksSpId]: w.victim.spId,
      },
      pat: { [TAGS.kind]: 'databricks-pat', [TAGS.databricksHost]: new URL(w.victim.workspaceUrl).host },
    };
    for (const key of ['app', 'sp', 'pat'] as const) {
      const name = `steal-${key}`;
      await w.attacker.setSecret(name, `x-${randomBytes(16).toString('hex')}`, {
        expiresOn: FAR(),
        tags: {
          ...targets[key],
          [TAGS.previousCredentialId]: w.keyIds[key],
          [TAGS.revokePreviousAfter]: PAST(),
        },
      });
      const { outcome, notifications } = await w.services.engine.revokePrevious({
        vault: w.attackerVault,
        secret: name,
      });
      refused(outcome);
      expect(outcome).toMatchObject({ status: 'failed', step: 'revoke' });
      if (outcome.status === 'failed') expect(outcome.reason).toMatch(/not one this service issued/);
      // The attacker's own vault owners hear about it; the provider heard nothing.
      expect(notifications.map((n) => n.kind)).toEqual(['rotation-failed']);
    }
    expect(mutations()).toEqual(before);
    await victimStillWorks(w);
  });

  test('minting for another team’s Entra app or SP (not bound to the attacker’s vault) is refused at binding', async () => {
    const w = await world();
    const before = mutations();
    const targets = {
      app: { [TAGS.kind]: 'entra-app-secret', [TAGS.entraAppId]: w.victim.appId },
      sp: {
        [TAGS.kind]: 'databricks-sp-secret',
        [TAGS.databricksAccountId]: w.victim.accountId,
        [TAGS.databricksSpId]: w.victim.spId,
      },
    };
    for (const key of ['app', 'sp'] as const) {
      const name = `mint-${key}`;
      await w.attacker.setSecret(name, `x-${randomBytes(16).toString('hex')}`, {
        expiresOn: new Date(azure().clock.now() + DAY),
        tags: targets[key],
      });
      const { outcome } = await w.services.engine.rotate({ vault: w.attackerVault, secret: name });
      expect(outcome).toMatchObject({ status: 'failed', step: 'binding', transient: false });
    }
    expect(mutations()).toEqual(before);
    await victimStillWorks(w);
  });

  test('attack 2: a forged rotation-started and credential-id=anything revokes nothing (no time-window guess)', async () => {
    const w = await world();
    // The victim rotates its SP secret legitimately: the new one is in the victim's vault.
    const rotated = await w.services.engine.rotate({
      vault: w.victim.vaultName,
      secret: SECRETS.sp,
      force: true,
    });
    expect(rotated.outcome.status).toBe('rotated');
    const stored = (await w.victim.reader.getSecret(SECRETS.sp)).value!;
    const before = mutations();
    const name = 'forged-reconcile';
    await w.attacker.setSecret(name, `x-${randomBytes(16).toString('hex')}`, {
      expiresOn: FAR(),
      tags: {
        [TAGS.kind]: 'databricks-sp-secret',
        [TAGS.databricksAccountId]: w.victim.accountId,
        [TAGS.databricksSpId]: w.victim.spId,
        [TAGS.credentialId]: 'anything0',
        [TAGS.rotationStarted]: `5b0c6f1e-8a44-4a4c-9f0e-2f1c3a7d9e01@${new Date(azure().clock.now()).toISOString()}`,
      },
    });
    const { outcome } = await w.services.engine.reconcile({ vault: w.attackerVault, secret: name });
    expect(outcome).toMatchObject({
      status: 'skipped',
      reason: 'no interrupted rotation in the issuance record',
    });
    expect(mutations()).toEqual(before);
    expect(await credentialWorks(w.victim, 'sp', stored)).toMatchObject({ works: true });
  });

  test('attack 3: on a bound secret, previous-credential-id naming another credential of the same target is refused', async () => {
    const w = await world();
    // The victim's own secret, legitimately bound; the attacker (a team sharing the app) points the tag
    // at the other team's credential of the same app.
    const shared = `${w.victim.vaultName}/${SECRETS.app}`;
    expect(shared).toBeTruthy();
    const name = 'shared-app';
    await w.attacker.setSecret(name, `x-${randomBytes(16).toString('hex')}`, {
      expiresOn: FAR(),
      tags: {
        [TAGS.kind]: 'entra-app-secret',
        [TAGS.entraAppId]: w.victim.appId,
        [TAGS.previousCredentialId]: w.keyIds.app,
        [TAGS.revokePreviousAfter]: PAST(),
      },
    });
    // Bound to the attacker's vault as well (an app shared by two teams).
    const services = createEngine({
      ...w.victim,
      settings: {
        ...w.services.settings,
        ROTATION_BINDINGS: [
          ...w.services.settings.ROTATION_BINDINGS,
          { vault: w.attackerVault, secret: name, target: `entra-app:${w.victim.appId}` },
        ],
      },
    });
    const before = mutations();
    const { outcome } = await services.engine.revokePrevious({ vault: w.attackerVault, secret: name });
    expect(outcome).toMatchObject({ status: 'failed', step: 'revoke' });
    // A rotation of the attacker's secret does not adopt the victim's credential as its previous one.
    await w.attacker.updateSecretProperties(name, (await w.attacker.getSecret(name)).properties.version!, {
      tags: {
        [TAGS.kind]: 'entra-app-secret',
        [TAGS.entraAppId]: w.victim.appId,
        [TAGS.credentialId]: w.keyIds.app,
      },
    });
    const rotated = await services.engine.rotate({ vault: w.attackerVault, secret: name, force: true });
    expect(rotated.outcome).toMatchObject({ status: 'rotated', previousCredentialId: undefined });
    expect(mutations().filter((l) => /removePassword/.test(l))).toEqual(
      before.filter((l) => /removePassword/.test(l)),
    );
    await victimStillWorks(w);
  });

  test('attacks 4 and 5: a PAT-owner binding names the workspace; the rotator’s token never goes to a host from tags', async () => {
    const w = await world();
    const owner = w.victim.settings.AZURE_CLIENT_ID!;
    const devHost = new URL(w.victim.workspaceUrl).host;
    const bound = {
      ...w.services.settings,
      ROTATION_BINDINGS: [
        ...w.services.settings.ROTATION_BINDINGS,
        { vault: w.attackerVault, secret: 'owner-pat', target: `databricks-pat:${devHost}/${owner}` },
      ],
      DATABRICKS_ALLOWED_HOSTS: [devHost, new URL(azure().url).host],
    };
    const services = createEngine({ ...w.victim, settings: bound });
    const others = (c: Record<string, number>) =>
      Object.fromEntries(
        Object.entries(c).filter(([l]) => !l.startsWith('msi') && !l.startsWith('keyvault')),
      );
    for (const host of ['adb-9999999999999999.9.azuredatabricks.net', new URL(azure().url).host]) {
      await w.attacker.setSecret('owner-pat', `dapi${randomBytes(16).toString('hex')}`, {
        expiresOn: new Date(azure().clock.now() + DAY),
        tags: {
          [TAGS.kind]: 'databricks-pat',
          [TAGS.databricksHost]: host,
          [TAGS.databricksPatOwner]: owner,
        },
      });
      const before = azure().servers.counts.snapshot();
      const { outcome } = await services.engine.rotate({ vault: w.attackerVault, secret: 'owner-pat' });
      expect(outcome).toMatchObject({ status: 'failed', step: 'binding', transient: false });
      if (outcome.status === 'failed') expect(outcome.reason).toContain(`databricks-pat:${host}/${owner}`);
      // Refused before any provider call: besides reading the attacker's own secret (Key Vault, with the
      // service's identity), nothing was asked of anyone: no Entra token exchange, no workspace, no host.
      expect(others(azure().servers.counts.snapshot())).toEqual(others(before));
    }
    await victimStillWorks(w);
  });
});
