import { randomUUID } from 'node:crypto';
import { BlobServiceClient } from '@azure/storage-blob';
import { BlobLeaseLocks, lockBlobName } from '../../shared/clients/lock';
import { BlobIssuance, issuancePrefix, proves, targetKey } from '../../shared/issuance';

const service = () => BlobServiceClient.fromConnectionString(process.env.AZURITE_CONNECTION_STRING as string);

describe('the issuance record (Azurite)', () => {
  const container = service().getContainerClient(`issuance-test-${randomUUID().slice(0, 8)}`);
  const issuance = new BlobIssuance(container);
  afterAll(() => container.deleteIfExists());

  test('begin → issued → stored, listed oldest first; only live records prove a credential', async () => {
    const target = targetKey('entra-app-secret', { appId: 'AAAA0000-0000-4000-8000-000000000001' });
    const start = { vault: 'KV-One', secret: 'App-Secret', kind: 'entra-app-secret', target };
    const first = await issuance.begin({
      ...start,
      rotationId: randomUUID(),
      at: new Date('2026-01-01T00:00:00Z'),
    });
    expect(first).toMatchObject({ vault: 'kv-one', secret: 'app-secret', state: 'requested' });
    const issued = await issuance.update(first, {
      state: 'issued',
      credentialId: 'k1',
      at: new Date('2026-01-01T00:00:01Z'),
    });
    await issuance.update(issued, { state: 'stored', version: 'v2', at: new Date('2026-01-01T00:00:02Z') });
    const second = await issuance.begin({
      ...start,
      rotationId: randomUUID(),
      at: new Date('2026-02-01T00:00:00Z'),
    });
    await issuance.update(second, {
      state: 'revoked',
      credentialId: 'k2',
      at: new Date('2026-02-01T00:00:01Z'),
    });
    const adopted = await issuance.adopt(
      { ...start, rotationId: randomUUID(), at: new Date('2025-12-01T00:00:00Z') },
      'k0',
      'v1',
    );

    const records = await issuance.list('kv-one', 'app-secret');
    expect(records.map((r) => [r.state, r.credentialId])).toEqual([
      ['adopted', 'k0'],
      ['stored', 'k1'],
      ['revoked', 'k2'],
    ]);
    expect(proves(records, 'entra-app-secret', target, 'k1')?.version).toBe('v2');
    expect(proves(records, 'entra-app-secret', target, 'k0')?.rotationId).toBe(adopted.rotationId);
    // Revoked, another target or another kind proves nothing.
    expect(proves(records, 'entra-app-secret', target, 'k2')).toBeUndefined();
    expect(
      proves(records, 'entra-app-secret', targetKey('entra-app-secret', { appId: 'x' }), 'k1'),
    ).toBeUndefined();
    expect(proves(records, 'databricks-pat', target, 'k1')).toBeUndefined();
    // Another secret's folder is separate, even one whose name starts the same.
    expect(await issuance.list('kv-one', 'app')).toEqual([]);
    // A record is created once.
    await expect(
      issuance.begin({ ...start, rotationId: first.rotationId, at: new Date() }),
    ).rejects.toThrow();
  });

  test('names that are not Key Vault names never become blob paths', async () => {
    for (const [vault, secret] of [
      ['kv-one', '../x'],
      ['kv/one', 'x'],
      ['kv-one', ''],
      ['kv-one', 'a%2Fb'],
    ])
      expect(() => issuancePrefix(vault as string, secret as string)).toThrow(/not a Key Vault/);
    await expect(
      issuance.begin({
        vault: 'kv',
        secret: 'x',
        kind: 'k',
        target: 't',
        rotationId: '../../etc',
        at: new Date(),
      }),
    ).rejects.toThrow(/not a rotation id/);
  });

  test('targetKey is stable across field order and case', () => {
    expect(targetKey('databricks-sp-secret', { spId: '1', accountId: 'ABC' })).toBe(
      targetKey('databricks-sp-secret', { accountId: 'abc', spId: '1' }),
    );
    expect(targetKey('databricks-pat', { origin: 'https://h', ownerAppId: undefined })).toBe(
      targetKey('databricks-pat', { origin: 'https://h' }),
    );
  });
});

describe('lock keys cannot leave their container (attack 9)', () => {
  test.each(['../../probe/x', 'kv/../../x', 'kv/a/b', 'kv/%2E%2E', '/x', 'kv/'])(
    '%s is refused',
    async (key) => {
      expect(() => lockBlobName(key)).toThrow(/not a \{vault\}\/\{secret\} lock key/);
      const locks = new BlobLeaseLocks(service().getContainerClient('locks'));
      await expect(locks.acquire(key)).rejects.toThrow(/lock key/);
    },
  );

  test('a valid key is lower-cased: one lock per secret whatever the casing', () => {
    expect(lockBlobName('KV-One/Db-Token')).toBe('kv-one/db-token');
  });
});
