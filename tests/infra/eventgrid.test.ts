/** The Key Vault → Event Grid → onKeyVaultEvent wiring against the handler's contract. */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { HANDLED_EVENT_TYPES } from '../../shared/constants';
import { ROOT, modules, read, readInfra, resources, topLevelKeys, valueOf } from './bicep';

const main = readInfra('main.bicep');
const events = readInfra('app/keyvault-events.bicep');
const topic = readInfra('app/keyvault-topic.bicep');
const subscription = resources(events).find(
  (r) => r.type === 'Microsoft.EventGrid/systemTopics/eventSubscriptions',
);
const props = valueOf(subscription?.body ?? '{}', 'properties');

describe('Key Vault event subscription', () => {
  test('filters to exactly the event types the handler acts on (HANDLED_EVENT_TYPES)', () => {
    const filter = valueOf(props, 'filter');
    const types = [...valueOf(filter, 'includedEventTypes').matchAll(/'([^']+)'/g)].map((m) => m[1]);
    expect([...types].sort()).toEqual([...HANDLED_EVENT_TYPES].sort());
    // Nothing else narrows or widens it.
    expect(filter).not.toMatch(/advancedFilters|subjectBeginsWith|subjectEndsWith/);
  });

  test('delivers one event at a time to the function onKeyVaultEvent', () => {
    const destination = valueOf(props, 'destination');
    expect(destination).toMatch(/endpointType:\s*'AzureFunction'/);
    expect(destination).toMatch(/resourceId:\s*'\$\{functionAppId\}\/functions\/onKeyVaultEvent'/);
    expect(destination).toMatch(/maxEventsPerBatch:\s*1\b/);
    expect(main).toMatch(/functionAppId:\s*api\.outputs\.id/);
  });

  test('retries within the service limits, then dead-letters with the system topic identity', () => {
    const retry = valueOf(props, 'retryPolicy');
    const attempts = Number(/maxDeliveryAttempts:\s*(\d+)/.exec(retry)?.[1]);
    const ttl = Number(/eventTimeToLiveInMinutes:\s*(\d+)/.exec(retry)?.[1]);
    expect(attempts).toBeGreaterThanOrEqual(1);
    expect(attempts).toBeLessThanOrEqual(30);
    expect(ttl).toBeGreaterThanOrEqual(1);
    expect(ttl).toBeLessThanOrEqual(1440);

    const deadLetter = valueOf(props, 'deadLetterWithResourceIdentity');
    expect(deadLetter).toMatch(/type:\s*'SystemAssigned'/);
    expect(deadLetter).toMatch(/endpointType:\s*'StorageBlob'/);
    expect(deadLetter).toMatch(/blobContainerName:\s*deadLetterContainerName/);
    // Not the identity-less form, which the key-less storage account is not meant to rely on.
    expect(topLevelKeys(props)).not.toContain('deadLetterDestination');

    const systemTopic = resources(topic).find((r) => r.type === 'Microsoft.EventGrid/systemTopics');
    // System-assigned, merged with what a reused topic already has (tests/infra/compiled.test.ts).
    expect(systemTopic?.body).toMatch(/identity:\s*mergedIdentity\(existingIdentity\)/);
    expect(systemTopic?.body).toMatch(/topicType:\s*'Microsoft\.KeyVault\.vaults'/);
    expect(systemTopic?.body).toMatch(/source:\s*vaultId/);
  });

  test("one subscription per vault, in the vault's resource group, after the code is deployed", () => {
    const vaultEvents = modules(main).find((m) => m.source === 'app/keyvault-events.bicep');
    expect(vaultEvents?.head).toMatch(/^\[\s*for \(vault, i\) in keyVaults: if \(keyVaultEventsEnabled\)$/);
    expect(vaultEvents?.body).toMatch(
      /scope:\s*resourceGroup\(vault\.\?subscriptionId \?\? subscription\(\)\.subscriptionId, vault\.resourceGroup\)/,
    );
    expect(vaultEvents?.body).toMatch(/dependsOn:\s*\[\s*rbac\s*\]/);
    // No loop over secrets anywhere: subscriptions are per vault, filtered by type.
    expect(main).not.toMatch(/for \w+ in \w*[sS]ecrets\b/);
    // The topic module and the subscription module target the same vault resource group.
    const vaults = modules(main).find((m) => m.source === 'app/keyvault.bicep');
    expect(vaults?.head).toMatch(/for \(vault, i\) in keyVaults/);
    expect(vaults?.body).toMatch(
      /scope:\s*resourceGroup\(vault\.\?subscriptionId \?\? subscription\(\)\.subscriptionId, vault\.resourceGroup\)/,
    );
    expect(vaultEvents?.body).toMatch(/systemTopicName:\s*vaults\[i\]\.outputs\.systemTopicName/);
  });

  test('the postdeploy hook enables the subscriptions once the function exists', () => {
    const azureYaml = read('azure.yaml');
    expect(azureYaml).toMatch(/postdeploy:/);
    expect(azureYaml).toMatch(/run: \.\/infra\/scripts\/postdeploy\.sh/);
    const hook = read('infra/scripts/postdeploy.sh');
    expect(hook).toMatch(/--function-name onKeyVaultEvent/);
    expect(hook).toMatch(/azd env set KEY_VAULT_EVENTS_ENABLED true/);
    expect(JSON.parse(readInfra('main.parameters.json')).parameters.keyVaultEventsEnabled.value).toBe(
      '${KEY_VAULT_EVENTS_ENABLED=false}',
    );
  });

  // The Event Grid function is written alongside this deployment; once it is registered, its name must
  // be the one the subscription delivers to.
  const registered = readdirSync(path.join(ROOT, 'functions'))
    .filter((f) => f.endsWith('.ts'))
    .flatMap((f) => [...read('functions', f).matchAll(/app\.eventGrid\(\s*'([^']+)'/g)].map((m) => m[1]));
  (registered.length ? test : test.skip)(
    'the function registered with app.eventGrid is onKeyVaultEvent',
    () => {
      expect(registered).toEqual(['onKeyVaultEvent']);
    },
  );
});

describe('notification topic', () => {
  const topicBicep = readInfra('app/notification-topic.bicep');
  const channel = read('shared/notifications/channels/eventgrid.ts');

  test('takes the schema the eventgrid channel publishes in, with Entra auth only', () => {
    const published = /new EventGridPublisherClient\([^,]+,\s*'(\w+)'/.exec(channel)?.[1];
    const expected = { EventGrid: 'EventGridSchema', CloudEvent: 'CloudEventSchemaV1_0' }[published ?? ''];
    expect(expected).toBeDefined();
    expect(topicBicep).toMatch(new RegExp(`inputSchema:\\s*'${expected}'`));
    expect(topicBicep).toMatch(/disableLocalAuth:\s*true/);
    // The channel authenticates with a token credential, not a key.
    expect(channel).not.toMatch(/AzureKeyCredential|AzureSASCredential/);
  });
});
