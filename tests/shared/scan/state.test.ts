/**
 * The state the scan gives each secret (ScanCompleted `byState`, the workbook's "Secrets by state"):
 * one per secret, the first that applies.
 */
import type { SecretProperties } from '@azure/keyvault-secrets';
import { parseSettings } from '../../../shared/config';
import { ROTATORS } from '../../../shared/rotators';
import { assess } from '../../../shared/scan/assess';
import { SECRET_STATES } from '../../../shared/telemetry/events';

const settings = parseSettings({
  KEY_VAULT_URIS: 'https://kv1.vault.azure.net',
  AZURE_TENANT_ID: '72f988bf-0000-4000-8000-00000000a2ee',
  AzureWebJobsStorage: 'UseDevelopmentStorage=true',
});
const now = new Date('2026-11-23T12:00:00Z');
const days = (n: number) => new Date(now.getTime() + n * 86_400_000);
const APP = { 'rotation-kind': 'entra-app-secret', 'entra-app-id': '556f09ac-025b-45eb-a50b-bc181eb8752b' };
// Entra key ids are GUIDs; the state tags are validated per kind.
const K1 = '0f3c2a4e-1b5d-4e6f-8a9b-0c1d2e3f4a5b';
const K2 = '7a8b9c0d-1e2f-4a3b-9c4d-5e6f7a8b9c0d';
const state = (over: Partial<SecretProperties>) =>
  assess(
    'kv1',
    {
      name: 's1',
      vaultUrl: 'https://kv1.vault.azure.net',
      version: 'v1',
      enabled: true,
      ...over,
    } as SecretProperties,
    settings,
    ROTATORS,
    now,
  ).state;

test.each([
  ['no rotation-kind, even expired', { expiresOn: days(-1) }, 'notOptedIn'],
  ['bad tags', { tags: { ...APP, 'rotation-validity-days': 'soon' }, expiresOn: days(60) }, 'blocked'],
  ['a disabled current version', { tags: APP, enabled: false, expiresOn: days(60) }, 'blocked'],
  ['opted in and expired', { tags: APP, expiresOn: days(-1) }, 'expired'],
  ['inside its rotation window', { tags: APP, expiresOn: days(20) }, 'due'],
  [
    'rotated, the previous credential in its grace period',
    {
      tags: {
        ...APP,
        'credential-id': K2,
        'previous-credential-id': K1,
        'revoke-previous-after': days(1).toISOString(),
      },
      expiresOn: days(80),
    },
    'inGrace',
  ],
  [
    'the grace period over (revoke planned)',
    {
      tags: {
        ...APP,
        'credential-id': K2,
        'previous-credential-id': K1,
        'revoke-previous-after': days(-1).toISOString(),
      },
      expiresOn: days(80),
    },
    'healthy',
  ],
  ['outside its window', { tags: APP, expiresOn: days(80) }, 'healthy'],
] as const)('%s: %s', (_, over, expected) => {
  expect(SECRET_STATES).toContain(expected);
  expect(state(over as Partial<SecretProperties>)).toBe(expected);
});
