import type { SecretProperties } from '@azure/keyvault-secrets';
import type { Vaults } from '../../../shared/clients/keyvault';
import { parseSettings } from '../../../shared/config';
import { ROTATORS } from '../../../shared/rotators';
import { Scanner } from '../../../shared/scan/scanner';
import { createTelemetry } from '../../../shared/telemetry/telemetry';

/**
 * How the scanner walks a vault's pages, against a list client that behaves like the SDK on Node's
 * HTTP client: `next()` starts the request, which leaves from a nextTick (Node's ClientRequest is
 * flushed by `onSocketNT`), and the page arrives a macrotask later. No emulator: the order of
 * events is what is tested.
 */
const settings = parseSettings({
  KEY_VAULT_URIS: 'kv-pages=https://kv-pages.vault.azure.net',
  AZURE_TENANT_ID: '72f988bf-86f1-41af-91ab-2d7cd011db47',
  AzureWebJobsStorage: 'UseDevelopmentStorage=true',
});
const DAY_MS = 86_400_000;
const now = new Date('2026-12-01T00:00:00Z');

/** A secret with an unknown kind: its assessment logs SecretPolicyInvalid, synchronously. */
const invalid = (name: string): SecretProperties =>
  ({
    name,
    vaultUrl: 'https://kv-pages.vault.azure.net',
    tags: { 'rotation-kind': 'nope' },
  }) as SecretProperties;
/** A secret that is not opted in and expires in 5 days: an `expiring` notice is due for it. */
const expiring = (name: string): SecretProperties =>
  ({
    name,
    vaultUrl: 'https://kv-pages.vault.azure.net',
    version: `v-${name}`,
    expiresOn: new Date(now.getTime() + 5 * DAY_MS),
  }) as SecretProperties;

function fakeVaults(pages: SecretProperties[][], log: string[]): Vaults {
  const byPage = () => {
    let sent = 0;
    return {
      next: () =>
        new Promise<IteratorResult<SecretProperties[]>>((resolve) => {
          const page = sent++;
          process.nextTick(() => {
            log.push(`sent ${page}`);
            setImmediate(() =>
              resolve(
                page < pages.length ? { done: false, value: pages[page]! } : { done: true, value: undefined },
              ),
            );
          });
        }),
    };
  };
  const client = { listPropertiesOfSecrets: () => ({ byPage }) };
  return {
    get: (name: string) => ({ name, url: 'https://kv-pages.vault.azure.net', client, lister: client }),
  } as unknown as Vaults;
}

test("the next page's request leaves before the current page is assessed", async () => {
  const log: string[] = [];
  const pages = [0, 1, 2].map((p) => [invalid(`p${p}-a`), invalid(`p${p}-b`)]);
  const telemetry = createTelemetry(settings, undefined, (_level, line) => {
    const secret = /\[SecretPolicyInvalid\].* secret=(\S+)/.exec(line)?.[1];
    if (secret) log.push(`assessed ${secret}`);
  });
  const scanner = new Scanner({
    settings,
    vaults: fakeVaults(pages, log),
    rotators: ROTATORS,
    notices: { firstTime: async () => false },
    now: () => now,
  });
  const summary = await scanner.scanVault(
    'kv-pages',
    { work: async () => undefined, notices: async () => undefined },
    { telemetry },
  );

  expect(summary).toMatchObject({ listPages: 3, scanned: 6, invalid: 6 });
  for (const page of [0, 1, 2]) {
    expect(log.indexOf(`sent ${page + 1}`)).toBeGreaterThan(-1);
    expect(log.indexOf(`sent ${page + 1}`)).toBeLessThan(log.indexOf(`assessed p${page}-a`));
  }
  expect(log.filter((l) => l.startsWith('sent'))).toHaveLength(4);
});

test("a page's notice records are checked at once, and its notices keep the page's order", async () => {
  let open = 0;
  let most = 0;
  const firstTime = async () => {
    most = Math.max(most, ++open);
    await new Promise((resolve) => setImmediate(resolve));
    open--;
    return true;
  };
  const sent: string[][] = [];
  const scanner = new Scanner({
    settings,
    vaults: fakeVaults([[expiring('a'), expiring('b'), expiring('c')], [expiring('d')]], []),
    rotators: ROTATORS,
    notices: { firstTime },
    now: () => now,
  });
  await scanner.scanVault(
    'kv-pages',
    { work: async () => undefined, notices: async (items) => void sent.push(items.map((n) => n.secret)) },
    { telemetry: createTelemetry(settings, undefined, () => undefined) },
  );

  expect(most).toBe(3);
  expect(sent).toEqual([['a', 'b', 'c'], ['d']]);
});
