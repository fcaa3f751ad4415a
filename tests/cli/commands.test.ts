/**
 * The operator CLI against the demo tenant in local Azure: every command, its exit codes, --json, and
 * that no secret value ever reaches its output. Read-only commands run first; rotate and onboard last.
 */
import { BlobServiceClient } from '@azure/storage-blob';
import { QueueServiceClient } from '@azure/storage-queue';
import { STORAGE, TAGS } from '../../shared/constants';
import { DEMO_SECRETS, DEMO_VAULTS, DEMO_WORKSPACE } from '../../local/demo';
import { useCliDemo } from './support';

const { azure, demo, run, storage } = useCliDemo();

const current = (vault: string, secret: string) =>
  azure().state.vaults.get(vault)?.secrets.get(secret)?.at(-1);
const json = <T = Record<string, unknown>>(out: string) => JSON.parse(out) as T;
/** Every secret value in the tenant: none may appear in any output. */
const values = () =>
  [...azure().state.vaults.values()].flatMap((v) =>
    [...v.secrets.values()].flatMap((vs) => vs.map((x) => x.value)),
  );
const expectNoValues = (text: string) => {
  for (const v of values()) expect(text).not.toContain(v);
};

interface Credential {
  provider: string;
  id: string;
  heldBy?: string;
  flags: string[];
  advice: string[];
}

describe('inventory', () => {
  test('lists every secret with its state, and the providers’ credentials with flags and advice', async () => {
    const r = await run('inventory');
    expect(r.code).toBe(1); // flags are findings
    expectNoValues(r.out);
    expect(r.out).toMatch(/adf-databricks-pat\s+databricks-pat\s+\S+\s+in 20 d\s+due/);
    expect(r.out).toMatch(/sql-admin-password\s+-\s+\S+\s+in 10 d\s+not opted in/);
    expect(r.out).toMatch(/billing-app-secret .*invalid tags — rotation-validity-days: "ninety"/);
    expect(r.out).toContain('could be retired: federation is configured');
    expect(r.out).toContain(`move it to a service principal`);
    expect(r.out).toContain(TAGS.databricksPatOwner);

    const data = json<{ credentials: Credential[] }>((await run('inventory', '--json')).out);
    const byHolder = (h: string) => data.credentials.find((c) => c.heldBy === h);
    const pat = byHolder(`${DEMO_SECRETS.pat.vault}/${DEMO_SECRETS.pat.name}`)!;
    expect(pat.flags).toEqual(['owned by a person']);
    expect(pat.id).toBe(demo().credentialIds.pat);
    const forgotten = data.credentials.find((c) => c.provider === 'databricks-pat' && !c.heldBy)!;
    expect(forgotten.flags).toEqual(['never expires', 'no vault references it']);
    const sp = byHolder(`${DEMO_SECRETS.sp.vault}/${DEMO_SECRETS.sp.name}`)!;
    expect(sp).toMatchObject({ provider: 'databricks-sp', id: demo().credentialIds.sp, flags: [] });
    expect(sp.advice).toEqual([
      'could be retired: federation is configured (policy aks-etl: https://oidc.prod-aks.azure.com/00000000-0000-4000-8000-00000000aks1/ system:serviceaccount:etl:etl-pipeline)',
    ]);
    // The reporting app has a federated credential (GitHub Actions); the billing app has none.
    expect(byHolder(`${DEMO_SECRETS.app.vault}/${DEMO_SECRETS.app.name}`)!.advice).toEqual([
      'could be retired: federation is configured (federated credential: https://token.actions.githubusercontent.com repo:contoso/reporting:environment:production)',
    ]);
    expect(byHolder(`${DEMO_SECRETS.badTag.vault}/${DEMO_SECRETS.badTag.name}`)!.advice).toEqual([]);
  });

  test('flags a PAT whose owner is inactive, and an app secret no vault references', async () => {
    const exp = Math.floor(Date.now() / 1000) + 40 * 86400;
    const value = `dapi${'ab'.repeat(16)}`;
    const seeded = await azure().seed({
      workspaces: [
        {
          name: DEMO_WORKSPACE,
          principals: [{ userName: 'leaver@contoso.com', active: false }],
          tokens: [{ owner: 'leaver@contoso.com', value, expiryTime: exp }],
        },
      ],
    });
    const tokenId = seeded.workspaces[DEMO_WORKSPACE]!.tokenIds.at(-1)!;
    await azure().seed({
      vaults: [
        {
          name: DEMO_VAULTS.dataPlatform,
          secrets: [
            {
              name: 'leaver-pat',
              value,
              exp,
              tags: {
                'rotation-kind': 'databricks-pat',
                'databricks-host': new URL(demo().workspaceUrl).host,
                'credential-id': tokenId,
              },
            },
          ],
        },
      ],
    });
    const app = azure().state.apps.find((a) => a.appId === demo().appIds.billing)!;
    app.passwordCredentials.push({
      ...app.passwordCredentials[0]!,
      keyId: '0f0f0f0f-0000-4000-8000-000000000001',
    });

    const data = json<{ credentials: Credential[] }>((await run('inventory', '--json')).out);
    const leaver = data.credentials.find((c) => c.id === tokenId)!;
    expect(leaver.flags).toEqual(['owned by a person', 'owner leaver@contoso.com is inactive']);
    const stray = data.credentials.find((c) => c.id === '0f0f0f0f-0000-4000-8000-000000000001')!;
    expect(stray).toMatchObject({ provider: 'entra', flags: ['no vault references it'] });
    app.passwordCredentials.pop();
  });

  test('filters by vault, kind and expiry', async () => {
    const byVault = json<{ secrets: { vault: string }[]; credentials: Credential[] }>(
      (await run('inventory', '--vault', DEMO_VAULTS.apps, '--json')).out,
    );
    expect(new Set(byVault.secrets.map((s) => s.vault))).toEqual(new Set([DEMO_VAULTS.apps]));
    expect(byVault.credentials.every((c) => c.heldBy?.startsWith(`${DEMO_VAULTS.apps}/`))).toBe(true);

    const byKind = json<{ secrets: { kind: string }[]; credentials: Credential[] }>(
      (await run('inventory', '--kind', 'databricks-pat', '--json')).out,
    );
    expect(byKind.secrets.every((s) => s.kind === 'databricks-pat')).toBe(true);
    expect(byKind.credentials.every((c) => c.provider === 'databricks-pat')).toBe(true);

    const soon = json<{ secrets: { secret: string }[]; credentials: Credential[] }>(
      (await run('inventory', '--expiring-within', '15d', '--json')).out,
    );
    expect(soon.secrets.map((s) => s.secret)).toEqual([DEMO_SECRETS.notOptedIn.name]);
    expect(soon.credentials).toEqual([]);
  });

  test.each([
    [['inventory', '--kind', 'ssh-key']],
    [['inventory', '--expiring-within', 'soon']],
    [['inventory', '--vault', 'kv-nowhere']],
    [['inventory', '--bogus']],
    [['rotate']],
    [['rotate', 'not-a-ref']],
    [['onboard', `${DEMO_VAULTS.apps}/x`]],
    [['federation']],
    [['nonsense']],
  ])('usage error %j exits 2', async (argv) => {
    const r = await run(...argv);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/error|Usage/);
  });

  test('--help exits 0 for every command', async () => {
    for (const argv of [
      [],
      ['inventory'],
      ['plan'],
      ['rotate'],
      ['onboard'],
      ['doctor'],
      ['federation', 'check'],
    ]) {
      const r = await run(...argv, '--help');
      expect(r.code).toBe(0);
      expect(r.out).toContain('Usage: kv-rotator');
      if (argv.length) expect(r.out).toContain('--json');
    }
  });
});

