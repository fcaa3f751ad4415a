/**
 * The azd hooks and the deployment guide: every Azure CLI call of a hook runs in the azd environment's
 * subscription, and docs/deploy.md states what a deployment needs and the way back.
 */
import { ROTATORS } from '../../shared/rotators';
import { compiled, type Json } from './arm';
import { read } from './bicep';

// The compiler and `bicep console` are real processes (seconds each on a busy two-core machine).
jest.setTimeout(120_000);

const HOOKS = ['infra/scripts/postdeploy.sh', 'infra/scripts/postdeploy.ps1'];

test.each(HOOKS)('%s passes --subscription (the azd environment) to every az command', (file) => {
  // Lines that run az (not the `command -v az` / `Get-Command az` probes, comments or messages).
  const azCalls = read(file)
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => /(^|[\s(])az [a-z]/.test(line))
    .filter((line) => !/^(#|echo |Write-)|command -v az|Get-Command az/.test(line));
  expect(azCalls.length).toBeGreaterThan(0);
  for (const line of azCalls) {
    expect({
      line,
      subscription: /--subscription "?\$(\{AZURE_SUBSCRIPTION_ID\}|env:AZURE_SUBSCRIPTION_ID)/.test(line),
    }).toEqual({
      line,
      subscription: true,
    });
  }
});

describe('docs/deploy.md', () => {
  const guide = read('docs/deploy.md');
  // Compiled while the tests are collected (no test timeout; a first run may restore the compiler).
  const vaultRoles = (compiled().resources as Record<string, Json>).vaultRoles;

  test('gives the azd minimum version and the way back when the second provision fails', () => {
    expect(guide).toMatch(/\*\*1\.23\.12 or later\*\*/);
    // azd itself refuses an older version.
    expect(read('azure.yaml')).toMatch(/^requiredVersions:\n {2}azd: '>= 1\.23\.12'$/m);
    expect(guide).toMatch(/\*\*When the second provision fails\*\*/);
    expect(guide).toContain('azd env set KEY_VAULT_EVENTS_ENABLED false && azd provision');
  });

  test('states the rights of every credential kind', () => {
    const table = guide.slice(guide.indexOf('Rights per kind, at a glance'));
    for (const kind of ROTATORS.keys()) expect(table).toContain(`| \`${kind}\``);
    expect(table).toMatch(/`databricks-sp-secret` *\| account admin/);
  });

  test("lists exactly the custom vault role's data actions", () => {
    const template = (vaultRoles?.properties as Json).template as Json;
    const dataActions = (template.variables as Json).dataActions as string[];
    const documented = [...guide.matchAll(/^\| `(Microsoft\.KeyVault\/vaults\/secrets\/[\w/]+)`/gm)].map(
      (m) => m[1],
    );
    expect(documented.sort()).toEqual([...dataActions].sort());
  });
});
