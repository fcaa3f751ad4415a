import { ManagedIdentityCredential } from '@azure/identity';
import type { LocalAzure } from '../../../local/azure';
import { createGraphApi } from '../../../shared/clients/graph';
import { parseSettings, type Settings } from '../../../shared/config';
import { createChannels, type Channels } from '../../../shared/notifications/channels';
import { notification, type Notification } from '../../../shared/notifications/notification';
import { useManagedIdentityEnv } from '../../support/localAzure';

export const SENDER = 'rotation-alerts@contoso.example';
export const DEFAULT_TO = 'secops@contoso.example';
export const SIGNING_KEY = 'whsec-local-test-signing-key-0123456789abcdef';
export const TOPIC = 'kv-rotator-notifications';

export interface NotificationFixture {
  settings: Settings;
  channels: Channels;
  credential: ManagedIdentityCredential;
}

/**
 * Seeds the rotator's managed identity (Mail.Send), the sender mailbox and the notification topic,
 * and builds the channels exactly as the function app does: settings parsed from app settings, the
 * service's managed-identity credential, Graph over HTTPS. Teams and webhook point at the sink.
 */
export async function notificationFixture(
  azure: LocalAzure,
  env: Record<string, string> = {},
): Promise<NotificationFixture> {
  await azure.seed({
    managedIdentities: [{ name: 'kv-rotator-func', graphRoles: ['Mail.Send'] }],
    users: [{ userPrincipalName: SENDER }],
  });
  const endpoint = azure.addTopic(TOPIC);
  useManagedIdentityEnv(azure);
  const settings = parseSettings({
    KEY_VAULT_URIS: 'https://kv-one.vault.azure.net',
    AZURE_TENANT_ID: azure.state.tenantId,
    AzureWebJobsStorage: 'UseDevelopmentStorage=true',
    GRAPH_BASE_URL: azure.graphUrl,
    NOTIFY_DEFAULT_CHANNELS: 'teams,webhook,email,eventgrid',
    TEAMS_WEBHOOK_URL: `${azure.url}/sink/teams`,
    WEBHOOK_URL: `${azure.url}/sink/webhook`,
    WEBHOOK_SIGNING_KEY: SIGNING_KEY,
    MAIL_SENDER: SENDER,
    MAIL_DEFAULT_TO: DEFAULT_TO,
    NOTIFY_ALLOWED_DOMAINS: 'contoso.example',
    NOTIFICATION_TOPIC_ENDPOINT: endpoint,
    ...env,
  });
  const credential = new ManagedIdentityCredential();
  const channels = createChannels(settings, {
    graph: createGraphApi(credential, settings.GRAPH_BASE_URL),
    credential,
  });
  return { settings, channels, credential };
}

export function sampleNotification(
  details: Notification['details'] = { credentialId: '4711', target: 'workspace adb-1' },
  recipients: string[] = [],
): Notification {
  return notification(
    'rotated',
    { vault: 'kv-one', secret: 'db-token', recipients },
    details,
    new Date('2026-03-01T12:00:00Z'),
  );
}