describe('plan', () => {
  test("is the scanner's own plan, and writes nothing", async () => {
    const blobs = BlobServiceClient.fromConnectionString(storage()).getContainerClient(STORAGE.lockContainer);
    const versions = () =>
      [...azure().state.vaults.values()].map((v) => [...v.secrets.values()].map((s) => s.length));
    const before = versions();
    const r = await run('plan', '--json');
    const data = json<{
      work: { vault: string; secret: string; op: string; reason: string }[];
      notifications: { kind: string; secret: string }[];
    }>(r.out);
    expect(data.work.map((w) => `${w.op} ${w.vault}/${w.secret} (${w.reason})`).sort()).toEqual(
      [
        `rotate ${DEMO_SECRETS.app.vault}/${DEMO_SECRETS.app.name} (due)`,
        `rotate ${DEMO_SECRETS.pat.vault}/${DEMO_SECRETS.pat.name} (due)`,
        `rotate ${DEMO_SECRETS.sp.vault}/${DEMO_SECRETS.sp.name} (due)`,
      ].sort(),
    );
    expect(data.notifications.map((n) => `${n.kind} ${n.secret}`).sort()).toEqual(
      [`expiring ${DEMO_SECRETS.notOptedIn.name}`, `rotation-failed ${DEMO_SECRETS.badTag.name}`].sort(),
    );
    expect(r.code).toBe(1); // the bad tag is a finding
    expect(versions()).toEqual(before);
    expect(await blobs.exists()).toBe(false);
    const text = await run('plan');
    expect(text.out).toMatch(/kv-apps\s+reporting-app-secret\s+rotate\s+due/);
  });
});

