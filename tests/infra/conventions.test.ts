/**
 * What a Bicep compiler would catch between our own files (module parameters and outputs, brackets,
 * file references), plus the azd conventions of Azure-Samples/functions-quickstart-typescript-azd.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import {
  INFRA,
  bicepFiles,
  closingIndex,
  modules,
  outputs,
  params,
  read,
  readInfra,
  resources,
  topLevelKeys,
  valueOf,
  withoutComments,
} from './bicep';

const main = readInfra('main.bicep');

describe('Bicep files', () => {
  test.each(bicepFiles())('%s: brackets balance and strings close', (file) => {
    const text = withoutComments(readInfra(file));
    // Wrap the whole file so one pass checks every bracket.
    const wrapped = `{${text}}`;
    expect(closingIndex(wrapped, 0)).toBe(wrapped.length);
  });

  test.each(bicepFiles())('%s: every file it loads or deploys exists', (file) => {
    const text = withoutComments(readInfra(file));
    const dir = path.dirname(path.join(INFRA, file));
    const local = [
      ...[...text.matchAll(/load(?:Text|Json)Content\('([^']+)'\)/g)].map((m) => m[1] ?? ''),
      ...modules(text)
        .map((m) => m.source)
        .filter((s) => !s.startsWith('br/')),
    ];
    for (const ref of local)
      expect({ ref, exists: existsSync(path.join(dir, ref)) }).toEqual({ ref, exists: true });
  });

  test.each(bicepFiles())('%s: modules get the parameters they declare, and only those', (file) => {
    const text = readInfra(file);
    const dir = path.dirname(path.join(INFRA, file));
    for (const m of modules(text).filter((x) => !x.source.startsWith('br/'))) {
      const target = read('infra', path.relative(INFRA, path.join(dir, m.source)));
      const declared = params(target);
      const given = topLevelKeys(valueOf(m.body, 'params'));
      const unknown = given.filter((g) => !declared.some((p) => p.name === g));
      const missing = declared
        .filter((p) => p.defaultValue === undefined && !given.includes(p.name))
        .map((p) => p.name);
      expect({ module: m.symbol, unknown, missing }).toEqual({ module: m.symbol, unknown: [], missing: [] });
    }
  });

  test.each(bicepFiles())('%s: outputs read from local modules exist', (file) => {
    const text = withoutComments(readInfra(file));
    const dir = path.dirname(path.join(INFRA, file));
    const local = modules(text).filter((x) => !x.source.startsWith('br/'));
    for (const m of local) {
      const declared = outputs(read('infra', path.relative(INFRA, path.join(dir, m.source))));
      const used = [
        ...text.matchAll(new RegExp(`\\b${m.symbol}(?:\\[\\w+\\])?!?\\.outputs\\.(\\w+)`, 'g')),
      ].map((x) => x[1] ?? '');
      expect({ module: m.symbol, undeclared: used.filter((u) => !declared.includes(u)) }).toEqual({
        module: m.symbol,
        undeclared: [],
      });
    }
  });

  test('every module is a file of infra/: registry modules cannot be restored offline', () => {
    const sources = bicepFiles().flatMap((f) => modules(readInfra(f)).map((m) => m.source));
    expect(sources.length).toBeGreaterThan(0);
    expect(sources.filter((s) => !/^[\w./-]+\.bicep$/.test(s))).toEqual([]);
  });
});

describe('azd conventions', () => {
  test("subscription scope, a resource group per environment, the sample's resource token", () => {
    expect(main).toMatch(/^targetScope = 'subscription'$/m);
    expect(main).toMatch(/^resource rg 'Microsoft\.Resources\/resourceGroups@[\d-]+' = \{/m);
    expect(main).toContain(
      'var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))',
    );
    expect(main).toContain("var abbrs = loadJsonContent('abbreviations.json')");
  });

  test('every abbreviation used exists in abbreviations.json', () => {
    const abbreviations = JSON.parse(readInfra('abbreviations.json')) as Record<string, string>;
    const used = [...main.matchAll(/abbrs\.(\w+)/g)].map((m) => m[1] ?? '');
    expect(used.filter((u) => !(u in abbreviations))).toEqual([]);
  });

  test('every generated name can be overridden', () => {
    const nameParams = params(main).filter((p) => /Name$/.test(p.name) && p.defaultValue === "''");
    expect(nameParams.length).toBeGreaterThanOrEqual(10);
    for (const p of nameParams.filter(
      (x) => !x.name.startsWith('notificationVault') && !/SecretName$/.test(x.name),
    )) {
      expect(main).toContain(`!empty(${p.name}) ? ${p.name} :`);
    }
  });

  test('outputs are UPPER_SNAKE and include what azd and the docs use', () => {
    const names = outputs(main);
    for (const n of names) expect(n).toMatch(/^[A-Z][A-Z0-9_]*$/);
    expect(names).toEqual(
      expect.arrayContaining([
        'AZURE_FUNCTION_APP_NAME',
        'SERVICE_API_NAME',
        'AZURE_STORAGE_ACCOUNT_NAME',
        'APPLICATIONINSIGHTS_CONNECTION_STRING',
        'AZURE_FUNCTION_IDENTITY_CLIENT_ID',
        'AZURE_FUNCTION_IDENTITY_PRINCIPAL_ID',
        'AZURE_RESOURCE_GROUP',
      ]),
    );
    // The postdeploy hook and the Graph script read these from the azd environment.
    const hook = read('infra/scripts/postdeploy.sh');
    for (const v of hook.matchAll(/\$\{(AZURE_[A-Z_]+)\}/g)) expect(names).toContain(v[1]);
    expect(read('infra/scripts/grant-graph-permissions.sh')).toContain(
      'AZURE_FUNCTION_IDENTITY_PRINCIPAL_ID',
    );
  });

  test('azure.yaml deploys this project as the api function service', () => {
    const yaml = read('azure.yaml');
    expect(yaml).toMatch(/services:\n {2}api:\n {4}project: \.\n {4}language: ts\n {4}host: function\n/);
  });

  test('Application Insights takes Entra-authenticated ingestion only', () => {
    const component = resources(readInfra('app/insights.bicep')).find(
      (r) => r.type === 'Microsoft.Insights/components',
    );
    expect(component?.body).toMatch(/DisableLocalAuth: true/);
    expect(readInfra('app/notification-topic.bicep')).toMatch(/disableLocalAuth: true/);
  });
});

describe('suppressions', () => {
  test('every #disable-next-line in infra/ has its reason in the comment right above', () => {
    for (const file of bicepFiles()) {
      const lines = readInfra(file).split('\n');
      lines.forEach((line, i) => {
        if (!/#disable-next-line/.test(line)) return;
        expect({ file, line: i + 1, reason: (lines[i - 1] ?? '').trim() }).toEqual({
          file,
          line: i + 1,
          reason: expect.stringMatching(/^\/\/ \S.{20,}/),
        });
      });
    }
  });

  test('bicepconfig.json turns no rule off without a reason, and enables no experimental feature', () => {
    const text = read('bicepconfig.json');
    const config = JSON.parse(withoutComments(text)) as {
      analyzers: { core: { enabled: boolean; rules: Record<string, { level: string }> } };
      experimentalFeaturesEnabled?: Record<string, boolean>;
    };
    expect(config.analyzers.core.enabled).toBe(true);
    for (const [rule, setting] of Object.entries(config.analyzers.core.rules)) {
      if (setting.level !== 'off' && setting.level !== 'none') continue;
      const line = text.split('\n').findIndex((l) => l.includes(`"${rule}"`));
      expect({ rule, reason: text.split('\n')[line - 1]?.trim() }).toEqual({
        rule,
        reason: expect.stringMatching(/^\/\/ \S/),
      });
    }
    expect(Object.values(config.experimentalFeaturesEnabled ?? {}).filter(Boolean)).toEqual([]);
  });
});
