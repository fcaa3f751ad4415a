/**
 * Contracts read from the template the real Bicep compiler produces (tests/infra/arm.ts), where the
 * compiled ARM JSON is sturdier than the Bicep text, and the templates' functions evaluated by
 * `bicep console`.
 */
import { roleDataActions } from '../../local/azure/services/keyvault';
import { armResources, compiled, evaluate, type ArmResource, type Json } from './arm';
import { read } from './bicep';

// The compiler and `bicep console` are real processes (seconds each on a busy two-core machine).
jest.setTimeout(120_000);

const all = armResources();
const ofType = (type: string): ArmResource[] => all.filter((r) => r.type === type && !r.existing);
const props = (r: ArmResource | undefined): Json => (r?.body.properties ?? {}) as Json;

describe('the compiled template', () => {
  test('compiles from local files only (no registry module to restore)', () => {
    const text = JSON.stringify(compiled());
    expect(text).not.toMatch(/br:mcr\.microsoft\.com|br\/public:/);
    expect(ofType('Microsoft.Web/sites')).toHaveLength(1);
  });

  test('Flex Consumption site: only minTlsVersion in siteConfig (ftpsState is refused, 51021), Node 22', () => {
    const site = props(ofType('Microsoft.Web/sites')[0]);
    expect(site.siteConfig).toEqual({ minTlsVersion: '1.2' });
    const runtime = (site.functionAppConfig as Json).runtime as Json;
    expect(runtime).toEqual({ name: 'node', version: '22' });
    // The same major as .nvmrc, engines and the esbuild target.
    expect(read('.nvmrc').trim()).toBe(runtime.version);
    expect(read('local/build.mjs')).toContain(`target: 'node${String(runtime.version)}'`);
  });

  test('publishing credential policies carry the location (51008 without) and allow nothing', () => {
    const policies = ofType('Microsoft.Web/sites/basicPublishingCredentialsPolicies');
    expect(policies).toHaveLength(2);
    for (const p of policies) {
      expect(p.body.location).toBe("[parameters('location')]");
      expect(props(p)).toEqual({ allow: false });
    }
  });

  test('Application Insights: Entra-only ingestion, client IPs masked, workspace-based', () => {
    const component = ofType('Microsoft.Insights/components')[0];
    expect(props(component)).toMatchObject({
      DisableLocalAuth: true,
      DisableIpMasking: false,
      IngestionMode: 'LogAnalytics',
    });
    expect(String(props(component).WorkspaceResourceId)).toContain(
      'Microsoft.OperationalInsights/workspaces',
    );
  });

  test('the vault role is custom, with exactly get, read metadata, set and update of secrets', () => {
    const [role] = ofType('Microsoft.Authorization/roleDefinitions');
    const permissions = props(role).permissions as Json[];
    expect(permissions).toHaveLength(1);
    const vaultRole = armResources(
      (all.find((r) => r.path[0] === 'vaultRoles')?.body.properties as Json).template as Json,
    );
    expect(vaultRole).toHaveLength(1);
    const dataActions = (compiledVariable('vaultRoles', 'dataActions') as string[]).slice().sort();
    expect(dataActions).toEqual([
      'Microsoft.KeyVault/vaults/secrets/getSecret/action',
      'Microsoft.KeyVault/vaults/secrets/readMetadata/action',
      'Microsoft.KeyVault/vaults/secrets/setSecret/action',
      'Microsoft.KeyVault/vaults/secrets/update/action',
    ]);
    expect(permissions[0]).toMatchObject({ actions: [], notActions: [], notDataActions: [] });
    // The local Key Vault grants the rotator exactly this role, so every test proves it is enough.
    expect(roleDataActions('Key Vault credential rotator').sort()).toEqual(dataActions);
    expect(props(role).type).toBe('CustomRole');
    // Role names are unique in a tenant, and the role is defined once per vault subscription.
    expect(String(props(role).roleName)).toContain('uniqueString(subscription().id)');
    // Assigned on each vault, and Key Vault Secrets Officer nowhere.
    const vaultAssignment = all.find(
      (r) => r.path[0] === 'vaults' && r.type === 'Microsoft.Authorization/roleAssignments',
    );
    expect(props(vaultAssignment).roleDefinitionId).toBe("[parameters('roleDefinitionId')]");
    expect(JSON.stringify(compiled())).not.toContain('b86a8fe4-44ce-4948-aee5-eccb2c155cd7');
  });

  test('a reused system topic is written with its tags and identity merged in, read before', () => {
    const topic = all.find((r) => r.type === 'Microsoft.EventGrid/systemTopics' && !r.existing);
    expect(topic?.body.identity).toBe("[__bicep.mergedIdentity(parameters('existingIdentity'))]");
    expect(topic?.body.tags).toBe(
      "[union(coalesce(parameters('existingTags'), createObject()), parameters('tags'))]",
    );
    // keyvault.bicep reads the existing topic (only when one is named) and hands both to the module.
    const deployment = all.find(
      (r) => r.path.length === 2 && r.path[0] === 'vaults' && r.type === 'Microsoft.Resources/deployments',
    );
    const parameters = props(deployment).parameters as Json;
    const existingTopic =
      "reference(resourceId('Microsoft.EventGrid/systemTopics', parameters('existingSystemTopicName')), '2022-06-15', 'full')";
    for (const [param, property] of [
      ['existingIdentity', 'identity'],
      ['existingTags', 'tags'],
    ]) {
      expect(String(parameters[param ?? ''])).toContain(
        `if(variables('reuseTopic'), ${existingTopic}, null()), '${property}')`,
      );
    }
  });

  test('inputs that cannot work fail the deployment at its first resource, every problem named', () => {
    const rg = all.find((r) => r.type === 'Microsoft.Resources/resourceGroups');
    expect(String(rg?.body.tags)).toMatch(/^\[if\(empty\(variables\('inputProblemList'\)\),.*fail\(/);
  });
});

function compiledVariable(module: string, name: string): unknown {
  const template = (all.find((r) => r.path[0] === module)?.body.properties as Json).template as Json;
  return (template.variables as Json)[name];
}

describe('templates functions (bicep console)', () => {
  test('mergedIdentity keeps every user-assigned identity (ids only) and adds the system-assigned one', () => {
    const [fresh, systemOnly, withUser] = evaluate([
      'mergedIdentity(null)',
      "mergedIdentity({ type: 'SystemAssigned', principalId: 'p', tenantId: 't' })",
      "mergedIdentity({ type: 'UserAssigned', userAssignedIdentities: { '/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/dlq': { principalId: 'p', clientId: 'c' }, '/x/other': {} } })",
    ]);
    expect(fresh).toEqual({ type: 'SystemAssigned' });
    expect(systemOnly).toEqual({ type: 'SystemAssigned' });
    expect(withUser).toEqual({
      type: 'SystemAssigned, UserAssigned',
      userAssignedIdentities: {
        '/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/dlq':
          {},
        '/x/other': {},
      },
    });
  });

  test("vaultResourceGroupIds: the role's assignable scopes in one subscription, each resource group once", () => {
    const [inMain, inOther] = evaluate(
      ['s-main', 's-other'].map(
        (sub) =>
          `vaultResourceGroupIds([{ name: 'kv-a', resourceGroup: 'rg-1' }, { name: 'kv-b', resourceGroup: 'rg-1' }, { name: 'kv-c', resourceGroup: 'rg-2', subscriptionId: 's-other' }, { name: 'kv-d', resourceGroup: 'rg-3', subscriptionId: 's-main' }], '${sub}', 's-main')`,
      ),
    );
    expect(inMain).toEqual([
      '/subscriptions/s-main/resourceGroups/rg-1',
      '/subscriptions/s-main/resourceGroups/rg-3',
    ]);
    expect(inOther).toEqual(['/subscriptions/s-other/resourceGroups/rg-2']);
  });

  const fine = {
    notificationSecretNames: "['teams-url', 'hook-url', 'hook-key']",
    notificationVaultName: "'kv-notify'",
    notificationVaultResourceGroup: "'rg-notify'",
    notifyDefaultChannels: "'teams, Webhook,email,eventgrid'",
    teamsWebhookUrlSecretName: "'teams-url'",
    webhookUrlSecretName: "'hook-url'",
    webhookSigningKeySecretName: "'hook-key'",
    mailSender: "'rotator@contoso.com'",
    notificationTopicEnabled: 'true',
    keyVaultNames: "['kv-a', 'kv-b']",
  };
  const problemsOf = (changes: Partial<typeof fine>): string => {
    const p = { ...fine, ...changes };
    return `inputProblems({ ${Object.entries(p)
      .map(([k, v]) => `${k}: ${v}`)
      .join(', ')} })`;
  };

  test('inputProblems: none for a working set, one clear sentence per problem otherwise', () => {
    const cases: [Partial<typeof fine>, RegExp][] = [
      [{ notificationVaultName: "''" }, /needs notificationVaultName and notificationVaultResourceGroup/],
      [
        { notificationVaultResourceGroup: "''" },
        /needs notificationVaultName and notificationVaultResourceGroup/,
      ],
      [{ notifyDefaultChannels: "'teams,sms'" }, /takes only teams, webhook, email and eventgrid/],
      [{ teamsWebhookUrlSecretName: "''" }, /teams channel needs teamsWebhookUrlSecretName/],
      [{ webhookUrlSecretName: "''" }, /webhook channel needs webhookUrlSecretName/],
      [{ webhookSigningKeySecretName: "''" }, /needs webhookSigningKeySecretName/],
      [{ mailSender: "''" }, /email channel needs mailSender/],
      [{ notificationTopicEnabled: 'false' }, /eventgrid channel needs notificationTopicEnabled/],
      [{ keyVaultNames: "['kv-a', 'KV-A']" }, /names a vault twice/],
    ];
    const [ok, none, ...results] = evaluate([
      problemsOf({}),
      problemsOf({
        notificationSecretNames: '[]',
        notificationVaultName: "''",
        notificationVaultResourceGroup: "''",
        notifyDefaultChannels: "''",
        teamsWebhookUrlSecretName: "''",
        webhookUrlSecretName: "''",
        webhookSigningKeySecretName: "''",
        mailSender: "''",
        notificationTopicEnabled: 'false',
      }),
      ...cases.map(([changes]) => problemsOf(changes)),
    ]);
    expect(ok).toEqual([]);
    expect(none).toEqual([]);
    cases.forEach(([, message], i) => {
      expect(results[i]).toEqual([expect.stringMatching(message)]);
    });
  });
});