describe('doctor', () => {
  test('each line is ok or a problem with its fix', async () => {
    const r = await run('doctor');
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/✓ settings app settings\s+valid: 2 vault\(s\), 1 binding\(s\)/);
    expect(r.out).toMatch(/✓ vault kv-apps\s+the identity can list it/);
    expect(r.out).toMatch(
      /✓ graph permissions\s+the service's Graph token carries Application.ReadWrite.OwnedBy/,
    );
    expect(r.out).toMatch(new RegExp(`✓ graph app ${demo().appIds.reporting}\\s+the service owns it`));
    expect(r.out).toMatch(/✓ databricks sp \S+\s+the service's identity may manage its OAuth secrets/);
    expect(r.out).toMatch(/✗ events kv-apps\s+no Event Grid subscription[^\n]*\n\s+fix: /);
    expect(r.out).toMatch(/✓ queues rotation-requests-poison\s+0 message/);
  });

  test('an event subscription and a poisoned work item change their lines', async () => {
    const sub = azure().events.subscribe({
      url: 'https://localhost:1/runtime/webhooks/EventGrid',
      eventTypes: ['Microsoft.KeyVault.SecretNearExpiry', 'Microsoft.KeyVault.SecretExpired'],
    });
    const poison = QueueServiceClient.fromConnectionString(storage()).getQueueClient(
      `${STORAGE.rotationQueue}-poison`,
    );
    await poison.createIfNotExists();
    const item = { op: 'rotate', vault: DEMO_SECRETS.sp.vault, secret: DEMO_SECRETS.sp.name, reason: 'due' };
    await poison.sendMessage(Buffer.from(JSON.stringify(item)).toString('base64'));
    try {
      const data = json<{ checks: { area: string; subject: string; ok: boolean; fix?: string }[] }>(
        (await run('doctor', '--json')).out,
      );
      expect(data.checks.filter((c) => c.area === 'events').every((c) => c.ok)).toBe(true);
      const q = data.checks.find((c) => c.subject === `${STORAGE.rotationQueue}-poison`)!;
      expect(q).toMatchObject({ ok: false });
      expect(q.fix).toContain('kv-rotator rotate');
      const inv = json<{ secrets: { secret: string; lastFailure?: string }[] }>(
        (await run('inventory', '--json')).out,
      );
      expect(inv.secrets.find((s) => s.secret === DEMO_SECRETS.sp.name)!.lastFailure).toMatch(
        /^rotate gave up after retries/,
      );
    } finally {
      azure().events.unsubscribe(sub);
      await poison.clearMessages();
    }
  });

  test('a vault the identity cannot list is a problem with its fix', async () => {
    const vault = azure().state.vaults.get(DEMO_VAULTS.apps)!;
    const saved = new Map(vault.roles);
    vault.roles.clear();
    try {
      const data = json<{
        checks: { area: string; subject: string; ok: boolean; detail: string; fix?: string }[];
      }>((await run('doctor', '--json')).out);
      const line = data.checks.find((c) => c.area === 'vault' && c.subject === DEMO_VAULTS.apps && !c.ok)!;
      expect(line.detail).toMatch(/cannot list secrets/);
      expect(line.fix).toContain('Key Vault Secrets Officer');
    } finally {
      for (const [k, v] of saved) vault.roles.set(k, v);
    }
  });
});

