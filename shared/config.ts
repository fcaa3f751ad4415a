import { z } from 'zod';
import { ConfigError } from './errors';

/**
 * Every app setting the service reads, in one schema, parsed once. Names are the app setting names
 * (what Bicep sets and local.settings.json holds); values arrive as strings.
 */

const list = z
  .string()
  .optional()
  .transform((s) =>
    (s ?? '')
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean),
  );

const httpsUrl = z.url({ protocol: /^https$/, error: 'expected an https:// URL' });

const boolean = (fallback: boolean) =>
  z
    .enum(['true', 'false', '1', '0'], { error: 'expected true or false' })
    .optional()
    .transform((v) => (v === undefined ? fallback : v === 'true' || v === '1'));

const integer = (fallback: number, min: number, max: number) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v.trim() === '') return fallback;
      const n = Number(v);
      if (!Number.isInteger(n) || n < min || n > max) {
        ctx.addIssue({
          code: 'custom',
          message: `expected a whole number from ${min} to ${max}, got "${v}"`,
        });
        return z.NEVER;
      }
      return n;
    });

/** Six-field NCRONTAB (`{second} {minute} {hour} {day} {month} {day-of-week}`), as the timer trigger takes. */
const ncrontab = z
  .string()
  .optional()
  .transform((v) => (v ?? '').trim() || '0 0 */6 * * *')
  .refine((v) => v.split(/\s+/).length === 6, {
    message: 'expected a six-field NCRONTAB expression such as "0 0 */6 * * *"',
  });

/**
 * A vault entry: `https://{name}.vault.azure.net`, or `{name}=https://host:port` where the name is not
 * the URL's first label (the local vaults, private endpoints with custom DNS).
 */
const vaultEntry = z.string().transform((entry, ctx) => {
  const eq = entry.indexOf('=');
  const url = eq >= 0 ? entry.slice(eq + 1).trim() : entry;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    ctx.addIssue({ code: 'custom', message: `expected https:// vault URLs, got "${entry}"` });
    return z.NEVER;
  }
  if (parsed.protocol !== 'https:' || parsed.pathname.replace(/\/$/, '') !== '' || parsed.search) {
    ctx.addIssue({ code: 'custom', message: `expected https:// vault URLs without a path, got "${entry}"` });
    return z.NEVER;
  }
  const name = eq >= 0 ? entry.slice(0, eq).trim() : (parsed.hostname.split('.')[0] ?? '');
  return { name, url: parsed.origin };
});

export type VaultSetting = z.output<typeof vaultEntry>;

/**
 * A binding `{vault}/{secret or *}={kind}:{target}` written by someone who controls the target: it lets
 * secrets in that vault rotate that target (design section 4, confused deputy).
 */
const binding = z
  .string()
  .regex(/^[^/=\s]+\/[^/=\s]+=[a-z-]+:\S+$/, {
    error:
      'expected bindings like "my-vault/my-secret=entra-app:{appId}" or "my-vault/*=databricks-sp:{accountId}/{spId}"',
  })
  .transform((entry) => {
    const [scope = '', target = ''] = entry.split('=');
    const [vault = '', secret = ''] = scope.split('/');
    return { vault, secret, target };
  });

export const NOTIFICATION_CHANNELS = ['teams', 'webhook', 'email', 'eventgrid'] as const;

export const settingsSchema = z.object({
  /** Vaults to scan and to accept events from. */
  KEY_VAULT_URIS: list.pipe(
    z
      .array(vaultEntry)
      .min(1, { error: 'expected a comma-separated list of at least one https:// vault URL' }),
  ),
  /** The tenant the service runs in; new Entra app secrets are verified against it. */
  AZURE_TENANT_ID: z.uuid({ error: 'expected the tenant id (GUID)' }),
  /** Client id of the user-assigned managed identity; absent means system-assigned. */
  AZURE_CLIENT_ID: z.uuid({ error: 'expected a client id (GUID)' }).optional(),
  /** Entra authority; the local runner points it at the local Entra. */
  AZURE_AUTHORITY_HOST: httpsUrl.default('https://login.microsoftonline.com'),
  GRAPH_BASE_URL: httpsUrl.default('https://graph.microsoft.com'),
  DATABRICKS_ACCOUNTS_HOST: httpsUrl.default('https://accounts.azuredatabricks.net'),
  /** Hosts besides *.azuredatabricks.net that `databricks-host` may name (host or host:port). */
  DATABRICKS_ALLOWED_HOSTS: list,

  ROTATION_BINDINGS: list.pipe(z.array(binding)),

  SCAN_SCHEDULE: ncrontab,
  SCAN_CONCURRENCY: integer(4, 1, 64),
  ROTATION_DRY_RUN: boolean(false),
  ROTATION_DEFAULT_VALIDITY_DAYS: integer(90, 1, 730),
  ROTATION_DEFAULT_WINDOW_DAYS: integer(30, 1, 365),
  ROTATION_DEFAULT_GRACE_HOURS: integer(24, 0, 24 * 30),
  /** Owners hear of a rotation that keeps failing transiently once it has failed for this long. */
  FAILURE_NOTICE_AFTER_MINUTES: integer(60, 1, 24 * 60),
  /** A rotation stored but never announced (the host died in between) is announced by the scan after this. */
  ANNOUNCE_MISSED_AFTER_MINUTES: integer(15, 1, 24 * 60),
  /** A queued operation's claim (no second message for it) is taken over after this: its holder died. */
  IN_FLIGHT_CLAIM_MINUTES: integer(60, 1, 24 * 60),

  /** Channels every notification goes to, besides the secret's `notify` tag. */
  NOTIFY_DEFAULT_CHANNELS: list.pipe(
    z.array(z.enum(NOTIFICATION_CHANNELS, { error: `expected any of ${NOTIFICATION_CHANNELS.join(', ')}` })),
  ),
  TEAMS_WEBHOOK_URL: httpsUrl.optional(),
  WEBHOOK_URL: httpsUrl.optional(),
  WEBHOOK_SIGNING_KEY: z.string().min(32, { error: 'expected at least 32 characters' }).optional(),
  MAIL_SENDER: z.email({ error: 'expected the sender mailbox (user principal name)' }).optional(),
  MAIL_DEFAULT_TO: list.pipe(z.array(z.email({ error: 'expected comma-separated email addresses' }))),
  /**
   * Mail domains a secret's `notify` tag may send to (`contoso.com` also admits its subdomains). Empty:
   * no recipient is ever taken from a tag, only MAIL_DEFAULT_TO.
   */
  NOTIFY_ALLOWED_DOMAINS: list.pipe(
    z.array(
      z
        .string()
        .regex(/^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/i, {
          error: 'expected comma-separated mail domains such as contoso.com',
        })
        .transform((d) => d.toLowerCase()),
    ),
  ),
  NOTIFICATION_TOPIC_ENDPOINT: httpsUrl.optional(),

  /** Storage for queues and lease blobs: a connection string locally, identity-based in Azure. */
  AzureWebJobsStorage: z.string().optional(),
  AzureWebJobsStorage__blobServiceUri: httpsUrl.optional(),
  AzureWebJobsStorage__queueServiceUri: httpsUrl.optional(),

  APPLICATIONINSIGHTS_CONNECTION_STRING: z.string().optional(),
});

