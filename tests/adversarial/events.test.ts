/**
 * The Event Grid edge, posted to as a hostile or sloppy producer would (attacks 9–11): the real
 * handler, a real InvocationContext, the demo tenant in local Azure and the shared Azurite.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { InvocationContext, type EventGridEvent } from '@azure/functions';
import { BlobServiceClient } from '@azure/storage-blob';
import { DEMO_VAULTS, seedDemo, seedDemoPat, type Demo } from '../../local/demo';
import { notificationQueue } from '../../functions/common';
import { onKeyVaultEvent } from '../../functions/onKeyVaultEvent';
import { STORAGE } from '../../shared/constants';
import type { NotificationMessage } from '../../shared/notifications/routing';
import { useLocalAzure } from '../support/localAzure';

const azure = useLocalAzure();
let demo: Demo;
const savedEnv: Record<string, string | undefined> = {};

beforeAll(async () => {
  demo = await seedDemo(azure(), { storage: process.env.AZURITE_CONNECTION_STRING as string });
  for (const [key, value] of Object.entries(demo.env)) {
    savedEnv[key] = process.env[key];
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  }
}, 60_000);

afterAll(() => {
  for (const [key, value] of Object.entries(savedEnv)) {
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  }
});

async function deliver(
  event: unknown,
): Promise<{ notices: NotificationMessage[]; logs: string[]; error?: unknown }> {
  const logs: string[] = [];
  const context = new InvocationContext({
    invocationId: randomUUID(),
    functionName: 'onKeyVaultEvent',
    logHandler: (_level, ...args) => logs.push(args.map(String).join(' ')),
  });
  let error: unknown;
  try {
    await onKeyVaultEvent(event as EventGridEvent, context);
  } catch (e) {
    error = e;
  }
  return {
    notices: (context.extraOutputs.get(notificationQueue) as NotificationMessage[]) ?? [],
    logs,
    error,
  };
}

function keyVaultEvent(vault: string, name: string, options: { type?: string; vaultName?: string } = {}) {
  const vaultName = options.vaultName ?? vault;
  return {
    id: randomUUID(),
    topic: `/subscriptions/0/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/${vaultName}`,
    subject: name,
    eventType: options.type ?? 'Microsoft.KeyVault.SecretNearExpiry',
    eventTime: new Date().toISOString(),
    data: {
      Id: `${demo.vaultUrls[vault]}/secrets/${name}/${randomBytes(16).toString('hex')}`,
      VaultName: vaultName,
      ObjectType: 'Secret',
      ObjectName: name,
      Version: randomBytes(16).toString('hex'),
    },
    dataVersion: '1',
    metadataVersion: '1',
  };
}

const blobService = () =>
  BlobServiceClient.fromConnectionString(process.env.AZURITE_CONNECTION_STRING as string);

async function allBlobs(): Promise<string[]> {
  const names: string[] = [];
  for await (const c of blobService().listContainers())
    for await (const b of blobService().getContainerClient(c.name).listBlobsFlat())
      names.push(`${c.name}/${b.name}`);
  return names.sort();
}

describe('attack 9: names are checked before any lock, read or notification', () => {
  test('a path in ObjectName creates no blob anywhere and notifies nobody; the log names the event', async () => {
    const evil = keyVaultEvent(DEMO_VAULTS.dataPlatform, 'x');
    const forged = {
      ...evil,
      subject: '../../probe/x',
      data: { ...evil.data, ObjectName: '../../probe/x', Id: undefined },
    };
    const run = await deliver(forged);
    expect(run.error).toBeUndefined();
    expect(run.notices).toEqual([]);
    expect(run.logs.join('\n')).toMatch(
      new RegExp(`malformed event ${forged.id}: .*is not a Key Vault name`),
    );
    // Azurite is shared with other test files, so look for the probe itself rather than compare lists.
    expect((await allBlobs()).filter((n) => /probe/.test(n))).toEqual([]);
  });

  test('100 events with made-up (valid) names: no notification, no lock blob left behind', async () => {
    const locks = async () => {
      const names: string[] = [];
      for await (const b of blobService().getContainerClient(STORAGE.lockContainer).listBlobsFlat())
        names.push(b.name);
      return names.filter((n) => n.includes('made-up-'));
    };
    let notices = 0;
    for (let i = 0; i < 100; i++) {
      const run = await deliver(
        keyVaultEvent(DEMO_VAULTS.dataPlatform, `made-up-${i}-${randomBytes(3).toString('hex')}`),
      );
      expect(run.error).toBeUndefined();
      notices += run.notices.length;
    }
    expect(notices).toBe(0);
    expect(await locks()).toEqual([]);
  }, 120_000);

  test('a secret that is not opted in notifies nobody', async () => {
    const name = `plain-${randomBytes(3).toString('hex')}`;
    await azure().seed({
      vaults: [{ name: DEMO_VAULTS.dataPlatform, secrets: [{ name, value: 'v'.repeat(20) }] }],
    });
    expect((await deliver(keyVaultEvent(DEMO_VAULTS.dataPlatform, name))).notices).toEqual([]);
  });
});

describe('attack 10: vault fields must agree', () => {
  test('an event saying it comes from not-ours with an Id on a configured vault is rejected and logged with its id', async () => {
    const name = `fv-${randomBytes(3).toString('hex')}`;
    await seedDemoPat(azure(), demo, { vault: DEMO_VAULTS.dataPlatform, name, expiresInDays: 20 });
    const versions = () => azure().state.vaults.get(DEMO_VAULTS.dataPlatform)!.secrets.get(name)!.length;
    const before = versions();
    const forged = keyVaultEvent(DEMO_VAULTS.dataPlatform, name, { vaultName: 'not-ours' });
    const run = await deliver(forged);
    expect(run.logs.join('\n')).toMatch(
      new RegExp(`rejected event ${forged.id}: data.VaultName names vault "not-ours"`),
    );
    expect(run.notices).toEqual([]);
    expect(versions()).toBe(before);
  });
});

describe('attack 11: a SecretExpired for a dead PAT does not re-alert on every redelivery', () => {
  test('the first delivery tells the owners; redeliveries the same day tell nobody', async () => {
    const name = `dead-${randomBytes(3).toString('hex')}`;
    const { tokenId } = await seedDemoPat(azure(), demo, {
      vault: DEMO_VAULTS.dataPlatform,
      name,
      expiresInDays: 20,
    });
    // The PAT was revoked by someone: it cannot create its successor.
    for (const ws of azure().state.workspaces.values()) {
      const i = ws.tokens.findIndex((t) => t.tokenId === tokenId);
      if (i >= 0) ws.tokens.splice(i, 1);
    }
    const expired = () =>
      keyVaultEvent(DEMO_VAULTS.dataPlatform, name, { type: 'Microsoft.KeyVault.SecretExpired' });
    const first = await deliver(expired());
    expect(first.notices.map((m) => m.notification.kind)).toContain('rotation-failed');
    for (let i = 0; i < 5; i++) expect((await deliver(expired())).notices).toEqual([]);
  }, 60_000);
});
