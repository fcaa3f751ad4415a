import type { SecretProperties } from '@azure/keyvault-secrets';
import { parseSettings } from '../../../shared/config';
import { ROTATORS } from '../../../shared/rotators';
import { assess } from '../../../shared/scan/assess';

const settings = parseSettings({
  KEY_VAULT_URIS: 'https://kv1.vault.azure.net',
  AZURE_TENANT_ID: '72f988bf-0000-4000-8000-00000000a2ee',
  AzureWebJobsStorage: 'UseDevelopmentStorage=true',
});
const now = new Date('2026-11-23T12:00:00Z');
const days = (n: number) => new Date(now.getTime() + n * 86_400_000);
const APP = { 'rotation-kind': 'entra-app-secret', 'entra-app-id': '556f09ac-025b-45eb-a50b-bc181eb8752b' };

function props(over: Partial<SecretProperties>): SecretProperties {
  return {
    name: 's1',
    vaultUrl: 'https://kv1.vault.azure.net',
    version: 'v1',
    enabled: true,
    ...over,
  } as SecretProperties;
}
const run = (over: Partial<SecretProperties>) => assess('kv1', props(over), settings, ROTATORS, now);

describe('assess (the scan, per secret)', () => {
  test('an opted-in secret inside its window is due; outside it is left alone', () => {
    expect(run({ tags: APP, expiresOn: days(29) }).work).toEqual([
      { vault: 'kv1', secret: 's1', op: 'rotate', reason: 'due' },
    ]);
    expect(run({ tags: APP, expiresOn: days(31) }).work).toEqual([]);
    expect(run({ tags: { ...APP, 'rotation-window-days': '10' }, expiresOn: days(20) }).work).toEqual([]);
  });

  test('an opted-in secret without expiry is due (its first rotation sets one)', () => {
    expect(run({ tags: APP }).work.map((w) => w.op)).toEqual(['rotate']);
  });

  test('a previous credential past its grace period and an interrupted rotation are planned', () => {
    const tags = {
      ...APP,
      'credential-id': '22222222-2222-4222-8222-222222222222',
      'previous-credential-id': '11111111-1111-4111-8111-111111111111',
      'revoke-previous-after': days(-1).toISOString(),
      'rotation-started': `7e3d2c1b-0a99-4f88-8e77-6d5c4b3a2f10@${days(-1).toISOString()}`,
    };
    expect(run({ tags, expiresOn: days(80) }).work.map((w) => [w.op, w.reason])).toEqual([
      ['revoke-previous', 'grace-period-over'],
      ['reconcile', 'interrupted-rotation'],
    ]);
    const inGrace = {
      ...tags,
      'revoke-previous-after': days(1).toISOString(),
      'rotation-started': `7e3d2c1b-0a99-4f88-8e77-6d5c4b3a2f10@${now.toISOString()}`,
    };
    expect(run({ tags: inGrace, expiresOn: days(80) }).work).toEqual([]);
  });

  test('a secret that is not opted in is never planned, only announced at 30/14/7/1 days and when expired', () => {
    expect(run({ expiresOn: days(40) })).toMatchObject({
      optedIn: false,
      work: [],
      notice: undefined,
      bucket: 'later',
    });
    expect(run({ expiresOn: days(25) }).notice).toMatchObject({ kind: 'expiring', key: 'v1-30d' });
    expect(run({ expiresOn: days(10) }).notice).toMatchObject({ kind: 'expiring', key: 'v1-14d' });
    expect(run({ expiresOn: days(0.5) }).notice).toMatchObject({ kind: 'expiring', key: 'v1-1d' });
    expect(run({ expiresOn: days(-1) }).notice).toMatchObject({ kind: 'expired', key: 'v1-expired' });
    expect(run({ expiresOn: days(10), version: 'v2' }).notice?.key).toBe('v2-14d');
  });

  test('an opted-in secret is announced only below its window: rotation should have happened by then', () => {
    expect(run({ tags: APP, expiresOn: days(25) }).notice).toBeUndefined();
    expect(run({ tags: APP, expiresOn: days(10) }).notice).toMatchObject({
      kind: 'expiring',
      details: { reason: 'rotation has not succeeded yet' },
    });
    const expired = run({ tags: APP, expiresOn: days(-2) });
    expect(expired.notice?.kind).toBe('expired');
    expect(expired.work).toEqual([{ vault: 'kv1', secret: 's1', op: 'rotate', reason: 'expired' }]);
  });

  test('bad tags are a finding and a notice, never work', () => {
    const a = run({ tags: { ...APP, 'rotation-validity-days': 'ninety' }, expiresOn: days(60) });
    expect(a.work).toEqual([]);
    expect(a.findings).toEqual([
      { tag: 'rotation-validity-days', reason: expect.stringContaining('"ninety"') },
    ]);
    expect(a.notice).toMatchObject({ kind: 'rotation-failed', key: 'v1-invalid' });
  });

  test('a disabled opted-in secret is reported, not rotated', () => {
    const a = run({ tags: APP, enabled: false, expiresOn: days(3) });
    expect(a.work).toEqual([]);
    expect(a.notice).toMatchObject({ kind: 'rotation-failed', key: 'v1-disabled' });
  });
});
