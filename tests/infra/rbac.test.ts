/**
 * Role assignments against the calls the code makes: each call has the built-in role it needs, on the
 * resource it calls, and nothing broader is granted anywhere. The vaults get a custom role with exactly
 * the secret data actions the code calls (tests/infra/compiled.test.ts reads it from the compiled ARM).
 */
import { bicepFiles, commentAbove, modules, readInfra, resources, stringVariable, valueOf } from './bicep';

/** Built-in role definition ids (the same in every subscription). */
const ROLE = {
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6',
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88',
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b',
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe',
  eventGridDataSender: 'd5a91429-5739-47e2-a06b-3470a27159e7',
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb',
} as const;

/** Roles that must never be granted: they reach far beyond what any call needs. */
const TOO_BROAD = {
  Owner: '8e3af657-a8ff-443c-a75c-2fe8c4bcb635',
  Contributor: 'b24988ac-6180-42a0-ab88-20f7382dd24c',
  'User Access Administrator': '18d7d88d-d35e-4fb5-a5c3-7773c20a72d9',
  'Key Vault Administrator': '00482a5a-887f-4fb3-b363-3b7fe8e74483',
  'Storage Account Contributor': '17d1049b-9a84-46fb-8f53-869881c3d3ab',
  'EventGrid Contributor': '1e241071-0855-49ea-94dc-649edcd759de',
  // delete, purge, backup, restore and recover of secrets: never needed.
  'Key Vault Secrets Officer': 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7',
};

interface Grant {
  call: string;
  role: keyof typeof ROLE;
  /** Name of the role, as the comment above the role id variable must say. */
  roleName: string;
  file: string;
  /** Resource type of the assignment's scope. */
  scopeType: string;
  /** The expression of the principal (the function app's identity is `principalId`). */
  principal: string;
}

const GRANTS: Grant[] = [
  {
    call: 'queues rotation-requests and notifications (send, receive, delete, -poison)',
    role: 'storageQueueDataContributor',
    roleName: 'Storage Queue Data Contributor',
    file: 'app/rbac.bicep',
    scopeType: 'Microsoft.Storage/storageAccounts',
    principal: 'principalId',
  },
  {
    call: 'blob leases locks/{vault}/{secret}, host blobs, deployment package',
    role: 'storageBlobDataOwner',
    roleName: 'Storage Blob Data Owner',
    file: 'app/rbac.bicep',
    scopeType: 'Microsoft.Storage/storageAccounts',
    principal: 'principalId',
  },
  {
    call: 'Event Grid publish to the notification topic',
    role: 'eventGridDataSender',
    roleName: 'EventGrid Data Sender',
    file: 'app/rbac.bicep',
    scopeType: 'Microsoft.EventGrid/topics',
    principal: 'principalId',
  },
  {
    call: 'Application Insights ingestion with Entra ID (Authorization=AAD)',
    role: 'monitoringMetricsPublisher',
    roleName: 'Monitoring Metrics Publisher',
    file: 'app/rbac.bicep',
    scopeType: 'Microsoft.Insights/components',
    principal: 'principalId',
  },
  {
    call: 'Key Vault references of the notification secrets (read their values)',
    role: 'keyVaultSecretsUser',
    roleName: 'Key Vault Secrets User',
    file: 'app/notification-secrets.bicep',
    scopeType: 'Microsoft.KeyVault/vaults/secrets',
    principal: 'principalId',
  },
  {
    call: "Event Grid dead-lettering, with each system topic's identity",
    role: 'storageBlobDataContributor',
    roleName: 'Storage Blob Data Contributor',
    file: 'app/rbac.bicep',
    scopeType: 'Microsoft.Storage/storageAccounts/blobServices/containers',
    principal: 'writer',
  },
];

/** Every role assignment of every Bicep file, with the role id variable it names. */
const assignments = bicepFiles().flatMap((file) => {
  const text = readInfra(file);
  return (
    resources(text)
      .filter((r) => r.type === 'Microsoft.Authorization/roleAssignments')
      // The vault's custom role is checked against the compiled template instead.
      .filter((r) => !(file === 'app/keyvault.bicep' && r.symbol === 'secretsRole'))
      .map((r) => {
        const roleVar = /subscriptionResourceId\('Microsoft\.Authorization\/roleDefinitions', (\w+)\)/.exec(
          r.body,
        )?.[1];
        return {
          file,
          text,
          resource: r,
          roleVar,
          roleId: roleVar ? stringVariable(text, roleVar) : undefined,
        };
      })
  );
});

describe('role assignments', () => {
  test.each(GRANTS)('$call → $roleName on $scopeType', (grant) => {
    const matching = assignments.filter((a) => a.file === grant.file && a.roleId === ROLE[grant.role]);
    expect(matching).toHaveLength(1);
    const a = matching[0]!;
    // The role id variable says which role it is.
    expect(commentAbove(a.text, new RegExp(`^var ${a.roleVar} =`))).toContain(grant.roleName);
    // Scoped to the resource the call goes to, not the resource group or subscription.
    const scope = /scope:\s*(\w+)(\[i\])?/.exec(a.resource.body)?.[1];
    const scopeResource = resources(a.text).find((r) => r.symbol === scope);
    expect(scopeResource?.type).toBe(grant.scopeType);
    // Name and principal as the convention has them.
    const index = /scope:\s*\w+(\[i\])/.exec(a.resource.body)?.[1] ?? '';
    expect(a.resource.body).toContain(`name: guid(${scope}${index}.id, ${grant.principal}, ${a.roleVar})`);
    expect(valueOf(a.resource.body, 'properties')).toMatch(
      new RegExp(`principalId:\\s*${grant.principal}\\b`),
    );
  });

  test('the app identity, not another principal, gets the data roles', () => {
    for (const m of modules(readInfra('main.bicep')).filter((m) =>
      ['app/keyvault.bicep', 'app/rbac.bicep', 'app/notification-secrets.bicep'].includes(m.source),
    )) {
      expect(m.body).toMatch(/principalId:\s*apiIdentity\.outputs\.principalId/);
    }
    // The dead-letter writers are the vaults' system topics.
    expect(readInfra('main.bicep')).toMatch(
      /deadLetterWriterPrincipalIds:\s*\[for i in range\(0, length\(keyVaults\)\): vaults\[i\]\.outputs\.systemTopicPrincipalId\]/,
    );
  });

  test('every assignment is in the table, for a service principal, and nothing too broad is granted', () => {
    const known = new Set<string>(Object.values(ROLE));
    for (const a of assignments) {
      expect(a.roleId && known.has(a.roleId)).toBe(true);
      expect(a.resource.body).toMatch(/principalType:\s*'ServicePrincipal'/);
      expect(a.resource.body).toMatch(/name:\s*guid\(/);
    }
    expect(assignments).toHaveLength(GRANTS.length);
    const everything = bicepFiles().map(readInfra).join('\n');
    for (const [name, id] of Object.entries(TOO_BROAD)) {
      expect({ name, granted: everything.includes(id) }).toEqual({ name, granted: false });
    }
  });

  test('the custom secrets role is granted in every vault the service rotates', () => {
    expect(readInfra('app/keyvault.bicep')).toMatch(/roleDefinitionId: roleDefinitionId\b/);
    const vaults = modules(readInfra('main.bicep')).find((m) => m.source === 'app/keyvault.bicep');
    expect(vaults?.head).toMatch(/for \(vault, i\) in keyVaults/);
    expect(vaults?.body).toMatch(/vaultName:\s*vault\.name/);
  });
});
