import { parseKeyVaultEvent } from '../../shared/events';
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
