/**
 * The demo's function app with TEAMS_WEBHOOK_URL left as an unresolved Key Vault reference (what App
 * Service does when the identity cannot read the secret): the handlers still load their settings and
 * rotate, the teams channel is off, and a NotificationChannelDisabled event says why.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { InvocationContext } from '@azure/functions';
import { DEMO_VAULTS, seedDemo, seedDemoPat, type Demo } from '../../local/demo';
import { notificationQueue } from '../../functions/common';
import { rotateSecret } from '../../functions/rotateSecret';
import type { NotificationMessage } from '../../shared/notifications/routing';
import { captureOutput, type OutputCapture } from '../support/capture';
import { useLocalAzure } from '../support/localAzure';

const azure = useLocalAzure();
let demo: Demo;
let output: OutputCapture;
const savedEnv: Record<string, string | undefined> = {};
const UNRESOLVED =
  '@Microsoft.KeyVault(SecretUri=https://kv-notify.vault.azure.net/secrets/teams-webhook-url)';

beforeAll(async () => {
  const storage = process.env.AZURITE_CONNECTION_STRING;
  if (!storage) throw new Error('AZURITE_CONNECTION_STRING is not set (tests/support/globalSetup.ts)');
  demo = await seedDemo(azure(), { storage });
  for (const [key, value] of Object.entries({ ...demo.env, TEAMS_WEBHOOK_URL: UNRESOLVED })) {
    savedEnv[key] = process.env[key];
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  }
  output = captureOutput();
}, 60_000);

afterAll(() => {
  output.stop();
  for (const [key, value] of Object.entries(savedEnv)) {
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  }
});

test('a due PAT is rotated; notifications skip teams only; the disabled channel is reported', async () => {
  expect(demo.env.NOTIFY_DEFAULT_CHANNELS).toContain('teams');
  const vault = DEMO_VAULTS.dataPlatform;
  const name = `uc-pat-${randomBytes(4).toString('hex')}`;
  await seedDemoPat(azure(), demo, { vault, name, expiresInDays: 20 });
  const before = azure().state.vaults.get(vault)?.secrets.get(name)?.length ?? 0;

  const logs: string[] = [];
  const context = new InvocationContext({
    invocationId: randomUUID(),
    functionName: 'rotateSecret',
    triggerMetadata: { dequeueCount: 1 },
    logHandler: (_level, ...args) => logs.push(args.map(String).join(' ')),
  });
  await rotateSecret({ op: 'rotate', vault, secret: name, reason: 'due' } as never, context);

  expect(azure().state.vaults.get(vault)?.secrets.get(name)?.length).toBe(before + 1);
  expect(logs.find((l) => l.startsWith('[SecretRotated]'))).toBeDefined();
  const notices = (context.extraOutputs.get(notificationQueue) ?? []) as NotificationMessage[];
  expect(notices.length).toBeGreaterThan(0);
  expect(notices.map((m) => m.channel)).not.toContain('teams');
  expect(notices.map((m) => m.channel)).toContain('webhook');

  const disabled = output.lines.filter((l) => l.startsWith('[NotificationChannelDisabled]'));
  expect(disabled).toHaveLength(1);
  expect(disabled[0]).toMatch(/channel=teams setting=TEAMS_WEBHOOK_URL/);
  expect(disabled[0]).toMatch(/did not resolve/);
  expect([...logs, ...output.lines].join('\n')).not.toContain('@Microsoft.KeyVault');
});