describe('onboard', () => {
  const ref = `${DEMO_SECRETS.notOptedIn.vault}/${DEMO_SECRETS.notOptedIn.name}`;
  test('refuses tags the service would report as findings, and changes nothing', async () => {
    const before = { ...current(DEMO_SECRETS.notOptedIn.vault, DEMO_SECRETS.notOptedIn.name)!.tags };
    const r = await run(
      'onboard',
      ref,
      '--kind',
      'databricks-sp-secret',
      '--account-id',
      demo().accountId,
      '--sp-id',
      demo().spId,
      '--validity-days',
      'ninety',
    );
    expect(r.code).toBe(1);
    expect(r.out).toContain('--validity-days: "ninety": expected a whole number');
    const missing = await run('onboard', ref, '--kind', 'databricks-pat');
    expect(missing.code).toBe(1);
    expect(missing.out).toContain('--databricks-host: required for databricks-pat');
    expect(current(DEMO_SECRETS.notOptedIn.vault, DEMO_SECRETS.notOptedIn.name)!.tags).toEqual(before);
  });

  test('writes the tags and prints the ROTATION_BINDINGS entry the admin must add', async () => {
    const r = await run(
      'onboard',
      ref,
      '--kind',
      'databricks-sp-secret',
      '--account-id',
      demo().accountId,
      '--sp-id',
      demo().spId,
      '--credential-id',
      demo().credentialIds.sp!,
    );
    expect(r.code).toBe(0);
    expectNoValues(r.out);
    expect(r.out).toContain(
      `add to the function app's ROTATION_BINDINGS (comma-separated): ${ref}=databricks-sp:${demo().accountId}/${demo().spId}`,
    );
    expect(current(DEMO_SECRETS.notOptedIn.vault, DEMO_SECRETS.notOptedIn.name)!.tags).toEqual({
      owner: 'dba-team',
      'rotation-kind': 'databricks-sp-secret',
      'databricks-account-id': demo().accountId,
      'databricks-sp-id': demo().spId,
      'credential-id': demo().credentialIds.sp,
    });
  });

  test('an Entra app: the binding entry or the app tag, and a secret already bound says so', async () => {
    const dry = await run(
      'onboard',
      `${DEMO_VAULTS.apps}/${DEMO_SECRETS.badTag.name}`,
      '--kind',
      'entra-app-secret',
      '--app-id',
      demo().appIds.billing,
      '--validity-days',
      '90',
      '--dry-run',
    );
    expect(dry.code).toBe(0);
    expect(dry.out).toContain('dry run');
    expect(current(DEMO_VAULTS.apps, DEMO_SECRETS.badTag.name)!.tags['rotation-validity-days']).toBe(
      'ninety',
    );
    // The billing app carries its own binding tag (kv-rotator:kv-apps/billing-app-secret).
    expect(dry.out).toContain('is already bound to');
    const other = await run(
      'onboard',
      `${DEMO_VAULTS.apps}/${DEMO_SECRETS.app.name}`,
      '--kind',
      'entra-app-secret',
      '--app-id',
      demo().appIds.billing,
      '--dry-run',
      '--json',
    );
    const data = json<{ admin: string[] }>(other.out);
    expect(data.admin).toContain(
      `add to the function app's ROTATION_BINDINGS (comma-separated): ${DEMO_VAULTS.apps}/${DEMO_SECRETS.app.name}=entra-app:${demo().appIds.billing}`,
    );
    expect(data.admin).toContain(
      `or tag the application itself (only its owners can): kv-rotator:${DEMO_VAULTS.apps}/${DEMO_SECRETS.app.name}`,
    );
  });
});

describe('rotate, revoke-previous, reconcile (local: the engine in this process)', () => {
  const { vault, name } = DEMO_SECRETS.app;
  test('--dry-run plans and changes nothing', async () => {
    const before = current(vault, name)!.version;
    const r = await run('rotate', `${vault}/${name}`, '--dry-run');
    expect(r.code).toBe(0);
    expect(r.out).toContain('dry run of rotate');
    expect(current(vault, name)!.version).toBe(before);
  });

  test('rotate names the new version and expiry, never the value', async () => {
    const r = await run('rotate', `${vault}/${name}`, '--json');
    expect(r.code).toBe(0);
    const now = current(vault, name)!;
    expect(json(r.out)).toMatchObject({
      status: 'rotated',
      how: 'engine',
      version: now.version,
      credentialId: now.tags[TAGS.credentialId],
      expiresOn: new Date(now.exp! * 1000).toISOString(),
    });
    expectNoValues(r.out);
    // Not due any more: skipped, exit 0; --force rotates again.
    const again = await run('rotate', `${vault}/${name}`);
    expect(again.code).toBe(0);
    expect(again.out).toContain('skipped');
    const forced = await run('rotate', `${vault}/${name}`, '--force');
    expect(forced.out).toMatch(
      /✓ kv-apps\/reporting-app-secret rotated by the engine in this process\n\s+new version\s+\w{32}/,
    );
    expectNoValues(forced.out);
  });

  test('revoke-previous waits for the grace period; reconcile finds no orphans', async () => {
    const r = await run('revoke-previous', `${vault}/${name}`);
    expect(r.code).toBe(0);
    expect(r.out).toContain('grace period');
    const c = await run('reconcile', `${vault}/${name}`);
    expect(c.code).toBe(0);
    // Nothing was interrupted, so the issuance record names nothing to reconcile.
    expect(c.out).toContain('reconcile skipped: no interrupted rotation in the issuance record');
  });

  test('a failure exits 1 and names the step', async () => {
    const r = await run('rotate', `${DEMO_SECRETS.badTag.vault}/${DEMO_SECRETS.badTag.name}`, '--force');
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/failed: policy: /);
    expect(await run('rotate', `${DEMO_VAULTS.apps}/does-not-exist`)).toMatchObject({ code: 1 });
    expect((await run('rotate', 'kv-elsewhere/x')).code).toBe(2);
  });
});
