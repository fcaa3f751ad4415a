import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseSettings, settingsSchema } from '../../shared/config';
import { ConfigError } from '../../shared/errors';

const minimal = {
  KEY_VAULT_URIS: 'https://a.vault.azure.net',
  AZURE_TENANT_ID: '72f988bf-0000-4000-8000-00000000a2ee',
  AzureWebJobsStorage: 'UseDevelopmentStorage=true',
};

function problems(env: Record<string, string>): Record<string, string> {
  try {
    parseSettings(env);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return Object.fromEntries((e as ConfigError).issues.map((i) => [i.setting, i.problem]));
  }
  throw new Error('expected a ConfigError');
}

describe('settings', () => {
  test('minimal settings get documented defaults', () => {
    const s = parseSettings(minimal);
    expect(s.KEY_VAULT_URIS).toEqual([{ name: 'a', url: 'https://a.vault.azure.net' }]);
    expect(s.SCAN_SCHEDULE).toBe('0 0 */6 * * *');
    expect(s.ROTATION_DRY_RUN).toBe(false);
    expect(s.ROTATION_DEFAULT_VALIDITY_DAYS).toBe(90);
    expect(s.ROTATION_DEFAULT_WINDOW_DAYS).toBe(30);
    expect(s.ROTATION_DEFAULT_GRACE_HOURS).toBe(24);
    expect(s.NOTIFY_DEFAULT_CHANNELS).toEqual([]);
    expect(s.AZURE_AUTHORITY_HOST).toBe('https://login.microsoftonline.com');
  });

  test('lists are comma-separated and trimmed; empty strings count as unset', () => {
    const s = parseSettings({
      ...minimal,
      KEY_VAULT_URIS: ' https://a.vault.azure.net , local=https://localhost:8444/ ',
      DATABRICKS_ALLOWED_HOSTS: 'localhost:8444,',
      AZURE_CLIENT_ID: '',
      ROTATION_DRY_RUN: 'true',
      ROTATION_BINDINGS: 'kv1/*=databricks-sp:acc/42, kv1/app-secret=entra-app:0000',
    });
    expect(s.ROTATION_BINDINGS).toEqual([
      { vault: 'kv1', secret: '*', target: 'databricks-sp:acc/42' },
      { vault: 'kv1', secret: 'app-secret', target: 'entra-app:0000' },
    ]);
    expect(s.KEY_VAULT_URIS).toEqual([
      { name: 'a', url: 'https://a.vault.azure.net' },
      { name: 'local', url: 'https://localhost:8444' },
    ]);
    expect(s.DATABRICKS_ALLOWED_HOSTS).toEqual(['localhost:8444']);
    expect(s.AZURE_CLIENT_ID).toBeUndefined();
    expect(s.ROTATION_DRY_RUN).toBe(true);
  });

  test('a missing required setting is named', () => {
    const { KEY_VAULT_URIS: _v, ...noVaults } = minimal;
    expect(problems(noVaults)).toEqual({
      KEY_VAULT_URIS: expect.stringContaining('at least one https:// vault URL'),
    });
    const { AzureWebJobsStorage: _s, ...noStorage } = minimal;
    expect(problems(noStorage)).toEqual({
      AzureWebJobsStorage: expect.stringContaining('is required'),
    });
  });

  test('every bad value is reported at once, each with what was expected', () => {
    const p = problems({
      ...minimal,
      KEY_VAULT_URIS: 'http://insecure.vault.azure.net',
      ROTATION_DEFAULT_VALIDITY_DAYS: 'ninety',
      SCAN_SCHEDULE: '0 */6 * * *',
      ROTATION_DRY_RUN: 'yes',
      AZURE_CLIENT_ID: 'not-a-guid',
      NOTIFY_DEFAULT_CHANNELS: 'teams,pager',
      ROTATION_BINDINGS: 'kv1=entra-app:x',
    });
    expect(p.ROTATION_BINDINGS).toMatch(/my-vault\/my-secret=entra-app/);
    expect(p.KEY_VAULT_URIS).toMatch(/https:\/\//);
    expect(p.ROTATION_DEFAULT_VALIDITY_DAYS).toBe('expected a whole number from 1 to 730, got "ninety"');
    expect(p.SCAN_SCHEDULE).toMatch(/six-field NCRONTAB/);
    expect(p.ROTATION_DRY_RUN).toBe('expected true or false');
    expect(p.AZURE_CLIENT_ID).toMatch(/GUID/);
    expect(p.NOTIFY_DEFAULT_CHANNELS).toMatch(/teams, webhook, email, eventgrid/);
  });

  test('a default channel needs its destination, and a webhook needs its signing key', () => {
    expect(problems({ ...minimal, NOTIFY_DEFAULT_CHANNELS: 'teams,email' })).toEqual({
      TEAMS_WEBHOOK_URL: 'is required because NOTIFY_DEFAULT_CHANNELS includes teams',
      MAIL_SENDER: 'is required because NOTIFY_DEFAULT_CHANNELS includes email',
    });
    expect(problems({ ...minimal, WEBHOOK_URL: 'https://hooks.example.com/x' })).toEqual({
      WEBHOOK_SIGNING_KEY: expect.stringContaining('HMAC'),
    });
  });

  test('local.settings.sample.json documents every setting the schema reads, and nothing else', () => {
    const sample = JSON.parse(
      readFileSync(path.join(__dirname, '..', '..', 'local.settings.sample.json'), 'utf8'),
    ) as {
      Values: Record<string, string>;
    };
    const documented = Object.keys(sample.Values).filter((k) => k !== 'FUNCTIONS_WORKER_RUNTIME');
    expect(documented.sort()).toEqual(Object.keys(settingsSchema.shape).sort());
  });
});
