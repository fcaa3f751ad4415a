/**
 * A channel setting that App Service could not resolve from Key Vault (left as `@Microsoft.KeyVault(…)`)
 * turns that channel off with its reason; the settings still load, so every function keeps working.
 */
import { parseSettings } from '../../../shared/config';
import { ConfigError } from '../../../shared/errors';
import { notification } from '../../../shared/notifications/notification';
import { disabledChannels, routeNotification } from '../../../shared/notifications/routing';

const BASE = {
  KEY_VAULT_URIS: 'https://kv-apps.vault.azure.net',
  AZURE_TENANT_ID: '72f988bf-86f1-41af-91ab-2d7cd011db47',
  AzureWebJobsStorage: 'UseDevelopmentStorage=true',
  NOTIFY_DEFAULT_CHANNELS: 'teams,webhook,email',
  TEAMS_WEBHOOK_URL: 'https://contoso.webhook.office.com/workflows/abc',
  WEBHOOK_URL: 'https://hooks.contoso.com/rotator',
  WEBHOOK_SIGNING_KEY: 'k'.repeat(40),
  MAIL_SENDER: 'rotator@contoso.com',
  MAIL_DEFAULT_TO: 'ops@contoso.com',
};
const reference = (name: string) =>
  `@Microsoft.KeyVault(SecretUri=https://kv-notify.vault.azure.net/secrets/${name})`;

const sample = () => notification('rotated', { vault: 'kv-apps', secret: 'app-secret' }, {}, new Date());

test('an unresolved Teams URL disables teams only; the other channels still route', () => {
  const settings = parseSettings({ ...BASE, TEAMS_WEBHOOK_URL: reference('teams-url') });
  expect(settings.TEAMS_WEBHOOK_URL).toBeUndefined();
  expect(disabledChannels(settings)).toEqual([
    {
      channel: 'teams',
      setting: 'TEAMS_WEBHOOK_URL',
      reason: expect.stringMatching(
        /teams channel is off: TEAMS_WEBHOOK_URL is a Key Vault reference that did not resolve/,
      ),
    },
  ]);
  const { messages, skipped } = routeNotification(sample(), settings);
  expect(messages.map((m) => m.channel)).toEqual(['webhook', 'email']);
  expect(skipped).toEqual([{ channel: 'teams', reason: expect.stringMatching(/did not resolve/) }]);
});

test('an unresolved signing key disables the webhook channel instead of failing the settings', () => {
  const settings = parseSettings({ ...BASE, WEBHOOK_SIGNING_KEY: reference('hook-key') });
  expect(disabledChannels(settings).map((d) => [d.channel, d.setting])).toEqual([
    ['webhook', 'WEBHOOK_SIGNING_KEY'],
  ]);
  expect(routeNotification(sample(), settings).messages.map((m) => m.channel)).toEqual(['teams', 'email']);
});

test('the reference text never reaches a reason or the settings', () => {
  const settings = parseSettings({
    ...BASE,
    TEAMS_WEBHOOK_URL: reference('teams-url'),
    WEBHOOK_URL: reference('hook-url'),
  });
  const text = JSON.stringify([settings, disabledChannels(settings), routeNotification(sample(), settings)]);
  expect(text).not.toContain('@Microsoft.KeyVault');
  expect(disabledChannels(settings).map((d) => d.channel)).toEqual(['teams', 'webhook']);
});

test('a value that is simply wrong is still a configuration error, and no reference means no change', () => {
  expect(() => parseSettings({ ...BASE, TEAMS_WEBHOOK_URL: 'http://not-https.example' })).toThrow(
    ConfigError,
  );
  const settings = parseSettings(BASE);
  expect(settings.unresolvedReferences).toBeUndefined();
  expect(disabledChannels(settings)).toEqual([]);
});
