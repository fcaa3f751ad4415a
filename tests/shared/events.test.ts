import { eventVault, parseKeyVaultEvent } from '../../shared/events';
import { PermanentError } from '../../shared/errors';

const data = {
  Id: 'https://kv1.vault.azure.net/secrets/db-token/0123456789abcdef0123456789abcdef',
  VaultName: 'kv1',
  ObjectType: 'Secret',
  ObjectName: 'db-token',
  Version: '0123456789abcdef0123456789abcdef',
  NBF: null,
  EXP: 1_790_000_000,
};
const eventGrid = {
  id: 'e1',
  topic: '/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv1',
  subject: 'db-token',
  eventType: 'Microsoft.KeyVault.SecretNearExpiry',
  eventTime: '2026-11-23T00:00:00Z',
  data,
  dataVersion: '1',
  metadataVersion: '1',
};
const cloudEvent = {
  specversion: '1.0',
  id: 'e2',
  source: eventGrid.topic,
  subject: 'db-token',
  type: 'Microsoft.KeyVault.SecretNearExpiry',
  time: '2026-11-23T00:00:00Z',
  data,
};
const expected = {
  type: 'Microsoft.KeyVault.SecretNearExpiry',
  vaultName: 'kv1',
  secretName: 'db-token',
  version: data.Version,
  secretUrl: data.Id,
  vaultFields: { data: 'kv1', topic: 'kv1' },
  exp: new Date(1_790_000_000_000),
};

describe('parseKeyVaultEvent', () => {
  test('reads the Event Grid and the CloudEvents envelope alike', () => {
    expect(parseKeyVaultEvent(eventGrid)).toEqual({ id: 'e1', ...expected });
    expect(parseKeyVaultEvent(cloudEvent)).toEqual({ id: 'e2', ...expected });
  });

  test('reads camelCase data, a stray space in a key, and string or missing NBF/EXP', () => {
    const camel = {
      id: data.Id,
      vaultName: 'kv1',
      objectType: 'Secret',
      'objectName ': 'db-token',
      version: data.Version,
      exp: '1790000000',
    };
    expect(parseKeyVaultEvent({ ...eventGrid, data: camel })).toEqual({ id: 'e1', ...expected });
    const { EXP: _e, NBF: _n, ...noDates } = data;
    expect(parseKeyVaultEvent({ ...eventGrid, data: noDates }).exp).toBeUndefined();
    expect(parseKeyVaultEvent({ ...eventGrid, data: { ...data, EXP: '2026-12-01T00:00:00Z' } }).exp).toEqual(
      new Date('2026-12-01T00:00:00Z'),
    );
  });

  test('falls back to the topic and subject when data lacks the names', () => {
    const { VaultName: _v, ObjectName: _o, ...rest } = data;
    const e = parseKeyVaultEvent({ ...eventGrid, data: rest });
    expect([e.vaultName, e.secretName]).toEqual(['kv1', 'db-token']);
  });

  test.each([
    ['not an object', 'hello', /malformed event/],
    ['no id', { ...eventGrid, id: undefined }, /id/],
    ['no type', { ...eventGrid, eventType: undefined }, /neither eventType nor type/],
    ['no data', { ...eventGrid, data: undefined }, /no data object/],
    [
      'unreadable EXP',
      { ...eventGrid, data: { ...data, EXP: 'soon' } },
      /"soon" is neither unix seconds nor a date/,
    ],
    [
      'no vault anywhere',
      { ...eventGrid, topic: undefined, data: { ...data, VaultName: undefined } },
      /no vault name/,
    ],
    [
      'no secret name anywhere',
      { ...eventGrid, subject: undefined, data: { ...data, ObjectName: undefined } },
      /no secret name/,
    ],
    [
      'a key event posing as a secret event',
      { ...eventGrid, data: { ...data, ObjectType: 'Key' } },
      /ObjectType "Key"/,
    ],
  ])('%s is a clear PermanentError', (_name, input, message) => {
    expect(() => parseKeyVaultEvent(input)).toThrow(PermanentError);
    expect(() => parseKeyVaultEvent(input)).toThrow(message);
  });
});

describe('names are checked before anything uses them (attack 9)', () => {
  test.each([
    [
      'a path in ObjectName',
      { ...data, ObjectName: '../../probe/x' },
      /ObjectName \/ subject "..\/..\/probe\/x" is not a Key Vault name/,
    ],
    [
      'a slash in VaultName',
      { ...data, VaultName: 'kv1/../x' },
      /VaultName \/ topic .* is not a Key Vault name/,
    ],
    [
      'markdown in ObjectName',
      { ...data, ObjectName: '[log in](https://evil.example)' },
      /not a Key Vault name/,
    ],
    ['a name of 128 characters', { ...data, ObjectName: 'a'.repeat(128) }, /not a Key Vault name/],
    [
      'ObjectName and subject disagree',
      { ...data, ObjectName: 'other' },
      /ObjectName and the subject name different secrets/,
    ],
    [
      'data.Id names another secret',
      { ...data, Id: 'https://kv1.vault.azure.net/secrets/other/1' },
      /data.Id does not name secret db-token/,
    ],
  ])('%s is refused', (_name, d, message) => {
    expect(() => parseKeyVaultEvent({ ...eventGrid, data: d })).toThrow(message);
  });
});

describe('eventVault: every field naming the vault must agree (attack 10)', () => {
  const configured: Record<string, string> = { kv1: 'kv1', local: 'local' };
  const resolve = (name: string, url?: string) =>
    configured[name.toLowerCase()] ?? (url?.startsWith('https://localhost:8444/') ? 'local' : undefined);

  test('agreeing fields, or absent ones, name the vault', () => {
    expect(eventVault(parseKeyVaultEvent(eventGrid), resolve)).toEqual({ vault: 'kv1' });
    const { VaultName: _v, Id: _i, ...bare } = data;
    expect(eventVault(parseKeyVaultEvent({ ...eventGrid, data: bare }), resolve)).toEqual({ vault: 'kv1' });
    const local = {
      ...eventGrid,
      topic: '/subscriptions/s/providers/Microsoft.KeyVault/vaults/local',
      data: { ...data, VaultName: 'local', Id: 'https://localhost:8444/secrets/db-token/1' },
    };
    expect(eventVault(parseKeyVaultEvent(local), resolve)).toEqual({ vault: 'local' });
  });

  test('an event that says it comes from not-ours with an Id on a configured vault is rejected', () => {
    const forged = {
      ...eventGrid,
      topic: '/subscriptions/s/providers/Microsoft.KeyVault/vaults/not-ours',
      data: { ...data, VaultName: 'not-ours' },
    };
    expect(eventVault(parseKeyVaultEvent(forged), resolve)).toEqual({
      contradiction: 'data.VaultName names vault "not-ours" but data.Id names "kv1"',
    });
    const topicOnly = { ...eventGrid, data: { ...data, VaultName: 'local' } };
    expect(eventVault(parseKeyVaultEvent(topicOnly), resolve)).toMatchObject({
      contradiction: expect.stringContaining('topic names "kv1"'),
    });
  });

  test('a vault that is not configured is unknown', () => {
    const other = {
      ...eventGrid,
      topic: '/subscriptions/s/providers/Microsoft.KeyVault/vaults/kv9',
      data: { ...data, VaultName: 'kv9', Id: 'https://kv9.vault.azure.net/secrets/db-token/1' },
    };
    expect(eventVault(parseKeyVaultEvent(other), resolve)).toEqual({ unknown: 'kv9' });
  });
});