export type Settings = z.output<typeof settingsSchema> & {
  /**
   * Channel settings whose Key Vault reference App Service could not resolve (the value is still
   * `@Microsoft.KeyVault(…)`): their channels are off, everything else works (routing.disabledChannels).
   */
  unresolvedReferences?: readonly ChannelSecretSetting[];
};

/** Notification settings that deployments pass as Key Vault references (infra/app/api.bicep). */
export const CHANNEL_SECRET_SETTINGS = ['TEAMS_WEBHOOK_URL', 'WEBHOOK_URL', 'WEBHOOK_SIGNING_KEY'] as const;
export type ChannelSecretSetting = (typeof CHANNEL_SECRET_SETTINGS)[number];

/** How App Service leaves an app setting whose Key Vault reference did not resolve. */
const UNRESOLVED_REFERENCE = /^\s*@Microsoft\.KeyVault\(/i;

/** Parses the settings; every problem is reported at once, each naming its setting. */
export function parseSettings(env: Record<string, string | undefined>): Settings {
  // Empty strings are how app settings say "not set".
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  // An unresolved reference turns its channel off rather than stopping every function.
  const unresolvedReferences = CHANNEL_SECRET_SETTINGS.filter((name) =>
    UNRESOLVED_REFERENCE.test(present[name] ?? ''),
  );
  for (const name of unresolvedReferences) delete present[name];
  const unresolved = (name: string) => (unresolvedReferences as readonly string[]).includes(name);
  const result = settingsSchema.safeParse(present);
  if (!result.success) {
    throw new ConfigError(
      result.error.issues.map((issue) => ({
        setting: String(issue.path[0] ?? '(settings)'),
        problem:
          issue.code === 'invalid_type' && issue.input === undefined
            ? 'is required but not set'
            : issue.message,
      })),
    );
  }
  const settings = result.data;
  const channelSetting = {
    teams: 'TEAMS_WEBHOOK_URL',
    webhook: 'WEBHOOK_URL',
    email: 'MAIL_SENDER',
    eventgrid: 'NOTIFICATION_TOPIC_ENDPOINT',
  } as const;
  const missing: { setting: string; problem: string }[] = settings.NOTIFY_DEFAULT_CHANNELS.filter(
    (c) => !settings[channelSetting[c]] && !unresolved(channelSetting[c]),
  ).map((c) => ({
    setting: channelSetting[c],
    problem: `is required because NOTIFY_DEFAULT_CHANNELS includes ${c}`,
  }));
  if (!settings.AzureWebJobsStorage && !settings.AzureWebJobsStorage__blobServiceUri) {
    missing.push({
      setting: 'AzureWebJobsStorage',
      problem:
        'is required: a connection string, or identity-based AzureWebJobsStorage__blobServiceUri and __queueServiceUri',
    });
  }
  if (settings.WEBHOOK_URL && !settings.WEBHOOK_SIGNING_KEY && !unresolved('WEBHOOK_SIGNING_KEY')) {
    missing.push({
      setting: 'WEBHOOK_SIGNING_KEY',
      problem: 'is required when WEBHOOK_URL is set (deliveries are HMAC-signed)',
    });
  }
  if (missing.length) throw new ConfigError(missing);
  return unresolvedReferences.length ? { ...settings, unresolvedReferences } : settings;
}

let cached: Settings | undefined;

/** The settings of this process, parsed on first use (not at module load, to keep cold start lean). */
export function getSettings(): Settings {
  cached ??= parseSettings(process.env);
  return cached;
}
